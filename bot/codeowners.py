"""CODEOWNERS, written from the repository config so GitHub asks the right people.

The config is the source of truth (people, roles, GitHub logins); CODEOWNERS follows it.
A pull request that changes `.aimodel/config.yaml` gets the matching CODEOWNERS committed
to its branch by the bot, so the two never drift apart.
"""

from __future__ import annotations

from bot.manifests import RepoConfig

PATH = "CODEOWNERS"

# Who reviews what, by role: the people who own each kind of manifest.
OWNERS_BY_PATH: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/models/", ("data-scientist", "application-developer")),
    ("/apps/", ("application-developer", "devops-engineer")),
    ("/datasets/", ("data-engineer",)),
)
# The rules themselves (bot.policy.POLICY_PREFIXES and POLICY_FILES): the config's policy owners.
POLICY_OWNED = ("/.aimodel/", "/schemas/", "/.github/", "/CODEOWNERS", "/docs/CODEOWNERS")

HEADER = (
    "# Written by aimodel-gitops from .aimodel/config.yaml (people, roles, GitHub logins).\n"
    "# Edit the config, not this file: the bot keeps this file in step with it.\n"
)


def render(config: RepoConfig) -> str:
    lines = [HEADER]
    owned = (*OWNERS_BY_PATH, *((path, config.policy.owners) for path in POLICY_OWNED))
    for path, roles in owned:
        logins = sorted(
            {f"@{p.github}" for p in config.people.values() if p.github and any(r in roles for r in p.roles)},
            key=str.lower,
        )
        if logins:
            lines.append(f"{path:<12} {' '.join(logins)}\n")
        else:
            lines.append(f"# {path:<10} nobody with a GitHub login holds {' or '.join(roles)}\n")
    return "".join(lines)
