"""What a person reads when the rules hold a pull request back: approvals and merges."""

from __future__ import annotations

from collections.abc import Sequence


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "nobody listed in .aimodel/config.yaml holds that role"


def _paths(paths: Sequence[str], shown: int = 3) -> str:
    listed = ", ".join(paths[:shown])
    return listed + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def policy_missing(
    paths: Sequence[str], needed: int, titles: str, have: int, can: Sequence[str], stale: Sequence[str] = ()
) -> str:
    earlier = f"; {', '.join(stale)} approved an earlier commit: approve again" if stale else ""
    return (
        f"policy change ({_paths(paths)}) needs {needed} approval(s) from {titles}, not its author; "
        f"has {have} (can approve: {_names(can)}){earlier}"
    )


def not_a_person(who: str) -> str:
    return f"{who or 'you'} is not listed under people in .aimodel/config.yaml"


def verb_not_for(verb: str, titles: str, person: str, held: str) -> str:
    return f"{verb} is for {titles}; {person} is {held}"


def merge_not_allowed(number: int, target: str, titles: str, can: Sequence[str], person: str, held: str) -> str:
    return f"merging #{number} ({target}) is for {titles}: {_names(can)}; {person} is {held}"


def merge_target_env(env: str) -> str:
    return f"changes {env}"


def merge_target_policy(paths: Sequence[str]) -> str:
    return f"changes the rules: {_paths(paths)}"


def policy_pr_note(paths: Sequence[str]) -> str:
    return f"changes the rules ({_paths(paths)}): a policy owner must approve it"


def branch_refused(branch: str, reason: str) -> str:
    return f"cannot open a pull request from {branch!r}: {reason}"


def hand_pr_body(who: str, branch: str, paths: Sequence[str]) -> str:
    lines = [f"Opened by **{who}** from the branch `{branch}`, pushed by hand.", ""]
    lines += [f"- changes `{p}`" for p in paths[:50]]
    if len(paths) > 50:
        lines.append(f"- and {len(paths) - 50} more file(s)")
    lines += ["", "Checks (manifest, scan, validate, sign) run on this pull request; a reviewed, green merge deploys."]
    return "\n".join(lines)
