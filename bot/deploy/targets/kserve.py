"""The KServe target: a release rendered as InferenceServices and ConfigMaps, then committed
for Argo CD / Flux (`mode: gitops`) or applied to the cluster (`mode: apply`).

One apply: read what the environment holds (the deploy folder, or our objects in the
cluster), render the plan (kserve_render), check the bytes of every model version that
changes through the same gate as the local target (digest, signature, attestation), keep
the previous objects of a refused model and of the applications pinning it, then publish.
`EnvTargets` routes each environment to `local` or `kserve` by the repository config
(`environments.<env>.target`); `pick_target` builds it for the Context.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.deploy.drift import Actual, LiveRelease, Placed
from bot.deploy.plan import EnvPlan, ModelRelease
from bot.deploy.targets.base import (
    ApplyResult,
    DeployRefused,
    EnvStatus,
    Installer,
    ModelState,
    Provenance,
    RemembersApplies,
    Target,
    deployed_name,
)
from bot.deploy.targets.kserve_cluster import ClusterApplier, ClusterError, default_client
from bot.deploy.targets.kserve_gitops import GitOpsPublisher, PublishError
from bot.deploy.targets.kserve_render import (
    CONFIGMAP,
    ISVC,
    PREFIX,
    Key,
    Obj,
    ReleaseMeta,
    content,
    render,
    settle,
)
from bot.deploy.targets.kserve_storage import place
from bot.fsutil import file_lock
from bot.gitrepo import GitError
from bot.manifests import CONFIG_PATH, KServeSettings, ManifestError, parse_config
from bot.messages import kserve as msg
from bot.store import StoreError, digest_of

if TYPE_CHECKING:
    from bot.gitrepo import Workspace

SettingsSource = Callable[[], Mapping[str, KServeSettings]]  # env -> settings, for kserve envs


@runtime_checkable
class AppliesReleases(Protocol):
    """A target that marks what it applies with the release (the PR, release ids per
    application) and splits traffic for a canary (model -> percent to the new version). The
    deploy passes them when it has them; a target without this ability gets apply()."""

    def apply_release(
        self, plan: EnvPlan, install: Installer, *, meta: ReleaseMeta | None = None, canary: Mapping[str, int] | None = None
    ) -> ApplyResult: ...


class KServeTarget:
    kind = "kserve"

    def __init__(
        self,
        settings: SettingsSource,
        *,
        storage: str,
        workspace: Workspace | None = None,
        cluster: ClusterApplier | None = None,
        locks: Path | None = None,
    ) -> None:
        """`storage`: the artifact store's URL (a setting's storage_uri overrides it);
        `workspace` publishes gitops releases; `cluster` applies, and reads health; `locks`:
        a folder for one lock per environment, so two processes of one home never apply (and
        roll back) the same environment at once."""
        self.settings = settings
        self.storage = storage
        self.locks = locks
        self.publisher = GitOpsPublisher(workspace) if workspace is not None else None
        self.cluster = cluster

    def environments(self) -> list[str]:
        return sorted(self.settings())

    def _settings(self, env: str) -> KServeSettings:
        s = self.settings().get(env)
        if s is None:
            raise ClusterError(msg.no_settings(env))
        return s

    def _previous(self, env: str, s: KServeSettings) -> dict[Key, Obj]:
        if s.mode == "gitops":
            if self.publisher is None:
                raise PublishError(msg.no_clone())
            try:
                return self.publisher.committed(s)[1]
            except GitError:
                raise PublishError(msg.repo_unreadable()) from None
        return self._cluster().live(s, env)

    def _cluster(self) -> ClusterApplier:
        if self.cluster is None:
            self.cluster = ClusterApplier()
        return self.cluster

    def apply(
        self,
        plan: EnvPlan,
        install: Installer,
        who: Provenance | None = None,
        *,
        repair: bool = False,
        meta: ReleaseMeta | None = None,
        canary: Mapping[str, int] | None = None,
    ) -> ApplyResult:
        """`repair` changes nothing here: what is rendered is applied whole every time.
        `canary`: model -> percent; without it, what the release asks for (plan.canary)."""
        if meta is None and who is not None:
            meta = ReleaseMeta(pr=who.pr)
        if canary is None:
            canary = plan.canary
        if self.locks is None:
            return self._apply(plan, install, meta, canary)
        with file_lock(self.locks / f".kserve-{plan.env}.lock"):
            return self._apply(plan, install, meta, canary)

    def _apply(self, plan: EnvPlan, install: Installer, meta: ReleaseMeta | None, canary: Mapping[str, int] | None) -> ApplyResult:
        result = ApplyResult(plan.env, plan.commit)
        try:
            s = self._settings(plan.env)
            previous = self._previous(plan.env, s)
        except (ClusterError, PublishError) as exc:
            result.failed["*"] = str(exc)
            return result
        try:
            rendered = render(plan, s, storage=s.storage_uri or self.storage, meta=meta, canary=canary)
        except ValueError as exc:  # a canary for a model the release does not hold
            result.failed["*"] = str(exc)
            return result
        refused = dict(rendered.refused)
        for key, obj in rendered.objects.items():
            old = previous.get(key)
            if key[0] == ISVC and (old is None or content(old) != content(obj)):
                refused.update(self._verify(plan.models[key[1]], install))
        desired = settle(plan, rendered.objects, previous, refused)
        result.failed.update(refused)
        try:
            if s.mode == "gitops":
                assert self.publisher is not None  # _previous checked it
                self.publisher.publish(s, desired, _message(plan, desired, previous))
                failures: dict[str, str] = {}
            else:
                failures = self._cluster().apply(s, desired, previous)
        except (ClusterError, PublishError) as exc:
            failures = {"*": str(exc)}
        if failures:
            result.failed.update(failures)
            return result  # rolled back, or never published: nothing changed
        for key, obj in desired.items():
            if previous.get(key) == obj:
                continue
            if key[0] == ISVC:
                result.applied.append(f"{key[1]}@{_version(obj)}")
            elif key[0] == CONFIGMAP:
                result.apps.append(key[1].removeprefix("aimodel-"))
        result.removed.extend(key[1] if key[0] == ISVC else f"app {key[1].removeprefix('aimodel-')}" for key in previous if key not in desired)
        return result

    apply_release = apply

    def _verify(self, model: ModelRelease, install: Installer) -> dict[str, str]:
        """The same gate as the local target's (digest, signature, attestation); the verified
        file is then placed where the cluster reads it (kserve_storage)."""
        with tempfile.TemporaryDirectory(prefix="aimodel-verify-") as folder:
            try:
                install(model, Path(folder))
                if digest_of(model.uri):
                    place(self.storage, model.sha256, model.format, Path(folder) / deployed_name(model))
            except DeployRefused as exc:
                return {model.name: str(exc)}
            except StoreError as exc:  # its message is written to be shown
                return {model.name: msg.cannot_place(model.name, str(exc))}
            except OSError as exc:  # the reason, not a path on this machine
                return {model.name: msg.cannot_place(model.name, exc.strerror or type(exc).__name__)}
        return {}

    def _objects(self, env: str) -> dict[Key, Obj]:
        s = self._settings(env)
        if s.mode == "apply":
            return self._cluster().live(s, env)
        if self.publisher is None:
            return {}
        return self.publisher.committed(s, fetch=False)[1]

    def actual(self, env: str, *, measure: bool = False) -> Actual:
        """What is committed (gitops) or live (apply): applications from their ConfigMaps,
        model versions from their InferenceServices with the digest each names. The files
        are the cluster's business: `measure` has nothing to hash here."""
        try:
            objects = self._objects(env)
        except (ClusterError, GitError):
            return Actual(env)
        apps = _live(objects)
        placed = {
            (k[1], _version(o)): Placed(str(o["metadata"].get("annotations", {}).get(f"{PREFIX}sha256", "")), {})
            for k, o in objects.items() if k[0] == ISVC
        }
        return Actual(env, apps, placed)

    def status(self, env: str) -> EnvStatus:
        """apply: what the cluster holds and whether it answers. gitops: what is committed, and
        whether it answers when the bot may read the cluster (`kserve.context`)."""
        try:
            s = self._settings(env)
            if s.mode == "apply":
                return EnvStatus(env, "", self._cluster().health(s, env), _apps(self._cluster().live(s, env)))
            if self.publisher is None:
                return EnvStatus(env)
            head, objects = self.publisher.committed(s, fetch=False)
        except ClusterError as exc:
            return EnvStatus(env, models={"*": ModelState("", "failed", str(exc))})
        except GitError:
            return EnvStatus(env, models={"*": ModelState("", "failed", msg.repo_unreadable())})
        note = msg.committed(head, s.branch or "the default branch")
        models = {k[1]: ModelState(_version(o), "pending", note) for k, o in objects.items() if k[0] == ISVC}
        if s.context:
            why = msg.engine_behind()
            try:
                health = self._cluster().health(s, env)
            except ClusterError as exc:
                health, why = {}, str(exc)
            for name, committed in models.items():
                live = health.get(name)
                if live is None or live.version != committed.version:
                    models[name] = ModelState(committed.version, "pending", msg.not_synced(head, why))
                else:
                    models[name] = live
        return EnvStatus(env, head, models, _apps(objects))


def _version(obj: Obj) -> str:
    return str(obj["metadata"].get("annotations", {}).get(f"{PREFIX}version", ""))


def _live(objects: Mapping[Key, Obj]) -> dict[str, LiveRelease]:
    """Each application's release as its ConfigMap names it: app -> version and model versions."""
    apps: dict[str, LiveRelease] = {}
    for (kind, name), obj in objects.items():
        if kind == CONFIGMAP:
            data = obj.get("data", {})
            models = {str(m): str(v["version"]) for m, v in json.loads(data.get("models.json", "{}")).items()}
            apps[name.removeprefix("aimodel-")] = LiveRelease(str(data.get("APP_VERSION", "")), models)
    return apps


def _apps(objects: Mapping[Key, Obj]) -> dict[str, dict[str, object]]:
    return {name: {"version": r.version, "models": dict(r.models)} for name, r in _live(objects).items()}


def _message(plan: EnvPlan, desired: Mapping[Key, Obj], previous: Mapping[Key, Obj]) -> str:
    changed = [f"{k[1]}@{_version(o)}" for k, o in desired.items() if k[0] == ISVC and previous.get(k) != o]
    gone = [k[1] for k in previous if k not in desired]
    parts = [*changed, *(f"-{g}" for g in gone)] or ["applications"]
    return f"deploy {plan.env}: {', '.join(parts)}\n\nRendered for KServe from {plan.commit}."


# --------------------------------------------------------------------------- per environment


class EnvTargets:
    """Each environment goes to the target its config names (`environments.<env>.target`)."""

    def __init__(self, local: Target, kserve: KServeTarget) -> None:
        self.local = local
        self.kserve = kserve
        self.kind = "local+kserve" if kserve.environments() else local.kind

    def _for(self, env: str) -> Target:
        return self.kserve if env in self.kserve.settings() else self.local

    def apply(self, plan: EnvPlan, install: Installer, who: Provenance | None = None, *, repair: bool = False) -> ApplyResult:
        return self._for(plan.env).apply(plan, install, who, repair=repair)

    def actual(self, env: str, *, measure: bool = False) -> Actual:
        return self._for(env).actual(env, measure=measure)

    def last_apply(self, env: str) -> dict[str, Any]:
        target = self._for(env)
        if isinstance(target, RemembersApplies):
            return target.last_apply(env)
        return {"at": 0.0, "commit": "", "failed": []}

    def apply_release(
        self, plan: EnvPlan, install: Installer, *, meta: ReleaseMeta | None = None, canary: Mapping[str, int] | None = None
    ) -> ApplyResult:
        target = self._for(plan.env)
        if isinstance(target, KServeTarget):
            return target.apply(plan, install, meta=meta, canary=canary)
        return target.apply(plan, install)

    def status(self, env: str) -> EnvStatus:
        return self._for(env).status(env)

    def environments(self) -> list[str]:
        kserve = set(self.kserve.environments())
        return sorted(kserve | {e for e in self.local.environments() if e not in kserve})


def kserve_settings_at_head(workspace: Workspace) -> dict[str, KServeSettings]:
    """The kserve environments of the repository config on the default branch as last fetched.
    A config that does not parse names none: the reconcile refuses a broken branch anyway."""
    try:
        text = workspace.read_file(workspace.head_of(), CONFIG_PATH)
        config = parse_config(text or b"")
    except (GitError, ManifestError):
        return {}
    return {name: env.kserve for name, env in config.environments.items() if env.target == "kserve" and env.kserve is not None}


def pick_target(local: Target, workspace: Workspace, storage: str, locks: Path | None = None, kubeconfig: str = "") -> Target:
    """The Context's target: `local` unless the config sends an environment to KServe."""
    cluster = ClusterApplier(functools.partial(default_client, kubeconfig=kubeconfig))
    kserve = KServeTarget(lambda: kserve_settings_at_head(workspace), storage=storage, workspace=workspace, cluster=cluster, locks=locks)
    return EnvTargets(local, kserve)
