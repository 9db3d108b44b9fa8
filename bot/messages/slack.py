"""Slack Block Kit rendering: replies, pull request messages with buttons, notifications,
the create modal and the App Home tab. The words come from bot.messages; this module only
arranges them into blocks.

Every message also carries a plain `text` fallback (notifications, screen readers).
Block Kit limits respected here: 3,000 characters per section text, 50 blocks per message,
100 per view, 25 elements per actions block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot import messages

Block = dict[str, Any]
Payload = dict[str, Any]

SECTION_LIMIT = 3000
CREATE_TITLE = "Create a model"
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100

# action ids (the payload fixtures in tests/fixtures/slack use the same)
APPROVE = "approve_pr"
MERGE = "merge_pr"
CLOSE = "close_pr"
VIEW = "open_pr"
OPEN_CREATE = "open_create_modal"
CREATE_CALLBACK = "create_model"
HOME_CALLBACK = "aimodel_home"
PR_EVENT = "aimodel_pr"  # message metadata event_type of a pull request's parent message

STATE_ICON = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "error": ":warning:",
    "pending": ":hourglass_flowing_sand:",
    "skipped": ":heavy_minus_sign:",
}

# --------------------------------------------------------------------------- primitives


def esc(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = SECTION_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 20].rstrip() + "\n… (truncated)"


def section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text) or " "}}
    if block_id:
        block["block_id"] = block_id
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, 2000) or " "}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def divider() -> Block:
    return {"type": "divider"}


def code(text: str) -> str:
    """A preformatted block, clipped so the fences survive the section limit."""
    body = esc(text.rstrip("\n")) or " "
    if len(body) > SECTION_LIMIT - 30:
        body = body[: SECTION_LIMIT - 50].rstrip() + "\n… (truncated)"
    return f"```{body}```"


def code_sections(text: str) -> list[Block]:
    """Long preformatted text (a verb's help) as several sections, split between paragraphs,
    so nothing is cut at a section's 3,000 characters."""
    limit = SECTION_LIMIT - 50
    chunks: list[str] = []
    for paragraph in text.rstrip("\n").split("\n\n"):
        if chunks and len(esc(chunks[-1])) + len(esc(paragraph)) + 2 <= limit:
            chunks[-1] += "\n\n" + paragraph
        else:
            chunks.append(paragraph)
    return [section(code(chunk)) for chunk in chunks]


def button(text: str, action_id: str, value: str = "", *, style: str = "", url: str = "") -> Block:
    element: Block = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text, "emoji": True}}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    return element


def _ephemeral(text: str, blocks: list[Block]) -> Payload:
    return {"response_type": "ephemeral", "text": _clip(text, 3000), "blocks": blocks[:MESSAGE_BLOCKS]}


# --------------------------------------------------------------------------- replies


def working(verb: str) -> Payload:
    return {"response_type": "ephemeral", "text": messages.slack_working(verb)}


def error(text: str, usage: str = "") -> Payload:
    """An ephemeral error: what was wrong, then the usage line, unless the answer already spells
    the same verb's command to run (a refused promotion names `/aimodel deploy ... --env test`):
    the bare grammar beside it would only read as "you typed it wrong"."""
    shown = bool(usage) and usage not in text and not _names_command_of(usage, text)
    blocks = [section(f":warning: {esc(text)}")]
    if shown:
        blocks.append(context(f"`{esc(usage)}`"))
    return _ephemeral(f"{text}\n{usage}" if shown else text, blocks)


def _names_command_of(usage: str, text: str) -> bool:
    """`usage: /aimodel deploy NAME ...` -> whether `text` offers a `/aimodel deploy ...` to type."""
    words = usage.removeprefix("usage: ").split(" ")[:2]
    return len(words) == 2 and f"`{' '.join(words)} " in text


def usage_reply(text: str, ok: bool) -> Payload:
    """A Reply from the grammar: help is shown as is, a usage error with a warning sign."""
    first, _, rest = text.partition("\n")
    if ok:
        return _ephemeral(text, code_sections(text))
    blocks = [section(f":warning: {esc(first)}")]
    if rest.strip():
        blocks.append(section(code(rest)))
    return _ephemeral(text, blocks)


def note(text: str, *, ephemeral: bool = True, icon: str = "") -> Payload:
    payload: Payload = {"text": text, "blocks": [section(f"{icon} {esc(text)}".strip())]}
    if ephemeral:
        payload["response_type"] = "ephemeral"
    return payload


def unknown_user(user_id: str) -> Payload:
    text = messages.slack_unknown_user(user_id)
    return _ephemeral(text, [section(f":lock: {text}")])


def output(title: str, text: str, ok: bool) -> Payload:
    """Text a verb printed (scan, validate, verify), shown preformatted."""
    icon = ":white_check_mark:" if ok else ":x:"
    return _ephemeral(f"{title}\n{text}", [section(f"{icon} *{esc(title)}*"), section(code(text))])


# --------------------------------------------------------------------------- pull requests


def pr_value(number: int) -> str:
    return f"pr:{number}"


def pr_number(value: str) -> int | None:
    """The pull request a button names ("pr:42", or a bare number)."""
    text = value.removeprefix("pr:")
    return int(text) if text.isdigit() else None


def pr_actions(number: int, url: str, *, is_open: bool, merge_allowed: bool) -> Block:
    value = pr_value(number)
    elements = [
        button("View PR", VIEW, value, url=url) if url.startswith(("http://", "https://")) else button("View PR", VIEW, value)
    ]
    if is_open:
        elements.append(button("Approve", APPROVE, value, style="primary"))
        if merge_allowed:
            elements.append(button("Merge", MERGE, value, style="primary"))
        elements.append(button("Close", CLOSE, value, style="danger"))
    return {"type": "actions", "block_id": f"pr_actions:{number}", "elements": elements}


def check_text(checks: Mapping[str, Mapping[str, Any]]) -> str:
    if not checks:
        return "_Checks are queued._"
    return "\n".join(
        f"{STATE_ICON.get(str(c.get('state')), '•')} *{esc(name)}* {esc(str(c.get('summary', '')))}" for name, c in checks.items()
    )


def pr_message(view: Mapping[str, Any], *, merge_allowed: bool, requester: str = "", summary: Sequence[str] = ()) -> Payload:
    """The parent message of a pull request's thread: what changes, checks, approvals, buttons."""
    number, title, state = int(view["number"]), str(view["title"]), str(view.get("state", "open"))
    who = f" requested by <@{requester}>" if requester else f" by {esc(str(view.get('author', '')))}"
    head = f"*Pull request #{number}*: {esc(title)}{who}"
    if state != "open":
        head += f"  _({esc(state)})_"
    blocks: list[Block] = [section(head, block_id="pr_summary")]
    if summary:
        blocks.append(section("\n".join(f"• {esc(s).replace('**', '*')}" for s in summary)))
    blocks.append(section(check_text(view.get("checks", {})), block_id="pr_checks"))
    approvals = view.get("approvals") or {}
    lines = []
    if approvals.get("by"):
        lines.append("Approved by " + ", ".join(esc(p) for p in approvals["by"]))
    lines += [f"Waiting: {esc(m)}" for m in approvals.get("missing", [])]
    if lines:
        blocks.append(context("\n".join(lines)))
    blocks.append(pr_actions(number, str(view.get("url", "")), is_open=state == "open", merge_allowed=merge_allowed))
    return {"text": f"Pull request #{number}: {title}", "blocks": blocks}


def pr_detail(view: Mapping[str, Any], *, merge_allowed: bool) -> Payload:
    payload = pr_message(view, merge_allowed=merge_allowed)
    return _ephemeral(messages.pr_detail(view), [*payload["blocks"][:-1], section(code(str(view.get("body", "")))), payload["blocks"][-1]])


def thread_note(text: str) -> Payload:
    return {"text": text, "blocks": [section(esc(text))]}


# --------------------------------------------------------------------------- notifications


def notification(kind: str, data: Mapping[str, Any]) -> Payload:
    """A reply in a pull request's thread for a worker notification (see bot.jobs)."""
    number = int(data.get("pr") or 0)
    url = str(data.get("url", ""))
    text = str(data.get("text", ""))
    if kind == "checks":
        checks = data.get("checks") or {}
        failed = any(c.get("state") in ("failure", "error") for c in checks.values())
        icon = ":x:" if failed else (":hourglass_flowing_sand:" if any(c.get("state") == "pending" for c in checks.values()) else ":white_check_mark:")
        blocks = [section(f"{icon} *Checks on #{number}*"), section(check_text(checks))]
        blocks.append(pr_actions(number, url, is_open=True, merge_allowed=False))
        return {"text": text, "blocks": blocks}
    if kind == "ready":
        return {"text": text, "blocks": [section(f":large_green_circle: {esc(text)}"), pr_actions(number, url, is_open=True, merge_allowed=True)]}
    if kind == "waiting":
        return {"text": text, "blocks": [section(f":hourglass: {esc(text)}"), pr_actions(number, url, is_open=True, merge_allowed=False)]}
    if kind in ("deployed", "deploy_failed"):
        icon = ":rocket:" if kind == "deployed" else ":rotating_light:"
        title = "Deployed" if kind == "deployed" else "Deployment failed"
        return {"text": f"{title} (#{number}):\n{text}", "blocks": [section(f"{icon} *{title}* (#{number})"), section(code(text))]}
    if kind == "closed":
        return {"text": text, "blocks": [section(f":no_entry_sign: {esc(text)}")]}
    return {"text": text, "blocks": [section(esc(text))]}


def prod_deploy(data: Mapping[str, Any], lines: Sequence[str]) -> Payload:
    number = int(data.get("pr") or 0) or None
    text = messages.slack_prod_deploy(number, str(data.get("title", "")), lines)
    ok = bool((data.get("deploy") or {}).get("ok", True))
    icon = ":rocket:" if ok else ":rotating_light:"
    head = f"{icon} *Deploy to prod*" + (f" from #{number}: {esc(str(data.get('title', '')))}" if number else "")
    blocks = [section(head), section(code("\n".join(lines)))]
    url = str(data.get("url", ""))
    if url.startswith(("http://", "https://")):
        blocks.append({"type": "actions", "elements": [button("View PR", VIEW, pr_value(number or 0), url=url)]})
    return {"text": text, "blocks": blocks}


def drift(data: Mapping[str, Any]) -> Payload:
    env = str(data.get("env", ""))
    found = [str(line) for line in data.get("found") or []]
    text = str(data.get("text", "")) or f"Drift in {env}"
    blocks = [
        section(f":warning: *Drift in {esc(env)}*: what is deployed differs from the desired state"),
        section(code("\n".join(found[:20]))),
        section(f"Repair it from a terminal: `aimodel sync --env {esc(env)}`"),
    ]
    return {"text": text, "blocks": blocks}


# --------------------------------------------------------------------------- list and status


def _env_cell(state: Mapping[str, Any] | None) -> str:
    return messages.env_cell(state)


def model_list(rows: Sequence[Mapping[str, Any]], envs: Sequence[str]) -> Payload:
    text = messages.model_list(rows, envs)
    if not rows:
        return _ephemeral(text, [section(esc(text).replace("aimodel create", "/aimodel create"))])
    blocks: list[Block] = [section(f"*{len(rows)} model(s)*")]
    for r in rows[: MESSAGE_BLOCKS - 2]:
        where = "  ".join(f"{esc(e)}: {esc(_env_cell(r['environments'].get(e)))}" for e in envs) or "no environments"
        blocks.append(section(
            f"*{esc(r['name'])}* {esc(r['version'])}  ·  app `{esc(r['application'])}`  ·  data set `{esc(r['dataset'])}`\n{where}",
            block_id=f"model:{r['name']}"[:255],
        ))
    if len(rows) > MESSAGE_BLOCKS - 2:
        blocks.append(context(f"… and {len(rows) - (MESSAGE_BLOCKS - 2)} more; `aimodel list` shows all"))
    return _ephemeral(text, blocks)


def status(prs: Sequence[Mapping[str, Any]], locks: Sequence[Mapping[str, Any]]) -> Payload:
    text = messages.pr_list(prs)
    if locks:
        text += "\nLocks:\n" + "\n".join(f"  {h['key']} by #{h['pr']}" for h in locks)
    blocks: list[Block] = [section(f"*{len(prs)} open pull request(s)*")]
    for p in prs[:40]:
        blocks.append(section(
            f"*#{p['number']}* {esc(p['title'])} · {esc(p['author'])} · checks {esc(p['checks_summary'])}",
        ))
        blocks[-1]["accessory"] = button("View", VIEW, pr_value(int(p["number"])))
    if locks:
        blocks.append(context("Locks: " + ", ".join(f"`{esc(h['key'])}` (#{h['pr'] or 'opening'}, {esc(h['person'])})" for h in locks)))
    return _ephemeral(text, blocks)


def model_status(name: str, detail: Mapping[str, Any], prs: Sequence[Mapping[str, Any]]) -> Payload:
    lines = [f"{k}: {v}" for k, v in detail.items()]
    text = f"{name}\n" + "\n".join(lines)
    blocks = [section(f"*{esc(name)}*"), section(code("\n".join(lines)))]
    if prs:
        blocks.append(context("Open: " + ", ".join(f"#{p['number']} {esc(p['title'])}" for p in prs)))
    return _ephemeral(text, blocks)


# --------------------------------------------------------------------------- the create modal

MODAL_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    # block_id, label, placeholder, optional
    ("name", "Model name", "fraud-detector", False),
    ("app", "Application", "payments", False),
    ("dataset", "Data set", "transactions-2024", False),
    ("artifact", "Artifact URI", "s3://models/fraud/v3/model.onnx", False),
    ("version", "Version", "1.0.0", True),
    ("sla", "SLA", "accuracy>=0.9,latency_p95_ms<=50", True),
    ("dataset_uri", "Data set URI (a new data set only)", "s3://data/transactions.csv", True),
    ("label_column", "Label column (a new data set only)", "label", True),
)


def create_modal(private_metadata: Mapping[str, Any], initial: Mapping[str, str] | None = None) -> Payload:
    blocks: list[Block] = [context("Opens a pull request adding the model, its application and data set. The checks run on it.")]
    for block_id, label, placeholder, optional in MODAL_FIELDS:
        element: Block = {"type": "plain_text_input", "action_id": "value", "placeholder": {"type": "plain_text", "text": placeholder}}
        if initial and initial.get(block_id):
            element["initial_value"] = initial[block_id]
        blocks.append({"type": "input", "block_id": block_id, "optional": optional, "label": {"type": "plain_text", "text": label}, "element": element})
    return {
        "type": "modal",
        "callback_id": CREATE_CALLBACK,
        "title": {"type": "plain_text", "text": CREATE_TITLE},
        "submit": {"type": "plain_text", "text": "Open PR"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(dict(private_metadata)),
        "blocks": blocks,
    }


def modal_values(view: Mapping[str, Any]) -> dict[str, str]:
    """view.state.values -> {block_id: text} for text inputs and selects."""
    out: dict[str, str] = {}
    for block_id, actions in (view.get("state", {}).get("values", {}) or {}).items():
        for item in actions.values():
            if item.get("selected_option"):
                out[block_id] = str(item["selected_option"].get("value", "")).strip()
            else:
                out[block_id] = str(item.get("value") or "").strip()
    return out


# --------------------------------------------------------------------------- App Home


def home(
    *,
    person: str,
    roles: Sequence[str],
    my_prs: Sequence[Mapping[str, Any]],
    my_locks: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    envs: Sequence[str],
    pending: Sequence[Mapping[str, Any]],
) -> Payload:
    blocks: list[Block] = [
        header("AI models"),
        context(f"You are *{esc(person)}* ({esc(', '.join(roles) or 'no role')}). Type `/aimodel help` anywhere for the verbs."),
        {"type": "actions", "block_id": "home_actions", "elements": [button("New model", OPEN_CREATE, "create", style="primary")]},
        divider(),
        section(f"*Waiting for your approval* ({len(pending)})"),
    ]
    for p in pending[:15]:
        blocks.append(section(f"*#{p['number']}* {esc(p['title'])} · by {esc(p['author'])}\n{esc('; '.join(p.get('missing', [])))}", block_id=f"pending:{p['number']}"))
        blocks.append(pr_actions(int(p["number"]), str(p.get("url", "")), is_open=True, merge_allowed=False))
    if not pending:
        blocks.append(context("Nothing waits for you."))
    blocks += [divider(), section(f"*Your open pull requests* ({len(my_prs)})")]
    for p in my_prs[:15]:
        blocks.append(section(f"*#{p['number']}* {esc(p['title'])} · checks {esc(p['checks_summary'])}", block_id=f"mine:{p['number']}"))
    if not my_prs:
        blocks.append(context("None open."))
    if my_locks:
        blocks.append(context("Your locks: " + ", ".join(f"`{esc(h['key'])}` (#{h['pr'] or 'opening'})" for h in my_locks)))
    blocks += [divider(), section("*Models per environment*")]
    room = VIEW_BLOCKS - len(blocks) - 1
    for r in rows[:room]:
        where = "  ".join(f"{esc(e)}: {esc(_env_cell(r['environments'].get(e)))}" for e in envs)
        blocks.append(section(f"*{esc(r['name'])}* {esc(r['version'])} · `{esc(r['application'])}`\n{where}", block_id=f"model:{r['name']}"[:255]))
    if not rows:
        blocks.append(context("No models yet."))
    elif len(rows) > room:
        blocks.append(context(f"… and {len(rows) - room} more; `/aimodel list` shows all"))
    return {"type": "home", "callback_id": HOME_CALLBACK, "blocks": blocks[:VIEW_BLOCKS]}


def home_unknown(user_id: str) -> Payload:
    return {"type": "home", "callback_id": HOME_CALLBACK, "blocks": [header("AI models"), section(f":lock: {messages.slack_unknown_user(user_id)}")]}


def create_modal_unknown_user(user_id: str) -> Block:
    """The create modal, replaced by how to get access, for someone the config does not name."""
    return {
        "type": "modal", "title": {"type": "plain_text", "text": CREATE_TITLE},
        "blocks": [section(messages.slack_unknown_user(user_id))],
    }
