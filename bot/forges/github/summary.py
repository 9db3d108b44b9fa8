"""The pull request's one summary comment on GitHub and its `aimodel/policy` check, kept in
step with what the bot tells people. What the pull request needs is bot.review's answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.forges.base import CheckResult, PullRequest
from bot.forges.github.forge import GitHubForge, null_lock
from bot.fsutil import file_lock
from bot.gitrepo import GitError
from bot.messages import github as md
from bot.review import PrStatus, pr_status

log = logging.getLogger("aimodel.github")


class GitHubNotifier:
    """Keeps the pull request's one summary comment and its `aimodel/policy` check in step with
    what the bot tells people. What the pull request needs comes from `status` (GitOps.status,
    that is bot.review.pr_status), the same answer every face and the merge read."""

    enabled = True

    def __init__(self, forge: GitHubForge, status: Callable[[PullRequest], PrStatus]) -> None:
        self.forge = forge
        self.status = status

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        number = data.get("pr")
        if number:
            try:
                self._update(int(number), kind, data)
            except Exception:  # the summary is refreshed on the next event; Slack still hears now
                log.exception("could not refresh the summary of #%s on GitHub", number)

    def _update(self, number: int, kind: str, data: dict[str, Any]) -> None:
        # one refresh of a pull request's summary at a time, each reading the state after the
        # previous one wrote: a slow refresh that read older state never overwrites a newer one
        home = self.forge.home
        lock = file_lock(home / "github" / "locks" / f"summary-{number}.lock") if home else null_lock()
        with lock:
            self._refresh(number, kind, data)

    def _refresh(self, number: int, kind: str, data: dict[str, Any]) -> None:
        forge = self.forge
        pr = forge.get_pr(number)
        try:
            status = self.status(pr)
        except GitError:  # the clone cannot read the commits yet: judged on the next event
            status = pr_status(pr, None)
        checks = list(status.checks.values())
        blockers = list(status.missing)
        approvals = {"by": list(status.approved_by), "missing": blockers}
        if status.judged:
            approvals["can_approve"] = list(status.can_approve_logins)
        policy: CheckResult | None = None
        if pr.state == "merged":
            text = f"Merged as `{pr.merge_commit[:10]}`."
        elif pr.state == "closed":
            text = "Closed without merging; its locks are released."
        elif status.checks_failed:
            text = md.failed_text()
            policy = CheckResult(md.POLICY, "skipped", "blocked: a check failed", "", pr.head)
        elif kind == "ready" or (status.checks_done and not blockers):
            text = md.ready_text(status.auto_merge)
            policy = CheckResult(md.POLICY, "success", "approvals met", "", pr.head)
        elif not status.checks_done:
            text = "⏳ Checks are running."
            policy = CheckResult(md.POLICY, "pending", "waiting for the checks", "", pr.head)
        else:
            text = md.waiting_text(blockers)
            policy = CheckResult(md.POLICY, "failure" if any("requested changes" in b for b in blockers) else "pending", md.policy_summary(blockers), "", pr.head)
        deploy = data.get("deploy") or pr.meta.deploy
        forge.comment(number, md.summary_comment(pr, checks=checks, approvals=approvals, status=text, deploy=deploy))
        if policy is not None and pr.is_open:
            forge.set_check(number, policy)
