"""The wiring: one Context per process, built once from Settings, holding the ports."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot import redact
from bot.catalog import ManifestCache
from bot.config import Settings
from bot.forges.base import Forge, PullRequest
from bot.gitops import Actor, GitOps, Refusal
from bot.gitrepo import Workspace
from bot.jobs import Jobs
from bot.locks import FileLocks, Locks, RedisLocks
from bot.notify import Notifier, NullNotifier
from bot.sources import Guard

if TYPE_CHECKING:
    from bot.deploy.targets.local import LocalTarget
    from bot.sources import Access

log = logging.getLogger("aimodel")


def _describe_artifact(uri: str, declared_format: str, access: Access) -> Any:
    # imported when a proposal names an artifact: fetching code is heavy for the commands that do not
    from bot.checks.fetch import describe_artifact

    return describe_artifact(uri, declared_format, access)


class NotInitialized(RuntimeError):
    pass


class Context:
    def __init__(self, settings: Settings, *, forge: Forge | None = None, workspace: Workspace | None = None, notifier: Notifier | None = None) -> None:
        self.settings = settings
        redact.install(settings)  # before anything can log or reply
        home = settings.home
        if forge is None:
            from bot.forges.local import LocalForge

            if not (home / "repo.git").exists():
                raise NotInitialized(f"no manifest repository in {home}; run `aimodel init` first")
            forge = LocalForge(home, default_branch=settings.default_branch, on_event=self.on_event)
        self.forge = forge
        if getattr(forge, "on_event", False) is None:  # a forge built before the Context (GitHub)
            setattr(forge, "on_event", self.on_event)  # noqa: B010
        if workspace is None:
            workspace = Workspace(home / "work", settings.default_branch)
        self.workspace = workspace
        self.locks: Locks = RedisLocks(settings.redis_url) if settings.redis_url else FileLocks(home / "locks")
        self.notifier: Notifier = notifier or NullNotifier()
        bind = getattr(self.notifier, "bind", None)
        if callable(bind):
            bind(self)  # a notifier that reads the repository config (Slack: the prod channel)
        self.cache_dir = home / "cache" / "artifacts"
        self.guard = Guard.from_settings(settings)  # what no person's URI may reach
        self.gitops = GitOps(
            forge, workspace, self.locks, cache=ManifestCache(home / "cache" / "manifests.sqlite"),
            describe_artifact=_describe_artifact, guard=self.guard,
        )

    def close(self) -> None:
        """Stop the git helper processes this context started."""
        self.workspace.close()
        shutdown = getattr(self.forge, "shutdown", None)  # the GitHub forge's HTTP sessions
        if callable(shutdown):
            shutdown()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def target(self) -> LocalTarget:
        from bot.deploy.targets.local import LocalTarget

        return LocalTarget(self.settings.home / "deploy")

    @cached_property
    def jobs(self) -> Jobs:
        return Jobs(self)

    def on_event(self, event: str, payload: dict[str, Any]) -> None:
        from handlers.forge_events import dispatch

        dispatch(self, event, payload)

    def signing_key(self) -> Any:
        from bot.checks.sign import load_private_key

        return load_private_key(self.settings.signing_key_path)

    # ------------------------------------------------------------------ follow-ups of checks and merges

    def notify_pr(self, pr: PullRequest, kind: str, text: str, extra: dict[str, Any] | None = None) -> None:
        if self.notifier.enabled:
            data = {"pr": pr.number, "title": pr.title, "url": pr.url, "text": text, "meta": pr.meta, **(extra or {})}
            self.jobs.notify(kind, redact.redact_value(data))  # every notifier (Slack, GitHub comments) reads this

    def notify_checks(self, pr: PullRequest) -> None:
        from bot import messages

        fresh = self.forge.get_pr(pr.number)
        lines = [messages.check_line(c.name, c.state, c.summary) for c in fresh.checks.values() if c.commit == fresh.head]
        self.notify_pr(fresh, "checks", f"Checks on #{fresh.number}:\n" + "\n".join(lines), {"checks": {c.name: c.to_json() for c in fresh.checks.values()}})

    def evaluate_merge(self, number: int) -> None:
        pr = self.forge.get_pr(number)
        if not pr.is_open:
            return
        blockers = self.gitops.merge_blockers(pr)
        if blockers:
            if not any(b.startswith("check") for b in blockers):
                self.notify_pr(pr, "waiting", f"#{pr.number} is green and waits for: " + "; ".join(blockers))
            return
        base = self.gitops.catalog(fetch=False)
        if base.config.auto_merge:
            try:
                self.gitops.merge(number, Actor("aimodel-bot", "bot"))
            except Refusal as exc:
                log.info("auto-merge of #%s refused: %s", number, exc)
        else:
            self.notify_pr(pr, "ready", f"#{pr.number} has green checks and its approvals; it can be merged.")

    def deploy(self, commit: str, pr_number: int | None) -> None:
        from bot import messages
        from bot.deploy.reconcile import reconcile

        results = reconcile(self)
        summary = [messages.deploy_result(r.env, r.applied, r.removed, r.failed, r.apps) for r in results]
        record = {
            "commit": commit, "at": time.time(), "ok": all(r.ok for r in results),
            "results": [dataclasses.asdict(r) for r in results], "summary": summary,
        }
        if pr_number:
            self.forge.update_meta(pr_number, {"deploy": record})
            pr = self.forge.get_pr(pr_number)
            self.notify_pr(pr, "deployed" if record["ok"] else "deploy_failed", "\n".join(summary), {"deploy": record})


def faces(settings: Settings) -> dict[str, Any]:
    """The forge and notifier each configured face brings (GitHub forge, Slack notifier)."""
    kwargs: dict[str, Any] = {}
    if settings.github:
        from bot.forges.github import build_github_forge

        kwargs.update(build_github_forge(settings))
    if settings.slack:
        from handlers.slack_notify import SlackNotifier

        slack = SlackNotifier(settings.slack)
        github_notifier = kwargs.get("notifier")
        kwargs["notifier"] = github_notifier.chain(slack) if github_notifier is not None else slack
    return kwargs



def build_context(settings: Settings) -> Context:
    """The Context for this process with every configured face: CLI, worker and web alike."""
    return Context(settings, **faces(settings))
