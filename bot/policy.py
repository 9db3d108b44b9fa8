"""Who may do what, and when a pull request has the approvals it needs.

The policy is data in the manifest repository (`.aimodel/config.yaml`); this module only
reads it. Defaults below are the seed's actor table, used where the config is silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.manifests import Environment, Person, RepoConfig
from bot.messages import policy as policy_messages

DEFAULT_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "create": ("data-scientist", "application-developer"),
    "update": ("data-engineer", "devops-engineer", "application-developer"),
    "deploy": ("devops-engineer", "application-developer", "data-engineer"),
    "destroy": ("data-engineer", "application-developer"),
    "list": ("*",),
    "scan": ("*",),
    "validate": ("*",),
    "sign": ("*",),
    "verify": ("*",),
}

ROLE_TITLES = {
    "data-scientist": "Data Scientist",
    "application-developer": "Application Developer",
    "data-engineer": "Data Engineer",
    "devops-engineer": "DevOps Engineer",
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def roles_for(config: RepoConfig, verb: str) -> tuple[str, ...]:
    return config.permissions.get(verb, DEFAULT_PERMISSIONS.get(verb, ()))


def authorize(config: RepoConfig, person: Person | None, verb: str, who: str = "") -> Decision:
    if person is None:
        return Decision(False, policy_messages.not_a_person(who))
    allowed = roles_for(config, verb)
    if "*" in allowed or any(role in allowed for role in person.roles):
        return Decision(True)
    titles = ", ".join(ROLE_TITLES.get(r, r) for r in allowed) or "nobody"
    held = ", ".join(ROLE_TITLES.get(r, r) for r in person.roles) or "no role"
    return Decision(False, policy_messages.verb_not_for(verb, titles, person.name, held))


@dataclass(frozen=True)
class Review:
    person: str  # a person's name in the config (resolved from the forge's identity)
    state: str  # "approved" | "changes_requested" | "commented"
    commit: str = ""


# A change to these paths changes the rules themselves (roles, approvals, the scan
# allow-list, trusted keys, who reviews, what a manifest may say, CI): it needs the policy
# owners' review, whatever environment it touches. Compared case-insensitively, as some
# file systems and forges treat names.
POLICY_PREFIXES = (".aimodel/", "schemas/", ".github/")
# the folders themselves too: a file or submodule put in a folder's place
POLICY_FILES = ("codeowners", "docs/codeowners", ".aimodel", "schemas", ".github")


def policy_paths(changed: Iterable[str]) -> tuple[str, ...]:
    """The changed paths that are policy (sorted, unique)."""
    return tuple(
        sorted({p for p in changed if p.casefold() in POLICY_FILES or p.casefold().startswith(POLICY_PREFIXES)})
    )


def titles(roles: Iterable[str], sep: str = " or ") -> str:
    return sep.join(ROLE_TITLES.get(r, r) for r in roles) or "nobody"


def holders(config: RepoConfig, roles: Iterable[str], *, besides: str = "") -> tuple[str, ...]:
    """The people who hold one of the roles ("*": anyone listed), but not `besides`."""
    wanted = set(roles)
    return tuple(
        sorted(
            p.name
            for p in config.people.values()
            if p.name != besides and ("*" in wanted or any(r in wanted for r in p.roles))
        )
    )


@dataclass(frozen=True)
class ApprovalStatus:
    met: bool
    needed: Mapping[str, int]  # env -> approvals required
    have: Mapping[str, tuple[str, ...]]  # env -> people whose approval counts
    missing: tuple[str, ...]  # human-readable, one per environment short of approvals
    policy: tuple[str, ...] = ()  # the policy paths the change touches
    policy_have: tuple[str, ...] = ()  # policy owners who approved (never the author)


def latest_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """A person's last review is the one that counts (as on GitHub)."""
    last: dict[str, Review] = {}
    for review in reviews:
        if review.state in ("approved", "changes_requested"):
            last[review.person] = review
    return last


def _approved_by(config: RepoConfig, last: Mapping[str, Review], roles: tuple[str, ...], author: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            name
            for name, review in last.items()
            if review.state == "approved"
            and name != author  # the author's own approval never counts
            and (person := config.people.get(name)) is not None
            and any(role in roles for role in person.roles)
        )
    )


def approval_status(
    config: RepoConfig,
    environments: Iterable[str],
    reviews: Iterable[Review],
    author: str,
    *,
    changed_paths: Iterable[str],
    head: str,
) -> ApprovalStatus:
    """What a pull request still needs, from plain data. `config` is the BASE branch's:
    the rules that judge a pull request are never the ones it brings. A policy owner's
    approval counts for the commit it was given on (`head`), so a push after the review
    cannot ride on it; "" means the reviews carry no commit."""
    last = latest_reviews(reviews)
    needed: dict[str, int] = {}
    have: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    blocked_by = [p for p, r in last.items() if r.state == "changes_requested"]
    for env_name in sorted(set(environments)):
        env = config.environments.get(env_name, Environment(env_name))
        counted = _approved_by(config, last, env.approvers, author)
        needed[env_name] = env.approvals
        have[env_name] = counted
        if len(counted) < env.approvals:
            missing.append(f"{env_name} needs {env.approvals} approval(s) from {titles(env.approvers)}; has {len(counted)}")
    policy = policy_paths(changed_paths)
    policy_have: tuple[str, ...] = ()
    if policy:
        rules = config.policy
        given = _approved_by(config, last, rules.owners, author)
        policy_have = tuple(n for n in given if not head or last[n].commit in ("", head))
        if len(policy_have) < rules.approvals:
            can = holders(config, rules.owners, besides=author)
            stale = tuple(n for n in given if n not in policy_have)
            missing.append(
                policy_messages.policy_missing(policy, rules.approvals, titles(rules.owners), len(policy_have), can, stale)
            )
    missing.extend(f"{name} requested changes" for name in blocked_by)
    return ApprovalStatus(not missing, needed, have, tuple(missing), policy, policy_have)


def mergers_of(config: RepoConfig, env_name: str) -> tuple[str, ...]:
    """Roles that may merge a change to an environment; unset: the roles that may deploy."""
    env = config.environments.get(env_name)
    if env is not None and env.mergers is not None:
        return env.mergers
    return roles_for(config, "deploy")


def merge_decision(
    config: RepoConfig,
    person: Person | None,
    who: str,
    number: int,
    *,
    environments: Iterable[str],
    changed_paths: Iterable[str],
) -> Decision:
    """May this person merge a pull request that changes these environments and paths?
    Every part the change touches must allow one of the person's roles; a change that
    touches neither (registering a model) may be merged by anyone listed."""
    if person is None:
        return Decision(False, policy_messages.not_a_person(who))
    parts: list[tuple[str, tuple[str, ...]]] = [
        (policy_messages.merge_target_env(env), mergers_of(config, env)) for env in sorted(set(environments))
    ]
    policy = policy_paths(changed_paths)
    if policy:
        parts.append((policy_messages.merge_target_policy(policy), config.policy.mergers))
    for target, roles in parts:
        if "*" in roles or any(role in roles for role in person.roles):
            continue
        held = titles(person.roles, ", ") if person.roles else "no role"
        return Decision(
            False, policy_messages.merge_not_allowed(number, target, titles(roles), holders(config, roles), person.name, held)
        )
    return Decision(True)
