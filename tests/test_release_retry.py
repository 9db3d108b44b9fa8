"""bot.lifecycle.retry_due: which failed deploy the sweep tries again, and when, from plain data."""

from __future__ import annotations

from bot.forges.base import PullRequest
from bot.forges.meta import PrMeta
from bot.lifecycle import Mark, deploy_key, retry_due

NOW = 10_000.0


def _merged(number: int, ok: bool | None, attempts: int = 1, at: float = NOW - 1000) -> PullRequest:
    deploy = None if ok is None else {"ok": ok, "attempts": attempts, "at": at}
    return PullRequest(number, "t", "", "eve", "b", "main", "a" * 40, state="merged", merge_commit=f"{number:040d}", meta=PrMeta(deploy=deploy))


def _due(prs: list[PullRequest], marks: dict[str, Mark] | None = None, attempts: int = 4, delay: float = 30) -> tuple[str, int] | None:
    return retry_due(prs, marks or {}, now=NOW, attempts=attempts, delay=delay, timeout=600, running_dead=False)


def test_a_failed_deploy_is_tried_again_after_a_delay_that_doubles() -> None:
    assert _due([_merged(2, False, 1, at=NOW - 31)]) == (f"{2:040d}", 2)
    assert _due([_merged(2, False, 1, at=NOW - 29)]) is None
    assert _due([_merged(2, False, 2, at=NOW - 59)]) is None  # second wait: 60 s
    assert _due([_merged(2, False, 3, at=NOW - 121)]) == (f"{2:040d}", 2)


def test_no_attempt_after_the_last_nor_while_one_is_on_its_way() -> None:
    assert _due([_merged(2, False, 4)]) is None
    assert _due([_merged(2, False, 1)], {deploy_key(2): Mark("queued", NOW - 5)}) is None
    assert _due([_merged(2, False, 1)], {deploy_key(2): Mark("queued", NOW - 601)}) == (f"{2:040d}", 2)


def test_only_the_newest_applied_merge_counts() -> None:
    # A newer merge whose apply went well applied everything merged before it.
    assert _due([_merged(2, False), _merged(3, True)]) is None
    # A newer merge without a record yet (its deploy is the sweep's other rule) does not hide a failure.
    assert _due([_merged(2, False), _merged(3, None)]) == (f"{2:040d}", 2)
    assert _due([_merged(2, True), _merged(3, False)]) == (f"{3:040d}", 3)
