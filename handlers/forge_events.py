"""Forge events -> queued work. Both the local forge and GitHub's webhooks end up here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.jobs import ChecksNotQueued, QueueError

if TYPE_CHECKING:
    from bot.app import Context


def dispatch(ctx: Context, event: str, payload: dict[str, Any]) -> None:
    if event in ("pull_request.opened", "pull_request.synchronize", "pull_request.reopened"):
        number = int(payload["number"])
        try:
            ctx.jobs.checks(number, str(payload["head"]))
        except QueueError as exc:  # the pull request exists either way: say so, do not undo it
            raise ChecksNotQueued(number, str(exc)) from None
    elif event == "pull_request.closed":
        pr = ctx.forge.get_pr(int(payload["number"]))
        ctx.gitops.release_locks(pr)
        if not payload.get("merged"):
            ctx.notify_pr(pr, "closed", f"Pull request #{pr.number} was closed without merging; the lock on {pr.meta.get('model', 'its model')} is released.")
    elif event == "pull_request_review.submitted":
        ctx.jobs.after_checks(int(payload["number"]))
    elif event == "push" and payload.get("ref") == f"refs/heads/{ctx.settings.default_branch}":
        ctx.jobs.deploy(str(payload["after"]), payload.get("pr"))
