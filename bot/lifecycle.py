"""The pull request's lifecycle: opened or pushed -> checks -> evaluate -> merge -> deploy -> notify.

Plain functions over narrow ports. The forges (the local one in-process, GitHub through its
webhooks) turn what happened into events; `on_event` maps each event to queued work; the
queue's tasks call back into `checks`, `evaluate` and `deploy`. What a pull request needs
before it can merge is decided once, by `bot.review.pr_status` (through `GitOps.status`).

Checks run once per head a person pushed. Signing commits nothing: the bundles are kept in
the artifact store (bot.checks.sign_store), so the head stays the person's commit. A pull
request signed by an older bot may still have that bot's signature commit as its head, with
the results carried over to it; `checks` recognises such a commit from git (its only parent
is the checked head, the bot wrote it, it changes nothing but `*.sig` files) and does nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot import messages, metrics, redact
from bot.forges.base import CheckResult, Forge, ForgeError, PullRequest
from bot.forges.meta import SignResult
from bot.gitrepo import BOT, GitError, Workspace
from bot.notify import Notifier

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.deploy.targets.base import ApplyResult
    from bot.gitops import GitOps

log = logging.getLogger("aimodel.lifecycle")


class Queue(Protocol):
    """The work the lifecycle queues (bot.jobs.Jobs)."""

    def checks(self, number: int, head: str, swept: bool = False, force: bool = False) -> None: ...

    def after_checks(self, number: int) -> None: ...

    def deploy(self, commit: str, pr: int | None = None) -> None: ...

    def notify(self, kind: str, data: dict[str, Any]) -> None: ...


class Ports(Protocol):
    """What the lifecycle reads and acts through (bot.app.Context wires them)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def forge(self) -> Forge: ...

    @property
    def workspace(self) -> Workspace: ...

    @property
    def gitops(self) -> GitOps: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def jobs(self) -> Queue: ...


# --------------------------------------------------------------------------- events -> work


def _head_pushed(ports: Ports, payload: Mapping[str, Any]) -> None:
    from bot.jobs import ChecksNotQueued, QueueError

    number = int(payload["number"])
    try:
        ports.jobs.checks(number, str(payload["head"]))
    except QueueError as exc:  # the pull request exists either way: say so, do not undo it
        raise ChecksNotQueued(number, str(exc)) from None


def _closed(ports: Ports, payload: Mapping[str, Any]) -> None:
    pr = ports.forge.get_pr(int(payload["number"]))
    ports.gitops.release_locks(pr)
    if not payload.get("merged"):
        notify(ports, pr, "closed", messages.closed_notice(pr.number, pr.meta.model))


def _reviewed(ports: Ports, payload: Mapping[str, Any]) -> None:
    ports.jobs.after_checks(int(payload["number"]))


def _pushed(ports: Ports, payload: Mapping[str, Any]) -> None:
    if payload.get("ref") == f"refs/heads/{ports.settings.default_branch}":
        ports.jobs.deploy(str(payload["after"]), payload.get("pr"))


EVENTS: Mapping[str, Callable[[Ports, Mapping[str, Any]], None]] = {
    "pull_request.opened": _head_pushed,
    "pull_request.synchronize": _head_pushed,
    "pull_request.reopened": _head_pushed,
    "pull_request.closed": _closed,
    "pull_request_review.submitted": _reviewed,
    "push": _pushed,
}


def on_event(ports: Ports, event: str, payload: Mapping[str, Any]) -> None:
    """One forge event (local forge or GitHub webhook) -> the work it asks for."""
    handler = EVENTS.get(event)
    if handler is not None:
        handler(ports, payload)


# --------------------------------------------------------------------------- checks


def own_signature(workspace: Workspace, pr: PullRequest) -> str:
    """The commit `pr.head` signs, when the head is the bot's own signature commit; else "".
    Git must say so (one parent, the checked head; the bot's author; only `*.sig` changed) and
    the run that made it must have said so in the metadata (a re-run a person asked for
    forgets it, and the head is then checked like any other)."""
    checked = pr.meta.checked_head
    if not checked or pr.meta.signed_head != pr.head:
        return ""
    try:
        if not workspace.has_commit(pr.head):
            workspace.fetch()
        if workspace.parents(pr.head) != [checked] or workspace.commit_author(pr.head) != BOT.name:
            return ""
        changed = workspace.changed_files(checked, pr.head)
    except (GitError, ValueError):
        return ""
    return checked if changed and all(path.endswith(".sig") for path in changed) else ""


def checks(
    ports: Ports, number: int, head: str, run: Callable[[PullRequest], None], *, swept: bool = False, force: bool = False
) -> None:
    """The checks task: run the pipeline on a head a person pushed, once. Running it again for
    the same head (a sweep, a duplicate in the queue) finds the head's checks finished and
    does nothing: no second bot commit, no second notification. `swept`: the sweep found the
    bot's own signature commit without its carried-over results (the run that made it died).
    `force`: a person asked for the run (recheck)."""
    pr = ports.forge.get_pr(number)
    if not pr.is_open:
        return
    if pr.head != head:
        if own_signature(ports.workspace, pr) == head and not _complete(pr):
            resume_signed(ports, pr)  # the run that signed `head` stopped before it carried over
        return  # a newer commit has its own run
    if own_signature(ports.workspace, pr):
        if swept and not _complete(pr):
            resume_signed(ports, pr)
            return
        log.info("#%s: %s is the bot's signature commit; its checks were carried over", number, head[:10])
        return
    if not force and _complete(pr) and not any(c.state == "error" for c in pr.checks.values() if c.commit == head):
        log.info("#%s: the checks of %s have finished already", number, head[:10])
        return  # (a run that ended in an error is run again: the queue retries it)
    run(pr)


def recheck(ports: Ports, number: int, head: str = "") -> PullRequest:
    """Run the checks of the pull request's current head again (`pr recheck`, GitHub's Re-run
    of a check run on `head`: nothing when the pull request has moved on). A signature commit
    is then checked like any other head (its signature verified, not trusted). The run sets
    the head's checks pending as it starts; from then on a dead worker's run is the sweep's."""
    pr = ports.forge.get_pr(number)
    if not pr.is_open:
        raise ForgeError(messages.pr_not_open(number, pr.state))
    if head and pr.head != head:
        log.info("#%s: a re-run of %s asked for, but the head is %s now (its own run decides)", number, head[:10], pr.head[:10])
        return pr
    head = pr.head
    if pr.meta.signed_head == head:
        ports.forge.update_meta(number, lambda m: dataclasses.replace(m, signed_head="", unsigned_head=head) if m.signed_head == head else m)
    ports.jobs.checks(number, head, force=True)
    return ports.forge.get_pr(number)


def _complete(pr: PullRequest) -> bool:
    from bot.review import REQUIRED_CHECKS, current_checks

    done = current_checks(pr)
    return all(n in done and done[n].state != "pending" for n in REQUIRED_CHECKS)


def carry_over(forge: Forge, number: int, head: str, results: Iterable[CheckResult]) -> None:
    """Report a finished run's results on the bot's signature commit `head` on top of it."""
    for check in results:
        forge.set_check(number, dataclasses.replace(check, commit=head))


def resume_signed(ports: Ports, pr: PullRequest) -> None:
    checked = pr.meta.checked_head
    sign = pr.meta.sign_result or SignResult()
    results = [c for c in pr.checks.values() if c.commit == checked and c.name != "sign"]
    results.append(CheckResult("sign", sign.state, sign.summary, sign.details, checked))
    carry_over(ports.forge, pr.number, pr.head, results)
    checks_finished(ports, pr.number, pr.head)


def checks_finished(ports: Ports, number: int, head: str) -> None:
    """One "checks" notification per run, for the head the run ends on; a run overtaken by a
    newer push says nothing (the newer run reports)."""
    from bot.review import current_checks

    fresh = ports.forge.get_pr(number)
    if fresh.head != head:
        log.info("#%s moved on to %s; the run on %s does not report", number, fresh.head[:10], head[:10])
        return
    current = current_checks(fresh)
    lines = [messages.check_line(c.name, c.state, c.summary) for c in current.values()]
    notify(ports, fresh, "checks", messages.checks_notice(fresh.number, lines), {"checks": {c.name: c.to_json() for c in current.values()}})
    # Queued: the notifier's task retries its delivery. Until this is written (the queue was
    # unreachable, the worker died), the sweep finds the head's results untold and tells them.
    ports.forge.update_meta(number, lambda m: dataclasses.replace(m, told_head=head))
    ports.jobs.after_checks(number)


# --------------------------------------------------------------------------- evaluate and merge


def evaluate(ports: Ports, number: int) -> None:
    """After checks or a review: tell what still blocks, or merge when the config says so."""
    from bot.gitops import Actor, Refusal

    pr = ports.forge.get_pr(number)
    if not pr.is_open:
        return
    status = ports.gitops.status(pr)
    if status.blockers:
        if not status.check_blockers:
            notify(ports, pr, "waiting", messages.waiting_notice(pr.number, status.blockers))
        return
    if status.auto_merge:
        try:
            ports.gitops.merge(number, Actor("aimodel-bot", "bot"))
        except Refusal as exc:
            log.info("auto-merge of #%s refused: %s", number, exc)
        else:
            log.info("#%s merged by the bot (auto-merge)", number)
    else:
        notify(ports, pr, "ready", messages.ready_notice(pr.number))


# --------------------------------------------------------------------------- deploy


def deploy(ports: Ports, commit: str, pr_number: int | None, apply: Callable[[], list[ApplyResult]], *, retry: bool = False) -> None:
    """Reconcile every environment to the default branch; record and tell the outcome. A merge
    whose deploy is recorded already (a duplicate in the queue, a sweep) is not told twice;
    `retry`: the sweep found its apply failed and the target still differs, so it runs again
    (the record counts the attempts; the first failure, the last one and a success are told)."""
    from bot.messages import releases as rmsg

    recorded = ports.forge.get_pr(pr_number).meta.deploy if pr_number else None
    if recorded is not None and (recorded.get("ok") or not retry):
        log.info("#%s: its deploy is recorded already", pr_number)
        return
    attempt = int(recorded.get("attempts", 1)) + 1 if recorded is not None else 1
    results = apply()
    for r in results:
        metrics.deploy(r.env, "ok" if r.ok else "failed")
        log.info("deploy of %s to %s: %s", commit[:10], r.env, "ok" if r.ok else "failed")
    summary = [rmsg.apply_summary(r.env, r.applied, r.apps, r.removed, r.failed, r.kept, r.repaired, r.records) for r in results]
    ok = all(r.ok for r in results)
    reasons = [f"{r.env}: {m}: {why}" for r in results for m, why in r.failed.items()]
    record = {
        "commit": commit, "at": time.time(), "ok": ok, "attempts": attempt,
        "results": [dataclasses.asdict(r) for r in results], "summary": summary,
    }
    if not ok:
        log.warning("deploy of %s failed (attempt %s): %s", commit[:10], attempt, "; ".join(reasons))
    if pr_number:
        ports.forge.update_meta(pr_number, lambda m: dataclasses.replace(m, deploy=record))
        pr = ports.forge.get_pr(pr_number)
        last = attempt >= ports.settings.releases.attempts
        if ok:
            notify(ports, pr, "deployed", "\n".join(summary + ([rmsg.retried_ok(attempt)] if attempt > 1 else [])), {"deploy": record})
        elif attempt == 1 or last:
            hints = [rmsg.retry_hint(r.env) for r in results if not r.ok] + ([rmsg.gave_up(attempt)] if last and attempt > 1 else [])
            notify(ports, pr, "deploy_failed", "\n".join(summary + hints), {"deploy": record, "reason": "; ".join(reasons)})


# --------------------------------------------------------------------------- notify


def notify(ports: Ports, pr: PullRequest, kind: str, text: str, extra: Mapping[str, Any] | None = None) -> None:
    if ports.notifier.enabled:
        data = {"pr": pr.number, "title": pr.title, "url": pr.url, "text": text, "meta": pr.meta.to_json(), **(extra or {})}
        ports.jobs.notify(kind, redact.redact_value(data))  # every notifier (Slack, GitHub comments) reads this


# --------------------------------------------------------------------------- the sweep (level-triggered)


@dataclass(frozen=True)
class Mark:
    """What the queue remembers of one job (bot.jobs): queued or running, since when."""

    state: str  # queued | running
    at: float


@dataclass(frozen=True)
class SweepPlan:
    checks: tuple[tuple[int, str, bool], ...] = ()  # (pr, head, swept signature commit)
    deploys: tuple[tuple[str, int], ...] = ()  # (merge commit, pr)
    notices: tuple[tuple[int, str], ...] = ()  # (pr, head) whose finished checks were never told


def checks_key(number: int, head: str) -> str:
    return f"checks:{number}:{head}"


def notice_key(number: int, head: str) -> str:
    return f"tell:{number}:{head}"


def deploy_key(number: int) -> str:
    return f"deploy:{number}"


def _stale(mark: Mark | None, now: float, timeout: float, running_dead: bool) -> bool:
    """No job is on its way: none was marked, it was taken by a process that is gone
    (`running_dead`: no other process can hold it) or it has taken longer than the timeout."""
    if mark is None:
        return True
    if mark.state == "running" and running_dead:
        return True
    return now - mark.at > timeout


def sweep_plan(
    open_prs: Iterable[PullRequest],
    merged_prs: Iterable[PullRequest],
    marks: Mapping[str, Mark],
    *,
    now: float,
    timeout: float,
    running_dead: bool,
    signature_of: Callable[[PullRequest], str],
) -> SweepPlan:
    """What must run again, from state alone: an open pull request's head whose checks have
    not all finished, or finished but never told, and a merge with no deploy record, unless a
    live job is on its way.
    `signature_of(pr)`: the head the PR's bot signature commit signs, or "" (git decides)."""
    checks, notices = [], []
    for pr in open_prs:
        if _complete(pr):
            if pr.meta.told_head != pr.head and _stale(marks.get(notice_key(pr.number, pr.head)), now, timeout, running_dead) \
                    and _stale(marks.get(checks_key(pr.number, pr.head)), now, timeout, running_dead):
                notices.append((pr.number, pr.head))
            continue
        signed = signature_of(pr)
        # A signature commit's results come from the run on the head it signs.
        key = checks_key(pr.number, signed or pr.head)
        if _stale(marks.get(key), now, timeout, running_dead) and _stale(marks.get(checks_key(pr.number, pr.head)), now, timeout, running_dead):
            checks.append((pr.number, pr.head, bool(signed)))
    deploys = [
        (pr.merge_commit, pr.number)
        for pr in merged_prs
        if pr.merge_commit and pr.meta.deploy is None and _stale(marks.get(deploy_key(pr.number)), now, timeout, running_dead)
    ]
    return SweepPlan(tuple(checks), tuple(deploys), tuple(notices))


def retry_due(merged_prs: Iterable[PullRequest], marks: Mapping[str, Mark], *, now: float, attempts: int, delay: float,
              timeout: float, running_dead: bool) -> tuple[str, int] | None:
    """The newest merge whose recorded deploy failed and whose next attempt is due (the delay
    doubling with each attempt, up to `attempts` in all), unless one is on its way. Whether
    the target still differs from the desired state is the caller's question: it is asked
    only when this finds something (it reads the target)."""
    for pr in sorted(merged_prs, key=lambda p: p.number, reverse=True):
        record = pr.meta.deploy
        if record is None or not pr.merge_commit:
            continue
        if record.get("ok"):
            return None  # the newest apply went well: it applied everything merged before it
        done = int(record.get("attempts", 1))
        wait = delay * 2 ** (done - 1)
        if done < attempts and now - float(record.get("at", 0.0)) >= wait and _stale(marks.get(deploy_key(pr.number)), now, timeout, running_dead):
            return pr.merge_commit, pr.number
        return None  # an older failure was overtaken by this newer merge's apply
    return None
