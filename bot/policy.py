"""Who may do what, and when a pull request has the approvals it needs.

The policy is data in the manifest repository (`.aimodel/config.yaml`); this module only
reads it. Defaults below are the seed's actor table, used where the config is silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.manifests import Environment, Person, RepoConfig

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
        return Decision(False, f"{who or 'you'} is not listed under people in .aimodel/config.yaml")
    allowed = roles_for(config, verb)
    if "*" in allowed or any(role in allowed for role in person.roles):
        return Decision(True)
    titles = ", ".join(ROLE_TITLES.get(r, r) for r in allowed) or "nobody"
    held = ", ".join(ROLE_TITLES.get(r, r) for r in person.roles) or "no role"
    return Decision(False, f"{verb} is for {titles}; {person.name} is {held}")


@dataclass(frozen=True)
class Review:
    person: str  # a person's name in the config (resolved from the forge's identity)
    state: str  # "approved" | "changes_requested" | "commented"
    commit: str = ""


@dataclass(frozen=True)
class ApprovalStatus:
    met: bool
    needed: Mapping[str, int]  # env -> approvals required
    have: Mapping[str, tuple[str, ...]]  # env -> people whose approval counts
    missing: tuple[str, ...]  # human-readable, one per environment short of approvals


def latest_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """A person's last review is the one that counts (as on GitHub)."""
    last: dict[str, Review] = {}
    for review in reviews:
        if review.state in ("approved", "changes_requested"):
            last[review.person] = review
    return last


def approval_status(
    config: RepoConfig, environments: Iterable[str], reviews: Iterable[Review], author: str
) -> ApprovalStatus:
    last = latest_reviews(reviews)
    needed: dict[str, int] = {}
    have: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    blocked_by = [p for p, r in last.items() if r.state == "changes_requested"]
    for env_name in sorted(set(environments)):
        env = config.environments.get(env_name, Environment(env_name))
        counted = tuple(
            sorted(
                name
                for name, review in last.items()
                if review.state == "approved"
                and name != author  # the author's own approval never counts
                and (person := config.people.get(name)) is not None
                and any(role in env.approvers for role in person.roles)
            )
        )
        needed[env_name] = env.approvals
        have[env_name] = counted
        if len(counted) < env.approvals:
            titles = " or ".join(ROLE_TITLES.get(r, r) for r in env.approvers)
            missing.append(f"{env_name} needs {env.approvals} approval(s) from {titles}; has {len(counted)}")
    missing.extend(f"{name} requested changes" for name in blocked_by)
    return ApprovalStatus(not missing, needed, have, tuple(missing))
