"""bot.review.pr_status on plain data: no git, no HTTP, one table per question."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.forges.base import CheckResult, PullRequest
from bot.manifests import RepoConfig, parse_config
from bot.policy import Review
from bot.review import checks_summary, current_checks, pr_status

HEAD, OLD = "h" * 40, "o" * 40
NAMES = ("manifest", "scan", "validate", "sign")

CONFIG = """
apiVersion: aimodel.dev/v1
kind: RepositoryConfig
people:
  ada: {roles: [data-scientist]}
  eve: {roles: [data-engineer], github: eve-gh}
  dev: {roles: [devops-engineer], github: dev-gh}
  ops: {roles: [devops-engineer], github: ops-gh}
environments:
  dev: {approvals: 0}
  prod: {approvals: 1, approvers: [devops-engineer]}
policy: {owners: [devops-engineer], approvals: 1, mergers: [devops-engineer]}
merge: {auto_merge: true}
"""


@pytest.fixture(scope="module")
def config() -> RepoConfig:
    return parse_config(CONFIG)


def green(commit: str = HEAD) -> dict[str, CheckResult]:
    return {n: CheckResult(n, "success", "ok", "", commit) for n in NAMES}


def with_check(name: str, state: str, commit: str = HEAD, summary: str = "bad") -> dict[str, CheckResult]:
    return {**green(), name: CheckResult(name, state, summary, "", commit)}


@dataclass
class Case:
    checks: dict[str, CheckResult]
    envs: tuple[str, ...] = ()
    paths: tuple[str, ...] = ("models/fraud/model.yaml",)
    reviews: list[Review] = field(default_factory=list)
    author: str = "eve"
    state: str = "open"


def pr_of(case: Case) -> PullRequest:
    return PullRequest(7, "update fraud", "", case.author, "b", "main", HEAD, case.state, checks=case.checks, reviews=case.reviews)


BLOCKERS = {
    "green, registering only": (Case(green()), ()),
    "a check on an older commit has not finished": (Case(with_check("scan", "success", OLD)), ("check scan has not finished",)),
    "a check for no commit says nothing about the head": (Case(with_check("sign", "success", "")), ("check sign has not finished",)),
    "a missing check": (Case({n: c for n, c in green().items() if n != "validate"}), ("check validate has not finished",)),
    "a pending check": (Case(with_check("manifest", "pending")), ("check manifest has not finished",)),
    "a failed check": (Case(with_check("scan", "failure", summary="fraud: 1 finding")), ("check scan failed: fraud: 1 finding",)),
    "skipped counts as green": (Case(with_check("sign", "skipped")), ()),
    "prod without approval": (Case(green(), envs=("prod",)), ("prod needs 1 approval(s) from DevOps Engineer; has 0",)),
    "prod approved by a DevOps Engineer": (Case(green(), envs=("prod",), reviews=[Review("dev", "approved", HEAD)]), ()),
    "the author's own approval never counts": (
        Case(green(), envs=("prod",), author="dev", reviews=[Review("dev", "approved", HEAD)]),
        ("prod needs 1 approval(s) from DevOps Engineer; has 0",),
    ),
    "a role that does not approve prod": (
        Case(green(), envs=("prod",), reviews=[Review("ada", "approved", HEAD)]),
        ("prod needs 1 approval(s) from DevOps Engineer; has 0",),
    ),
    "changes requested block": (
        Case(green(), envs=("dev",), reviews=[Review("ops", "changes_requested", HEAD)]),
        ("ops requested changes",),
    ),
    "checks first, then approvals": (
        Case(with_check("scan", "error", summary="boom"), envs=("prod",)),
        ("check scan failed: boom", "prod needs 1 approval(s) from DevOps Engineer; has 0"),
    ),
}


@pytest.mark.parametrize("name", list(BLOCKERS))
def test_blockers(config: RepoConfig, name: str) -> None:
    case, expected = BLOCKERS[name]
    status = pr_status(pr_of(case), config, environments=case.envs, changed_paths=case.paths)
    assert status.blockers == expected
    assert status.mergeable is (expected == ())


POLICY = {
    "no owner approval": ([], False, ()),
    "an owner approved this head": ([Review("dev", "approved", HEAD)], True, ("dev",)),
    "an owner approved an older head": ([Review("dev", "approved", OLD)], False, ()),
    "a review that carries no commit counts": ([Review("dev", "approved", "")], True, ("dev",)),
}


@pytest.mark.parametrize("name", list(POLICY))
def test_a_policy_change_needs_an_owner_at_the_head(config: RepoConfig, name: str) -> None:
    reviews, met, given = POLICY[name]
    case = Case(green(), paths=(".aimodel/config.yaml",), reviews=reviews)
    status = pr_status(pr_of(case), config, changed_paths=case.paths)
    assert status.policy_paths == (".aimodel/config.yaml",)
    assert status.policy is not None and status.policy.given == given
    assert status.mergeable is met
    if not met:
        assert status.missing[0].startswith("policy change (.aimodel/config.yaml) needs 1 approval(s) from DevOps Engineer")


WHO = {
    # person -> may approve an open prod change by eve, before any approval
    "dev": True,
    "ops": True,
    "ada": False,  # not an approver of prod
    "eve": False,  # the author
}


@pytest.mark.parametrize("person", list(WHO))
def test_who_may_approve(config: RepoConfig, person: str) -> None:
    status = pr_status(pr_of(Case(green(), envs=("prod",))), config, environments=("prod",))
    assert status.may_approve(config.people[person]) is WHO[person]
    assert status.can_approve_logins == ("dev-gh", "ops-gh")
    assert status.approvals[0].can_approve == ("dev", "ops")


def test_once_met_nobody_is_asked(config: RepoConfig) -> None:
    case = Case(green(), envs=("prod",), reviews=[Review("dev", "approved", HEAD)])
    status = pr_status(pr_of(case), config, environments=case.envs)
    assert not status.may_approve(config.people["ops"])
    assert status.approved_by == ("dev",) and status.can_approve_logins == ()
    assert status.auto_merge is True


def test_a_closed_pull_request_is_not_judged(config: RepoConfig) -> None:
    case = Case(green(), envs=("prod",), state="merged", reviews=[Review("dev", "approved", HEAD), Review("ops", "commented", HEAD)])
    status = pr_status(pr_of(case), config, environments=case.envs)
    assert not status.judged and not status.mergeable
    assert status.approved_by == ("dev",) and status.missing == ()


SUMMARY = {
    "no checks yet": ({}, "-"),
    "all green": (green(), "green"),
    "one pending": (with_check("sign", "pending"), "pending"),
    "failed wins over pending": ({**with_check("sign", "pending"), "scan": CheckResult("scan", "error", "x", "", HEAD)}, "failed"),
    "only stale checks": (green(OLD), "-"),
}


@pytest.mark.parametrize("name", list(SUMMARY))
def test_checks_summary(name: str) -> None:
    checks, word = SUMMARY[name]
    pr = pr_of(Case(checks))
    assert checks_summary(current_checks(pr)) == word


def test_current_checks_keep_the_run_order() -> None:
    checks = {n: CheckResult(n, "success", "", "", HEAD) for n in reversed(NAMES)}
    checks["policy"] = CheckResult("policy", "success", "", "", HEAD)
    assert list(current_checks(pr_of(Case(checks)))) == [*NAMES, "policy"]
