"""The wiring: one Context per process, built once from Settings, holding the ports.

No business rules live here: the pull request's lifecycle is bot.lifecycle, its status
bot.review. The faces (Slack, the webhook endpoints) register themselves (bot.faces); the
Context asks each for its notifier and tells the forge where to send its events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot import faces, lifecycle, redact
from bot.catalog import ManifestCache
from bot.config import Settings
from bot.deploy.facts import RecordedFacts
from bot.forges.base import EmitsEvents, Forge, HoldsConnections
from bot.gitops import GitOps
from bot.gitrepo import Workspace
from bot.jobs import Jobs
from bot.locks import FileLocks, Locks, RedisLocks
from bot.notify import Fanout, Notifier, NullNotifier
from bot.sources import Guard
from bot.store import Store, open_store

if TYPE_CHECKING:
    from bot.deploy.records import ReleaseLog
    from bot.deploy.targets.base import Target
    from bot.sources import Access

NotifierFactory = Callable[["Context"], Notifier | None]


class _Custody:
    """The registry's intake, bound to the store. Fetching code is imported when a proposal
    names an artifact or a data set: it is heavy for the commands that do not."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe_artifact(self, uri: str, declared_format: str, access: Access) -> Any:
        from bot.checks.fetch import describe_artifact

        return describe_artifact(uri, declared_format, access, self.store)

    def keep_dataset(self, uri: str, access: Access) -> tuple[str, str, str]:
        from bot.checks.fetch import keep_dataset

        return keep_dataset(uri, access, self.store)


class NotInitialized(RuntimeError):
    pass


class Context:
    def __init__(
        self,
        settings: Settings,
        *,
        forge: Forge | None = None,
        workspace: Workspace | None = None,
        notifier: Notifier | None = None,
        notifiers: Sequence[NotifierFactory] = (),
    ) -> None:
        """`notifier` replaces every notifier (tests); `notifiers` are the forge's own (GitHub's
        summary comment), told before the faces' (Slack)."""
        self.settings = settings
        redact.install(settings)  # before anything can log or reply
        home = settings.home
        if forge is None:
            from bot.forges.local import LocalForge

            if not (home / "repo.git").exists():
                raise NotInitialized(f"no manifest repository in {home}; run `aimodel init` first")
            forge = LocalForge(home, default_branch=settings.default_branch)
        self.forge = forge
        if isinstance(forge, EmitsEvents) and forge.on_event is None:
            forge.on_event = self.on_event
        if workspace is None:
            workspace = Workspace(home / "work", settings.default_branch)
        self.workspace = workspace
        self.locks: Locks = RedisLocks(settings.redis_url) if settings.redis_url else FileLocks(home / "locks")
        self.cache_dir = home / "cache" / "artifacts"
        self.guard = Guard.from_settings(settings)  # what no person's URI may reach
        self.store: Store = open_store(settings.artifact_store_url)  # the registry keeps the bytes
        custody = _Custody(self.store)
        self.gitops = GitOps(
            forge, workspace, self.locks, cache=ManifestCache(home / "cache" / "manifests.sqlite"),
            describe_artifact=custody.describe_artifact, guard=self.guard, keep_dataset=custody.keep_dataset,
            facts=RecordedFacts(lambda: self.releases, lambda: self.target),
        )
        if notifier is None:
            factories = (*notifiers, *faces.load(settings).notifiers)
            made = [n for make in factories if (n := make(self)) is not None]
            notifier = Fanout(made) if made else NullNotifier()
        self.notifier: Notifier = notifier

    def close(self) -> None:
        """Stop the git helper processes and the network sessions this context started."""
        self.workspace.close()
        if isinstance(self.forge, HoldsConnections):
            self.forge.shutdown()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def target(self) -> Target:
        from bot.deploy.targets.kserve import pick_target
        from bot.deploy.targets.local import LocalTarget
        from bot.serving.control import model_server

        # per environment, as the config names it: local, or kserve (bot.deploy.targets.kserve)
        deploy = self.settings.home / "deploy"
        local = LocalTarget(deploy, model_server(self.settings), releases=self.releases, keep=self.settings.releases.keep)  # MLServer with the serve extra
        return pick_target(local, self.workspace, self.settings.artifact_store_url, locks=deploy, kubeconfig=self.settings.kubeconfig)

    @cached_property
    def releases(self) -> ReleaseLog:
        """What each apply did, per environment and application (history, rollback, retirement)."""
        from bot.deploy.records import ReleaseLog

        return ReleaseLog(self.settings.home / "releases")

    @cached_property
    def jobs(self) -> Jobs:
        return Jobs(self)

    def on_event(self, event: str, payload: Mapping[str, Any]) -> None:
        """The forge's event sink."""
        lifecycle.on_event(self, event, payload)

    def signing_key(self) -> Any:
        from bot.checks.sign import load_private_key

        return load_private_key(self.settings.signing_key_path)


def forge_parts(settings: Settings) -> dict[str, Any]:
    """The forge the settings name, with its working clone and its own notifier (GitHub)."""
    if not settings.github:
        return {}
    from bot.forges.github import build_github_forge

    return build_github_forge(settings)


def build_context(settings: Settings) -> Context:
    """The Context for this process with every configured face: CLI, worker and web alike."""
    return Context(settings, **forge_parts(settings))
