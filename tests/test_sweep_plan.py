"""bot.lifecycle.sweep_plan: what must run again, decided from plain data."""

from __future__ import annotations

from bot.forges.base import CheckResult, PullRequest
from bot.forges.meta import PrMeta
from bot.lifecycle import Mark, checks_key, deploy_key, notice_key, sweep_plan

HEAD = "a" * 40
SIGNED = "b" * 40
NOW = 10_000.0


def _pr(number: int = 1, head: str = HEAD, states: dict[str, str] | None = None, **kw: object) -> PullRequest:
    checks = {n: CheckResult(n, s, "", "", head) for n, s in (states or {}).items()}
    return PullRequest(number, "t", "", "ada", "b", "main", head, checks=checks, **kw)  # type: ignore[arg-type]


def _plan(open_prs: list[PullRequest], marks: dict[str, Mark] | None = None, *, merged: list[PullRequest] | None = None,
          running_dead: bool = False, signed: str = "") -> tuple[tuple[int, str, bool], ...] | tuple[tuple[str, int], ...]:
    plan = sweep_plan(open_prs, merged or [], marks or {}, now=NOW, timeout=600, running_dead=running_dead, signature_of=lambda pr: signed)
    return plan.deploys if merged else plan.checks


GREEN = dict.fromkeys(("manifest", "scan", "validate", "sign"), "success")


def test_a_head_without_checks_is_queued_unless_a_job_is_on_its_way() -> None:
    assert _plan([_pr()]) == ((1, HEAD, False),)
    assert _plan([_pr()], {checks_key(1, HEAD): Mark("queued", NOW - 5)}) == ()
    assert _plan([_pr()], {checks_key(1, HEAD): Mark("queued", NOW - 601)}) == ((1, HEAD, False),)


def test_finished_checks_are_left_alone_and_an_error_counts_as_finished() -> None:
    assert _plan([_pr(states=GREEN)]) == ()
    assert _plan([_pr(states={**GREEN, "validate": "error"})]) == ()


def test_a_running_job_is_trusted_until_the_timeout_or_until_its_process_is_known_dead() -> None:
    pending = _pr(states={**GREEN, "validate": "pending"})
    running = {checks_key(1, HEAD): Mark("running", NOW - 30)}
    assert _plan([pending], running) == ()
    assert _plan([pending], running, running_dead=True) == ((1, HEAD, False),)
    assert _plan([pending], {checks_key(1, HEAD): Mark("running", NOW - 601)}) == ((1, HEAD, False),)


def test_a_signature_commit_without_its_results_waits_for_the_run_on_the_head_it_signs() -> None:
    sig = _pr(head=SIGNED)
    assert _plan([sig], {checks_key(1, HEAD): Mark("running", NOW - 1)}, signed=HEAD) == ()
    assert _plan([sig], signed=HEAD) == ((1, SIGNED, True),)


def test_a_merge_without_a_deploy_record_is_deployed() -> None:
    merged = _pr(2, state="merged", merge_commit="c" * 40)
    recorded = _pr(3, state="merged", merge_commit="d" * 40, meta=PrMeta(deploy={"ok": False}))
    assert _plan([], merged=[merged, recorded]) == (("c" * 40, 2),)
    assert _plan([], {deploy_key(2): Mark("running", NOW - 1)}, merged=[merged]) == ()


def _notices(open_prs: list[PullRequest], marks: dict[str, Mark] | None = None) -> tuple[tuple[int, str], ...]:
    return sweep_plan(open_prs, [], marks or {}, now=NOW, timeout=600, running_dead=False, signature_of=lambda pr: "").notices


def test_finished_checks_never_told_are_told_once() -> None:
    """The checks finished while the queue was unreachable: their notice was never queued."""
    untold = _pr(states=GREEN)
    assert _notices([untold]) == ((1, HEAD),)
    assert _notices([_pr(states=GREEN, meta=PrMeta(told_head=HEAD))]) == ()
    assert _notices([_pr(states=GREEN, meta=PrMeta(told_head="c" * 40))]) == ((1, HEAD),)  # an older head was told
    assert _notices([untold], {notice_key(1, HEAD): Mark("queued", NOW - 5)}) == ()  # on its way
    assert _notices([untold], {checks_key(1, HEAD): Mark("running", NOW - 5)}) == ()  # its run tells it
    assert _notices([_pr(states={**GREEN, "validate": "pending"})]) == ()  # not finished: the checks are run again instead
