"""Command -> manifest change -> branch + commit -> pull request, through a Forge.

Everything that can refuse does so before anything is written: authorization, the
command's own checks against the catalog, then the locks. If a later step fails, the
branch and the locks are removed again, so nothing half-written is left behind.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote

from bot import messages
from bot.catalog import Catalog, ManifestCache, catalog_at, classify
from bot.commands import Create, Deploy, Destroy, Migrate, Promote, Rollback, Update
from bot.deploy.facts import NothingRan, ReleaseFacts
from bot.deploy.plan import affected_environments
from bot.deploy.promotion import promotion_blockers
from bot.forges.base import Forge, ForgeError, PullRequest
from bot.forges.meta import PrMeta
from bot.gitrepo import GitError, Identity, Workspace
from bot.jobs import ChecksNotQueued
from bot.locks import Locks
from bot.manifests import (
    API_VERSION,
    AIModel,
    Application,
    Artifact,
    Dataset,
    Manifest,
    ModelVersion,
    Person,
    dump_manifest,
    manifest_path,
)
from bot.messages import policy as policy_messages
from bot.messages import promotion as promo
from bot.policy import Review, authorize, merge_decision
from bot.redact import redact
from bot.review import PrStatus, pr_status
from bot.sources import Access, Guard, SourceRefused, vetted_key
from bot.verbs import BY_NAME

Proposal = Create | Update | Deploy | Promote | Rollback | Migrate | Destroy


class Refusal(Exception):
    """A request the bot will not carry out; the message is shown to the person as is."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Actor:
    """Who asks, resolved against the repository config."""

    name: str
    via: str  # "cli" | "slack" | "github" | "api"
    person: Person | None = None

    def identity(self) -> Identity:
        email = self.person.email if self.person and self.person.email else f"{self.name}@aimodel.local"
        return Identity(self.name, email)


@dataclass(frozen=True)
class Change:
    files: dict[str, bytes | None]
    locks: tuple[str, ...]
    title: str
    summary: tuple[str, ...]
    models: tuple[str, ...] = ()
    vetted: tuple[str, ...] = ()  # vetted_key()s admitted for this person (the worker re-checks them)


@dataclass
class Opened:
    pr: PullRequest
    change: Change
    unqueued: str = ""  # why the checks could not be queued (the pull request is open regardless)


ArtifactInfo = Any  # callable (uri, declared_format, access) -> Artifact; injected so tests use real files
# callable (uri, access) -> (stored uri, sha256, source): keeps a data set's bytes (bot.checks.fetch.keep_dataset)
DatasetKeeper = Any


def _bump(version: str) -> str | None:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        return None
    major, minor, patch = (int(x) for x in match.groups())
    return f"{major}.{minor}.{patch + 1}"


_KIND_LOCK = {"AIModel": "model", "Application": "app", "Dataset": "dataset"}
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$")


def valid_branch_name(name: str) -> bool:
    """A plain branch name (a subset of git's rules): no option look-alikes, no `..`."""
    return bool(_BRANCH.match(name)) and not name.endswith(".lock") and "/." not in name and not name.startswith(".")


def branch_locks(paths: Sequence[str]) -> tuple[str, ...]:
    """The locks a hand-made change takes: every model, application and data set it touches."""
    keys = set()
    for path in paths:
        parts = path.split("/")
        where = classify(path)
        if where is not None:
            keys.add(f"{_KIND_LOCK[where[0]]}:{where[1]}")
        elif parts[0] == "models" and len(parts) > 2:
            keys.add(f"model:{parts[1]}")
    return tuple(sorted(keys))


def _with_env(per_env: Mapping[str, Mapping[str, int]], env: str, value: Mapping[str, int]) -> dict[str, Mapping[str, int]]:
    """`per_env` with `env` set to `value`, or without it when `value` is empty."""
    out = {e: v for e, v in per_env.items() if e != env}
    if value:
        out[env] = dict(value)
    return out


def _yaml(m: Manifest) -> bytes:
    return dump_manifest(m).encode()


class GitOps:
    def __init__(
        self,
        forge: Forge,
        workspace: Workspace,
        locks: Locks,
        *,
        cache: ManifestCache | None = None,
        describe_artifact: ArtifactInfo,
        guard: Guard | None = None,
        keep_dataset: DatasetKeeper | None = None,
        facts: ReleaseFacts | None = None,
    ) -> None:
        self.forge = forge
        self.facts: ReleaseFacts = facts or NothingRan()
        self.keep_dataset = keep_dataset
        self.workspace = workspace
        self.locks = locks
        self.cache = cache
        self.describe_artifact = describe_artifact
        self.guard = guard or Guard()
        self._catalogs: dict[str, Catalog] = {}  # commit -> catalog; a commit never changes
        self._changes: dict[tuple[str, str], tuple[str, ...]] = {}  # (base, head) -> changed paths

    # ------------------------------------------------------------------ reading

    def catalog(self, commit: str | None = None, *, fetch: bool = True) -> Catalog:
        if commit is None:
            if fetch:
                self.workspace.fetch()
            commit = self.workspace.head_of()
        cached = self._catalogs.get(commit)
        if cached is not None:
            return cached
        catalog = catalog_at(commit, self.workspace.tree, self.workspace.read_blob, self.cache)
        if len(self._catalogs) >= 8:
            self._catalogs.pop(next(iter(self._catalogs)))
        self._catalogs[commit] = catalog
        return catalog

    # ------------------------------------------------------------------ proposing

    def propose(self, command: Proposal, actor: Actor, *, meta: PrMeta | None = None) -> Opened:
        """`meta`: what the face already knows about the pull request (Slack: its channel)."""
        catalog = self.catalog()
        actor = replace(actor, person=catalog.config.people.get(actor.name)) if actor.person is None else actor
        decision = authorize(catalog.config, actor.person, BY_NAME[command.verb].permission, actor.name)
        if not decision.allowed:
            raise Refusal(messages.refused(decision.reason))
        change = self._change(command, catalog, actor)
        held = self.locks.acquire(change.locks, actor.name)
        if held is not None:
            kind, _, name = held.key.partition(":")
            raise Refusal(messages.locked({"model": "model", "app": "application", "dataset": "data set"}.get(kind, kind), name, held.pr, held.person))
        branch = f"aimodel/{command.verb}-{command.name}-{uuid.uuid4().hex[:6]}"
        pushed = False
        try:
            # The locks are ours: re-read the catalog so the change is built on the newest base.
            latest = self.catalog()
            if latest.commit != catalog.commit:
                change = self._change(command, latest, actor)
                catalog = latest
            head = self.workspace.commit_change(
                catalog.commit, change.files, f"{change.title}\n\nRequested by {actor.name} via {actor.via}.", actor.identity()
            )
            self.workspace.push(head, branch)
            pushed = True
            body = redact(messages.pr_body(
                verb=command.verb, who=actor.name, via=actor.via, reason=command.reason, summary=change.summary
            ))
            pr_meta = replace(
                meta or PrMeta(), verb=command.verb, model=command.name, models=tuple(change.models),
                locks=tuple(change.locks), via=actor.via, vetted_sources=tuple(change.vetted),
            )
            unqueued = ""
            try:
                pr = self.forge.open_pr(branch=branch, head=head, title=change.title, body=body, author=actor.name, meta=pr_meta)
            except ChecksNotQueued as exc:
                # The record exists: undoing the branch and locks would leave a PR pointing at
                # nothing. Keep it; its checks run when the queue works again.
                pr = self.forge.get_pr(exc.number)
                unqueued = exc.reason
        except BaseException:
            self.locks.release(change.locks)
            if pushed:
                self.workspace.delete_branch(branch)
            raise
        self.locks.assign(change.locks, pr.number)
        return Opened(pr, change, unqueued)

    def open_branch(self, branch: str, actor: Actor, *, title: str = "") -> PullRequest:
        """A pull request from a branch a person pushed to the forge by hand: the same checks,
        locks and rules as the bot's own (the forge's "opened" event queues the checks)."""
        def refuse(reason: str) -> Refusal:
            return Refusal(policy_messages.branch_refused(branch, reason))

        if not valid_branch_name(branch) or branch == self.workspace.default_branch:
            raise refuse(messages.branch_not_default(self.workspace.default_branch))
        base = self.catalog()  # fetches: the pushed branch arrives with it
        if base.config.people.get(actor.name) is None:
            raise Refusal(messages.not_known(actor.name))
        try:
            head = self.workspace.head_of(branch)
        except GitError:
            raise refuse(messages.branch_missing()) from None
        for pr in self.forge.list_prs("open"):
            if pr.branch == branch:
                raise refuse(messages.branch_already_open(pr.number))
        try:
            paths = self.workspace.changed_files(base.commit, head)
        except GitError:
            raise refuse(messages.branch_unrelated(self.workspace.default_branch)) from None
        if not paths:
            raise refuse(messages.branch_no_change(self.workspace.default_branch))
        # the branch is locked too, so two `pr open` at once make one pull request; quoted, as
        # lock keys become file names ('/' and the '__' separator must not appear)
        locks = ("branch:" + quote(branch, safe="").replace("_", "%5F"), *branch_locks(paths))
        held = self.locks.acquire(locks, actor.name)
        if held is not None:
            kind, _, name = held.key.partition(":")
            kinds = {"model": "model", "app": "application", "dataset": "data set", "branch": "branch"}
            raise Refusal(messages.locked(kinds.get(kind, kind), unquote(name), held.pr, held.person))
        try:
            pr = self.forge.open_pr(
                branch=branch, head=head, title=title or f"changes from {branch}",
                body=policy_messages.hand_pr_body(actor.name, branch, paths), author=actor.name,
                meta=PrMeta(verb="open", via=actor.via, locks=tuple(locks),
                            models=tuple(sorted(k.partition(":")[2] for k in locks if k.startswith("model:")))),
            )
        except ChecksNotQueued as exc:
            self.locks.assign(locks, exc.number)  # the pull request exists: it holds its locks
            raise
        except BaseException:
            self.locks.release(locks)
            raise
        self.locks.assign(locks, pr.number)
        return pr

    def _change(self, command: Proposal, catalog: Catalog, actor: Actor) -> Change:
        if isinstance(command, Create):
            return self._create(command, catalog, actor)
        if isinstance(command, Update):
            return self._update(command, catalog, actor)
        if isinstance(command, Deploy):
            return self._deploy(command, catalog, actor)
        if isinstance(command, Rollback):
            return self._rollback(command, catalog, actor)
        if isinstance(command, Promote):
            return self._promote(command, catalog, actor)
        if isinstance(command, Migrate):
            from bot.migrate import migration

            files, count = migration(self.workspace, catalog.commit)
            if not files:
                raise Refusal(promo.nothing_to_migrate(API_VERSION))
            return Change(files, ("repository:migrate",), f"migrate manifests to {API_VERSION}", (promo.migrate_summary(count, API_VERSION),))
        return self._destroy(command, catalog, actor)

    def _existing(self, catalog: Catalog, name: str, actor: Actor) -> AIModel:
        model = catalog.models.get(name)
        if model is None:
            for error in catalog.errors:  # a manifest that does not read says why (e.g. an older schema)
                if classify(error.file) == ("AIModel", name):
                    raise Refusal(str(error))
            raise Refusal(messages.no_such_model(name, actor.via))
        return model

    def _access(self, catalog: Catalog, actor: Actor) -> Access:
        return self.guard.for_person(catalog.config.sources, actor.via)

    def _describe(self, uri: str, fmt: str, access: Access) -> Artifact:
        artifact: Artifact = self.describe_artifact(uri, fmt, access)
        return artifact

    def _dataset(self, uri: str, access: Access) -> tuple[str, str, str]:
        """(uri, sha256, source) for a new data set: kept in the store and pinned when there is
        one, else admitted only (the validate check reads it)."""
        try:
            if self.keep_dataset is None:
                return access.admit(uri, "dataset").uri, "", ""
            kept: tuple[str, str, str] = self.keep_dataset(uri, access)
            return kept
        except (SourceRefused, ValueError, OSError) as exc:
            raise Refusal(str(exc)) from None

    def _create(self, c: Create, catalog: Catalog, actor: Actor) -> Change:
        if c.name in catalog.models:
            raise Refusal(messages.model_exists(c.name, catalog.models[c.name].version, actor.via))
        files: dict[str, bytes | None] = {}
        locks = [f"model:{c.name}", f"app:{c.app}"]
        summary = []
        access = self._access(catalog, actor)
        # Whatever can be refused without reading is refused before any byte is kept.
        if c.dataset not in catalog.datasets:
            if not c.dataset_uri:
                raise Refusal(messages.dataset_missing(c.dataset))
            try:
                access.admit(c.dataset_uri, "dataset")
            except SourceRefused as exc:
                raise Refusal(str(exc)) from None
        artifact = self._describe(c.artifact, c.format, access)
        vetted = [vetted_key("artifact", artifact.uri)]
        dataset = catalog.datasets.get(c.dataset)
        if dataset is None:
            dataset_uri, dataset_sha, dataset_source = self._dataset(c.dataset_uri, access)
            vetted.append(vetted_key("dataset", dataset_uri))
            dataset = Dataset(
                name=c.dataset, uri=dataset_uri, label_column=c.label_column, owner=actor.name,
                sha256=dataset_sha, source=dataset_source,
            )
            dataset = replace(dataset, path=manifest_path("Dataset", c.dataset))
            files[dataset.path] = _yaml(dataset)
            locks.append(f"dataset:{c.dataset}")
            summary.append(f"adds data set `{c.dataset}` ({dataset_source or dataset_uri}, label column `{c.label_column}`)")
        model = AIModel(
            name=c.name, version=c.version, owner=actor.name, application=c.app, dataset=c.dataset,
            artifact=artifact, sla=c.sla, path=manifest_path("AIModel", c.name),
        )
        files[model.path] = _yaml(model)
        summary.insert(0, f"adds model `{c.name}` {c.version} ({artifact.format}, {artifact.size} bytes, sha256 `{artifact.sha256[:12]}`)")
        if c.sla:
            summary.append(f"SLA: `{c.sla}`")
        app = catalog.apps.get(c.app)
        if app is None:
            app = Application(name=c.app, version="1.0.0", owner=actor.name, models=(c.name,), path=manifest_path("Application", c.app))
            summary.append(f"adds application `{c.app}` using `{c.name}`")
        else:
            app = replace(app, models=(*app.models, c.name))
            summary.append(f"application `{c.app}` uses `{c.name}` (no environment runs it until a deploy)")
        files[app.path] = _yaml(app)
        return Change(files, tuple(locks), f"create {c.name} {c.version} for {c.app}", tuple(summary), (c.name,), tuple(vetted))

    def _update(self, c: Update, catalog: Catalog, actor: Actor) -> Change:
        """A new version (new bytes, or the same bytes under a new version number), or a new SLA
        for the model. Registered versions never change and no environment's pins move."""
        model = self._existing(catalog, c.name, actor)
        artifact = model.artifact
        if c.artifact:
            artifact = self._describe(c.artifact, "", self._access(catalog, actor))
        changed_bytes = artifact.sha256 != model.artifact.sha256
        version = c.version or model.version
        if not c.version and changed_bytes:
            bumped = _bump(model.version)
            if bumped is None:
                raise Refusal(messages.version_not_bumpable(c.name, model.version))
            version = bumped
        if changed_bytes and version == model.version:
            raise Refusal(messages.version_unchanged(version))
        if version != model.version and model.get(version) is not None:
            raise Refusal(promo.version_exists(c.name, version))
        sla = c.sla if c.sla is not None else model.sla
        if version == model.version and not changed_bytes and sla == model.sla:
            raise Refusal(messages.nothing_changes(c.name, f"is already at {version} with that artifact and SLA"))
        new = replace(model, sla=sla, path=manifest_path("AIModel", c.name))
        if version != model.version:
            new = replace(
                new, version=version, artifact=artifact, metrics={},
                previous=(*model.previous, ModelVersion(model.version, model.artifact, model.metrics)),
            )
        files: dict[str, bytes | None] = {}
        if model.path != new.path:
            files[model.path] = None
        files[new.path] = _yaml(new)
        summary = [f"registers `{c.name}` {version} (newest before: {model.version}); no environment changes until a deploy"
                   if version != model.version else f"changes the SLA of `{c.name}`"]
        if changed_bytes:
            summary.append(f"new artifact {artifact.source or artifact.uri} (sha256 `{artifact.sha256[:12]}`)")
        if sla != model.sla:
            summary.append(f"SLA: `{sla}`")
        vetted = (vetted_key("artifact", artifact.uri),) if c.artifact else ()
        title = f"update {c.name} {model.version} -> {version}" if version != model.version else f"update {c.name} SLA"
        return Change(files, (f"model:{c.name}",), title, tuple(summary), (c.name,), vetted)

    def _deploy(self, c: Deploy, catalog: Catalog, actor: Actor) -> Change:
        model = self._existing(catalog, c.name, actor)
        config = catalog.config
        if config.environments and c.env not in config.environments:
            raise Refusal(messages.no_such_environment(c.env, list(config.environments)))
        users = catalog.apps_using(c.name)
        if not users:
            raise Refusal(promo.used_by_no_app(c.name))
        target = config.environments[c.env].target if c.env in config.environments else "local"
        if c.canary and target != "kserve":
            raise Refusal(promo.canary_needs_kserve(c.env, target))
        before = config.comes_after(c.env)
        version = c.version
        if not version:
            if before is None:
                version = model.version
            else:
                running = self.facts.running(before, c.name)
                if running is None or running.state != "running":
                    raise Refusal(promo.not_in_previous(c.name, before, c.env, actor.via))
                version = running.version
        if model.get(version) is None:
            raise Refusal(promo.no_such_version(c.name, version, [v.version for v in model.versions]))
        if before is not None and not self.facts.ran_ok(before, c.name, version):
            raise Refusal(promo.promotion_refused(c.name, version, before, c.env, actor.via))
        in_canary = any(c.name in a.canary.get(c.env, {}) for a in users)
        if catalog.running_in(c.env).get(c.name) == version and not c.canary and not in_canary:
            actual = self.facts.running(c.env, c.name)
            if actual is None or actual.version != version or actual.state != "running":
                # Never "nothing to do" while the environment runs something else.
                raise Refusal(promo.desired_not_running(
                    c.name, version, c.env, actual.version if actual else "", actual.state if actual else "", actual.reason if actual else "", actor.via
                ))
            raise Refusal(messages.nothing_changes(c.name, f"{version} is already deployed to {c.env}"))
        files: dict[str, bytes | None] = {}
        locks = [f"model:{c.name}"]
        for app in users:
            pins = {**app.environments.get(c.env, {}), c.name: version}
            canary = {m: p for m, p in app.canary.get(c.env, {}).items() if m != c.name}  # a plain deploy takes all traffic
            if c.canary:
                canary[c.name] = c.canary
            new = replace(app, environments={**app.environments, c.env: pins}, canary=_with_env(app.canary, c.env, canary))
            files[app.path] = _yaml(new)
            locks.append(f"app:{app.name}")
        summary = [f"deploys `{c.name}` {version} to **{c.env}**" + (f" as a canary taking {c.canary}% of the traffic" if c.canary else "")]
        summary.append(f"with its applications: {', '.join(f'`{a.name}`' for a in users)} (their {c.env} releases pin {version})")
        title = f"deploy {c.name} {version} to {c.env}" + (f" (canary {c.canary}%)" if c.canary else "")
        return Change(files, tuple(locks), title, tuple(summary), (c.name,))

    def _promote(self, c: Promote, catalog: Catalog, actor: Actor) -> Change:
        """The canary's version takes all the traffic: the canary entry goes, the pins stay."""
        self._existing(catalog, c.name, actor)
        holding = [a for a in catalog.apps_using(c.name) if c.name in a.canary.get(c.env, {})]
        if not holding:
            raise Refusal(promo.no_canary(c.name, c.env))
        files: dict[str, bytes | None] = {}
        for app in holding:
            rest = {m: p for m, p in app.canary[c.env].items() if m != c.name}
            files[app.path] = _yaml(replace(app, canary=_with_env(app.canary, c.env, rest)))
        version = catalog.running_in(c.env).get(c.name, "")
        locks = (f"model:{c.name}", *(f"app:{a.name}" for a in holding))
        summary = (promo.promote_summary(c.name, version, c.env, holding[0].canary[c.env][c.name]),)
        return Change(files, locks, f"promote {c.name} {version} in {c.env} to all traffic", summary, (c.name,))

    def _rollback(self, c: Rollback, catalog: Catalog, actor: Actor) -> Change:
        app = catalog.apps.get(c.name)
        if app is None:
            raise Refusal(messages.no_such_app(c.name, sorted(catalog.apps)))
        config = catalog.config
        if config.environments and c.env not in config.environments:
            raise Refusal(messages.no_such_environment(c.env, list(config.environments)))
        past = self.facts.releases(c.env, c.name)
        if not past:
            raise Refusal(promo.no_release_for(c.name, c.env, actor.via))
        if c.to:
            chosen = next((r for r in past if r.id == c.to), None)
            if chosen is None:
                raise Refusal(promo.no_such_release(c.to, c.name, c.env, actor.via))
        else:
            current = app.environments.get(c.env, {})
            earlier = [r for r in past if dict(r.models) != dict(current)]
            if len(past) < 2 or not earlier:
                raise Refusal(promo.nothing_before(c.name, c.env, actor.via))
            chosen = earlier[-1]
        pins = dict(chosen.models)
        for model, version in pins.items():
            registered = catalog.models.get(model)
            if registered is None or registered.get(version) is None:
                raise Refusal(promo.release_pins_gone(chosen.id, model, version))
        if dict(app.environments.get(c.env, {})) == pins and not app.canary.get(c.env):
            raise Refusal(promo.already_live(c.name, c.env, chosen.id))
        models = tuple(dict.fromkeys((*app.models, *pins)))
        # the restored release takes all the traffic: a canary in that environment ends with it
        new = replace(app, models=models, environments={**app.environments, c.env: pins}, canary=_with_env(app.canary, c.env, {}))
        locks = (f"app:{c.name}", *(f"model:{m}" for m in sorted(pins)))
        summary = (promo.rollback_summary(c.name, c.env, chosen.id, pins),)
        return Change({app.path: _yaml(new)}, locks, f"rollback {c.name} in {c.env} to {chosen.id}", summary, tuple(sorted(pins)))

    def _destroy(self, c: Destroy, catalog: Catalog, actor: Actor) -> Change:
        model = self._existing(catalog, c.name, actor)
        users = catalog.apps_using(c.name)
        if users and not c.with_apps:
            raise Refusal(messages.pinned_by(c.name, [a.name for a in users]))
        files: dict[str, bytes | None] = {p: None for p in catalog.files if p == model.path or p.startswith(f"models/{c.name}/")}
        locks = [f"model:{c.name}"]
        summary = [f"removes model `{c.name}` ({', '.join(v.version for v in model.versions)})"]
        running = sorted(env for app in users for env, pins in app.environments.items() if c.name in pins)
        if running:
            summary.append(f"stops it in {', '.join(dict.fromkeys(running))}")
        for app in users:
            environments = {env: {m: v for m, v in pins.items() if m != c.name} for env, pins in app.environments.items()}
            new = replace(app, models=tuple(m for m in app.models if m != c.name), environments={e: p for e, p in environments.items() if p})
            files[app.path] = _yaml(new)
            locks.append(f"app:{app.name}")
            summary.append(f"removes it from application `{app.name}`")
        return Change(files, tuple(locks), f"destroy {c.name}", tuple(summary), ())

    # ------------------------------------------------------------------ reviewing and merging

    def pr_catalogs(self, pr: PullRequest) -> tuple[Catalog, Catalog]:
        self.workspace.fetch()
        base = self.catalog(self.workspace.head_of(pr.base), fetch=False)
        head = self.catalog(pr.head, fetch=False)
        return base, head

    def changed_paths(self, base: Catalog, head: Catalog) -> tuple[str, ...]:
        """What the pull request changes, as the forge shows it: the diff from the merge base.
        Without a merge base, every path that differs between the two trees (the stricter)."""
        key = (base.commit, head.commit)
        cached = self._changes.get(key)
        if cached is not None:
            return cached
        try:
            paths = tuple(self.workspace.changed_files(base.commit, head.commit))
        except GitError:
            paths = tuple(sorted(p for p in {*base.files, *head.files} if base.files.get(p) != head.files.get(p)))
        if len(self._changes) >= 32:
            self._changes.pop(next(iter(self._changes)))
        self._changes[key] = paths
        return paths

    def status(self, pr: PullRequest, catalogs: tuple[Catalog, Catalog] | None = None) -> PrStatus:
        """Gather what judging `pr` needs (the base and head catalogs, the changed paths) and
        decide with review.pr_status. A closed pull request is not judged."""
        if not pr.is_open:
            return pr_status(pr, None)
        base, head = catalogs or self.pr_catalogs(pr)
        environments = affected_environments(base, head)
        return pr_status(
            pr, base.config, environments=environments, changed_paths=self.changed_paths(base, head),
            unpromoted=promotion_blockers(base, head, environments, self.facts.ran_ok),
        )

    def pr_view(self, number: int) -> dict[str, Any]:
        pr = self.forge.get_pr(number)
        status = self.status(pr)
        view: dict[str, Any] = {
            "number": pr.number, "title": pr.title, "state": pr.state, "author": pr.author, "url": pr.url,
            "branch": pr.branch, "head": pr.head, "body": pr.body, "merge_commit": pr.merge_commit,
            "checks": {name: check.to_json() for name, check in status.checks.items()},
            "meta": {k: v for k, v in pr.meta.to_json().items() if k in ("verb", "model", "deploy", "slack")},
        }
        if pr.is_open:
            view["environments"] = list(status.environments)
            view["promotion"] = list(status.unpromoted)
            view["policy"] = list(status.policy_paths)
            view["approvals"] = {
                "met": not status.missing, "needed": {a.env: a.needed for a in status.approvals},
                "by": list(status.approved_by), "missing": list(status.missing),
            }
        else:
            view["approvals"] = {"by": list(status.approved_by), "missing": []}
        return view

    def approve(self, number: int, actor: Actor) -> PullRequest:
        pr = self.forge.get_pr(number)
        if not pr.is_open:
            raise Refusal(messages.pr_not_open(number, pr.state))
        base, _ = self.pr_catalogs(pr)
        person = base.config.people.get(actor.name)
        if person is None:
            raise Refusal(messages.not_known(actor.name))
        if actor.name == pr.author:
            raise Refusal(messages.own_approval(number))
        self.forge.add_review(number, Review(actor.name, "approved", pr.head))
        return self.forge.get_pr(number)

    def merge_blockers(self, pr: PullRequest, catalogs: tuple[Catalog, Catalog] | None = None) -> list[str]:
        return list(self.status(pr, catalogs).blockers)

    def merge(self, number: int, actor: Actor) -> str:
        pr = self.forge.get_pr(number)
        if not pr.is_open:
            raise Refusal(messages.pr_not_open(number, pr.state))
        catalogs = self.pr_catalogs(pr)
        base, head = catalogs
        refusal = ""
        if actor.via != "bot":  # the bot merges only what merge_blockers clears (auto_merge)
            person = base.config.people.get(actor.name)
            if person is None:
                raise Refusal(messages.not_known(actor.name))
            decision = merge_decision(
                base.config, person, actor.name, number,
                environments=affected_environments(base, head), changed_paths=self.changed_paths(base, head),
            )
            refusal = decision.reason
        blockers = self.status(pr, catalogs).blockers
        if blockers:
            raise Refusal(messages.cannot_merge_yet(number, blockers, refusal))
        if refusal:
            raise Refusal(messages.refused(refusal))
        try:
            commit = self.forge.merge(number, message=f"Merge #{number}: {pr.title}\n\nMerged by {actor.name}.", expected_head=pr.head)
        except ForgeError as exc:
            raise Refusal(str(exc)) from None
        return commit

    def close(self, number: int, actor: Actor) -> None:
        pr = self.forge.get_pr(number)
        if not pr.is_open:
            raise Refusal(messages.pr_not_open(number, pr.state))
        catalog = self.catalog()
        if catalog.config.people.get(actor.name) is None:
            raise Refusal(messages.not_known(actor.name))
        self.forge.close(number)

    def release_locks(self, pr: PullRequest) -> None:
        self.locks.release(pr.meta.locks, pr.number)
