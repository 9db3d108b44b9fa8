"""What `history` says: a table per environment, newest first, in the terminal and in Slack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot import messages
from bot.deploy.history import History, iso
from bot.deploy.records import ReleaseRecord

TIME_EXAMPLE = '--at 2026-11-30T12:00Z, --at "2026-11-30 12:00" (UTC without a zone) or --at "2h ago"'
SLACK_ROWS = 12  # rows per environment in Slack: a code block holds 3,000 characters
HEADERS = ("RELEASE", "WHEN (UTC)", "APP", "MODELS", "PR", "COMMIT", "AUTHOR", "APPROVERS", "RESULT")


def bad_time(text: str) -> str:
    return f"--at {messages.clip(text)!r} is not a time; give {TIME_EXAMPLE}"


def unknown_name(name: str, suggestions: Sequence[str], face: str) -> str:
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    return f"there is no application or model named {messages.clip(name)!r}.{hint} {messages.command(face, 'list')} shows them"


def no_releases(name: str, env: str, at: float | None) -> str:
    where = f" in {env}" if env else ""
    if at is not None:
        return f"Nothing of {name} was live{where} at {iso(at)}."
    return f"No release of {name}{where} yet: a merged deploy writes one per environment."


def heading(h: History) -> str:
    what = "application" if h.kind == "app" else "model"
    when = f" live at {iso(h.at)}" if h.at is not None else ", newest first"
    return f"Releases of {what} {h.name}{when}"


def _models(record: ReleaseRecord) -> str:
    return ", ".join(f"{name} {pin.version} @{pin.sha256[:8]}" for name, pin in sorted(record.models.items())) or "-"


def _result(record: ReleaseRecord) -> str:
    return record.result if not record.reason else f"{record.result}: {record.reason}"


def row(record: ReleaseRecord) -> list[str]:
    return [
        record.id, iso(record.finished or record.started), f"{record.app} {record.app_version}".strip(), _models(record),
        f"#{record.pr}" if record.pr else "-", record.commit[:10] or "-", record.author or "-",
        ", ".join(record.approvers) or "-", _result(record),
    ]


def table(records: Sequence[ReleaseRecord]) -> str:
    return messages.table(HEADERS, [row(r) for r in records])


def text(h: History) -> str:
    """The terminal's answer: a heading, then per environment its name and its table."""
    if not h.environments:
        return no_releases(h.name, h.asked_envs[0] if len(h.asked_envs) == 1 else "", h.at)
    parts = [heading(h)]
    for env, records in h.environments.items():
        parts += ["", f"{env}:", table(records)]
    return "\n".join(parts)


def slack(h: History) -> dict[str, Any]:
    """Block Kit: a header, and per environment a section with its table (the newest rows)."""
    from bot.messages import slack as blocks

    answer = text(h)
    if not h.environments:
        return blocks.note(answer, icon=":scroll:")
    body: list[dict[str, Any]] = [blocks.header(heading(h))]
    for env, records in h.environments.items():
        shown = records[:SLACK_ROWS]
        body.append(blocks.section(f"*{blocks.esc(env)}*\n" + blocks.code(table(shown))))
        if len(records) > len(shown):
            body.append(blocks.context(f"… and {len(records) - len(shown)} older; `aimodel history {blocks.esc(h.name)} --env {blocks.esc(env)}` shows all"))
    return {"response_type": "ephemeral", "text": answer[:3000], "blocks": body[: blocks.MESSAGE_BLOCKS]}
