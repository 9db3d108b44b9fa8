"""GitHub Markdown: pull request bodies with the bot's hidden metadata, the one summary
comment (found again by a hidden marker and edited in place), and check run outputs with
annotations pointing at the manifest line at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.forges.base import CheckResult, PullRequest

META_START = "<!-- aimodel:meta "
META_END = " -->"
SUMMARY_MARKER = "<!-- aimodel:summary -->"
CHECK_PREFIX = "aimodel/"
POLICY = "policy"
BODY_LIMIT = 65_000  # GitHub refuses bodies over 65,536 characters
OUTPUT_LIMIT = 65_000
TITLE_LIMIT = 250
STATUS_DESCRIPTION_LIMIT = 140
ANNOTATIONS_PER_REQUEST = 50

_META_RE = re.compile(r"<!-- aimodel:meta (\{.*?\}) -->", re.DOTALL)

STATE_ICON = {
    "success": "✅",
    "failure": "❌",
    "error": "⚠️",
    "pending": "⏳",
    "skipped": "⏭️",
}


# --------------------------------------------------------------------------- metadata in the body


def encode_meta(meta: Mapping[str, Any]) -> str:
    """JSON that cannot end the HTML comment it lives in (`<` and `>` escaped as \\u003c/\\u003e)."""
    text = json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def render_pr_body(text: str, meta: Mapping[str, Any]) -> str:
    """The person-readable body, then the bot's state in a hidden comment at the end."""
    visible = strip_meta(text).rstrip()
    hidden = f"{META_START}{encode_meta(meta)}{META_END}"
    room = BODY_LIMIT - len(hidden) - 2
    if len(visible) > room:
        visible = visible[: max(0, room - 20)] + "\n\n(shortened)"
    return f"{visible}\n\n{hidden}" if visible else hidden


def parse_pr_body(body: str | None) -> tuple[str, dict[str, Any]]:
    """(visible text, metadata); a body without metadata (a person's PR) gives {}."""
    text = body or ""
    match = _META_RE.search(text)
    if match is None:
        return text, {}
    try:
        meta = json.loads(match.group(1))
    except ValueError:
        meta = {}
    visible = (text[: match.start()] + text[match.end() :]).rstrip()
    return visible, meta if isinstance(meta, dict) else {}


def strip_meta(body: str) -> str:
    return _META_RE.sub("", body or "").rstrip()


def pr_description(visible: str, *, author: str, via: str) -> str:
    """The body gitops wrote (who asked, why, what changes), and where it came from."""
    note = f"\n\n---\n<sub>Opened by aimodel-bot for **{author}** ({via}). Reviews on GitHub count as approvals for people listed in `.aimodel/config.yaml` by GitHub login.</sub>"
    return visible.rstrip() + note


# --------------------------------------------------------------------------- check runs and statuses


def check_name(name: str) -> str:
    return f"{CHECK_PREFIX}{name}"


def plain_name(github_name: str) -> str | None:
    return github_name[len(CHECK_PREFIX) :] if github_name.startswith(CHECK_PREFIX) else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_title(check: CheckResult) -> str:
    return _clip(check.summary or check.state, TITLE_LIMIT)


def check_summary(check: CheckResult) -> str:
    icon = STATE_ICON.get(check.state, "")
    lines = [f"{icon} **{check.name}**: {check.state}", "", check.summary or ""]
    if check.annotations:
        lines += ["", f"{len(check.annotations)} problem(s) marked on the files:"]
        for a in check.annotations[:20]:
            lines.append(f"- `{a.get('path', '?')}:{a.get('line', 1)}` {a.get('message', '')}")
    return _clip("\n".join(lines).strip(), OUTPUT_LIMIT)


def annotation_level(level: str) -> str:
    return {"failure": "failure", "error": "failure", "warning": "warning"}.get(level, "notice")


def check_annotations(check: CheckResult) -> list[dict[str, Any]]:
    """GitHub's annotation shape; at most 50 per request (the API's limit)."""
    out = []
    for a in check.annotations[:ANNOTATIONS_PER_REQUEST]:
        line = int(a.get("line") or 1)
        out.append(
            {
                "path": str(a.get("path", "")),
                "start_line": line,
                "end_line": line,
                "annotation_level": annotation_level(str(a.get("level", "failure"))),
                "message": _clip(str(a.get("message", "")), 64_000),
                "title": f"aimodel {check.name}",
            }
        )
    return out


def check_run_output(check: CheckResult) -> dict[str, Any]:
    output: dict[str, Any] = {
        "title": check_title(check),
        "summary": check_summary(check),
    }
    if check.details:
        output["text"] = _clip(check.details, OUTPUT_LIMIT)
    annotations = check_annotations(check)
    if annotations:
        output["annotations"] = annotations
    return output


def status_description(check: CheckResult) -> str:
    text = check.summary or check.state
    if check.state == "skipped":
        text = f"skipped: {text}"
    return _clip(text.replace("\n", " "), STATUS_DESCRIPTION_LIMIT)


# --------------------------------------------------------------------------- the summary comment


def summary_comment(
    pr: PullRequest,
    *,
    checks: Sequence[CheckResult],
    approvals: Mapping[str, Any] | None = None,
    status: str = "",
    deploy: Mapping[str, Any] | None = None,
) -> str:
    """The bot's one comment on a pull request: checks, approvals, what happens next."""
    lines = [SUMMARY_MARKER, f"### aimodel: {pr.title}", ""]
    lines.append(f"Requested by **{pr.author}**" + (f" via {pr.meta.via}" if pr.meta.via else "") + f" · head `{pr.head[:10]}`")
    lines += ["", "| check | state | summary |", "|---|---|---|"]
    if not checks:
        lines.append("| (queued) | ⏳ | checks have not started yet |")
    for c in checks:
        summary = (c.summary or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {c.name} | {STATE_ICON.get(c.state, '')} {c.state} | {_clip(summary, 300)} |")
    if approvals:
        by = ", ".join(approvals.get("by", [])) or "nobody yet"
        lines += ["", f"**Approvals**: {by}"]
        for missing in approvals.get("missing", []):
            lines.append(f"- waiting: {missing}")
        if approvals.get("missing") and approvals.get("can_approve"):
            lines.append("- can approve: " + ", ".join(f"@{login}" for login in approvals["can_approve"]))
    if status:
        lines += ["", status]
    if deploy:
        ok = deploy.get("ok")
        attempts = deploy.get("attempts")
        tried = f" (attempt {attempts})" if isinstance(attempts, int) and attempts > 1 else ""  # the sweep retried it
        lines += ["", f"**Deploy** of `{str(deploy.get('commit', ''))[:10]}`: {'done' if ok else 'FAILED'}{tried}"]
        lines += [f"- {s}" for s in deploy.get("summary", [])]
    lines += ["", "<sub>Updated in place by aimodel-bot on every change.</sub>"]
    return _clip("\n".join(lines), BODY_LIMIT)


def ready_text(auto_merge: bool) -> str:
    if auto_merge:
        return "✅ Checks are green and the approvals are met: the bot merges it now (`merge.auto_merge` is on)."
    return (
        "✅ Checks are green and the approvals are met: **ready to merge**. "
        "`merge.auto_merge` is off in `.aimodel/config.yaml`, so a person merges it (here, `aimodel pr merge`, or Slack)."
    )


def waiting_text(blockers: Sequence[str]) -> str:
    return "⏳ Waiting for: " + "; ".join(blockers)


def failed_text() -> str:
    return "❌ A check failed: fix the change (push to this branch) or close the pull request; checks run again on every push."


def policy_summary(blockers: Sequence[str]) -> str:
    if not blockers:
        return "approvals met"
    return "; ".join(blockers)
