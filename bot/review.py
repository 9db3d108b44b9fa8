"""A pull request's status, decided once from plain data: which checks count, what blocks the
merge, which approvals each environment needs and has, who may still give them.

Every face (CLI, Slack, GitHub's summary comment) and the merge itself read this one value,
so a change to how a pull request is judged is made here and nowhere else. The rules are
the BASE branch's config: a pull request never judges itself by the rules it brings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.forges.base import CheckResult, PullRequest
from bot.manifests import Person, RepoConfig
from bot.policy import approval_status, holders

REQUIRED_CHECKS = ("manifest", "scan", "validate", "sign")
GREEN = ("success", "skipped")
FAILED = ("failure", "error")


def current_checks(pr: PullRequest) -> dict[str, CheckResult]:
    """The checks that judged the pull request's head, in the order they run. A result for
    another commit (or for no commit at all) says nothing about what would be merged."""
    order = {name: i for i, name in enumerate(REQUIRED_CHECKS)}
    names = sorted((n for n, c in pr.checks.items() if c.commit == pr.head), key=lambda n: (order.get(n, len(order)), n))
    return {name: pr.checks[name] for name in names}


def checks_summary(checks: Mapping[str, CheckResult]) -> str:
    """One word for a listing: - (none yet), failed, pending, green."""
    states = [c.state for c in checks.values()]
    if not states:
        return "-"
    if any(s in FAILED for s in states):
        return "failed"
    return "pending" if "pending" in states else "green"


def check_blockers(checks: Mapping[str, CheckResult]) -> tuple[str, ...]:
    out = []
    for name in REQUIRED_CHECKS:
        check = checks.get(name)
        if check is None or check.state == "pending":
            out.append(f"check {name} has not finished")
        elif check.state not in GREEN:
            out.append(f"check {name} failed: {check.summary}")
    return tuple(out)


@dataclass(frozen=True)
class EnvApprovals:
    env: str
    needed: int
    given: tuple[str, ...]  # people whose approval counts (never the author)
    roles: tuple[str, ...]  # roles whose approval counts
    can_approve: tuple[str, ...]  # people who could still give a missing approval

    @property
    def met(self) -> bool:
        return len(self.given) >= self.needed


@dataclass(frozen=True)
class PrStatus:
    number: int
    state: str
    head: str
    checks: Mapping[str, CheckResult]  # current checks only (commit == head)
    environments: tuple[str, ...] = ()
    approvals: tuple[EnvApprovals, ...] = ()
    policy_paths: tuple[str, ...] = ()  # the rules the change touches
    policy: EnvApprovals | None = None  # the policy owners' approvals, when it touches rules
    missing: tuple[str, ...] = ()  # approvals still missing, one sentence each
    approved_by: tuple[str, ...] = ()
    auto_merge: bool = False
    judged: bool = True  # False: the base config could not be read (closed PRs are not judged)
    can_approve_logins: tuple[str, ...] = field(default=())  # GitHub logins of `can_approve`
    unpromoted: tuple[str, ...] = ()  # versions entering an environment before they ran in the one before

    @property
    def check_blockers(self) -> tuple[str, ...]:
        return check_blockers(self.checks)

    @property
    def checks_done(self) -> bool:
        return all(n in self.checks and self.checks[n].state != "pending" for n in REQUIRED_CHECKS)

    @property
    def checks_failed(self) -> bool:
        return any(c.state in FAILED for c in self.checks.values())

    @property
    def blockers(self) -> tuple[str, ...]:
        """Everything between this pull request and a merge, checks first."""
        return (*self.check_blockers, *self.unpromoted, *self.missing)

    @property
    def mergeable(self) -> bool:
        return self.state == "open" and self.judged and not self.blockers

    @property
    def summary(self) -> str:
        return checks_summary(self.checks)

    def may_approve(self, person: Person) -> bool:
        """Would this person's approval count toward something still missing?"""
        if self.state != "open":
            return False
        parts = [a for a in (*self.approvals, *((self.policy,) if self.policy else ())) if not a.met]
        return any(person.name in a.can_approve and person.name not in a.given for a in parts)


def pr_status(
    pr: PullRequest,
    config: RepoConfig | None,
    *,
    environments: Iterable[str] = (),
    changed_paths: Iterable[str] = (),
    unpromoted: Iterable[str] = (),
) -> PrStatus:
    """The status of `pr` judged by the base branch's `config` (None: not judged, as for a
    closed pull request or a base that cannot be read)."""
    checks = current_checks(pr)
    if config is None or not pr.is_open:
        given = tuple(sorted({r.person for r in pr.reviews if r.state == "approved"}))
        return PrStatus(pr.number, pr.state, pr.head, checks, approved_by=given, judged=False)
    envs = tuple(sorted(set(environments)))
    status = approval_status(config, envs, pr.reviews, pr.author, changed_paths=changed_paths, head=pr.head)
    approvals = []
    for env_name in envs:
        env = config.environments.get(env_name)
        roles = env.approvers if env is not None else ()
        approvals.append(
            EnvApprovals(env_name, status.needed[env_name], status.have[env_name], roles, holders(config, roles, besides=pr.author))
        )
    policy = None
    if status.policy:
        rules = config.policy
        policy = EnvApprovals("policy", rules.approvals, status.policy_have, rules.owners, holders(config, rules.owners, besides=pr.author))
    short = [a for a in (*approvals, *((policy,) if policy else ())) if not a.met]
    logins = sorted({login for a in short for name in a.can_approve if (login := config.people[name].github)})
    return PrStatus(
        pr.number, pr.state, pr.head, checks,
        environments=envs,
        approvals=tuple(approvals),
        policy_paths=status.policy,
        policy=policy,
        missing=status.missing,
        approved_by=tuple(sorted({p for people in (*status.have.values(), status.policy_have) for p in people})),
        auto_merge=config.auto_merge,
        can_approve_logins=tuple(logins),
        unpromoted=tuple(unpromoted),
    )
