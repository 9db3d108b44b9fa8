"""Build and sign requests exactly as Slack sends them to an app.

Slack signs every request with the app's signing secret: ``X-Slack-Request-Timestamp`` is the
Unix time, ``X-Slack-Signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}``.

Body builders start from the real payloads kept in ``tests/fixtures/slack/<kind>/*.json`` and
override only what a test names:

* slash commands: ``application/x-www-form-urlencoded`` fields (:func:`slash_command_body`);
* interactivity (block_actions, view_submission): one form field ``payload=<json>``
  (:func:`interactive_body`, :func:`block_actions_payload`, :func:`view_submission_payload`);
* Events API (event_callback, url_verification): a JSON body (:func:`event_body`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

__all__ = [
    "FIXTURES",
    "Delivery",
    "app_home_opened_body",
    "block_actions_payload",
    "event_body",
    "interactive_body",
    "load_fixture",
    "post_to_app",
    "sign_request",
    "signed_headers",
    "slash_command_body",
    "slash_command_fields",
    "url_verification_body",
    "view_submission_payload",
]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slack"

_DEFAULT_FIXTURE = {
    "slash_command": "aimodel_create",
    "block_actions": "approve_button",
    "view_submission": "create_model",
    "app_home_opened": "home_tab",
    "url_verification": "challenge",
}

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def sign_request(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to a request with this raw ``body``."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    base = b"v0:" + ts.encode("ascii") + b":" + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def signed_headers(
    secret: str, body: bytes, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Signature headers plus the Content-Type Slack would send for this body."""
    if content_type is None:
        content_type = JSON if body.lstrip().startswith(b"{") else FORM
    return {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        **sign_request(secret, body, timestamp),
    }


def load_fixture(kind: str, name: str | None = None) -> dict[str, Any]:
    """A fresh copy of ``tests/fixtures/slack/<kind>/<name>.json``."""
    path = FIXTURES / kind / f"{name or _DEFAULT_FIXTURE[kind]}.json"
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return copy.deepcopy(data)


# ---------------------------------------------------------------------- slash commands


def slash_command_fields(
    command: str = "/aimodel",
    text: str | None = None,
    user_id: str | None = None,
    user_name: str | None = None,
    channel_id: str | None = None,
    team_id: str | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    *,
    channel_name: str | None = None,
    team_domain: str | None = None,
    api_app_id: str | None = None,
    fixture: str | None = None,
) -> dict[str, str]:
    """The slash command form fields (in Slack's order), from the fixture with overrides."""
    fields = load_fixture("slash_command", fixture)
    overrides = {
        "command": command,
        "text": text,
        "user_id": user_id,
        "user_name": user_name,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "team_id": team_id,
        "team_domain": team_domain,
        "api_app_id": api_app_id,
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    for key, value in overrides.items():
        if value is not None:
            fields[key] = value
    return {k: str(v) for k, v in fields.items()}


def slash_command_body(
    command: str = "/aimodel",
    text: str | None = None,
    user_id: str | None = None,
    user_name: str | None = None,
    channel_id: str | None = None,
    team_id: str | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    **more: Any,
) -> bytes:
    """The raw ``application/x-www-form-urlencoded`` body of Slack's slash command POST."""
    fields = slash_command_fields(
        command, text, user_id, user_name, channel_id, team_id, response_url, trigger_id, **more
    )
    return urlencode(fields).encode("ascii")


# ---------------------------------------------------------------------- interactivity


def interactive_body(payload: dict[str, Any]) -> bytes:
    """The raw body of an interactivity POST: one form field ``payload=<compact json>``."""
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return urlencode({"payload": data}).encode("ascii")


def _set_user(payload: dict[str, Any], user_id: str | None, user_name: str | None) -> None:
    if user_id is not None:
        payload["user"]["id"] = user_id
    if user_name is not None:
        payload["user"]["username"] = payload["user"]["name"] = user_name


def block_actions_payload(
    action_id: str | None = None,
    value: str | None = None,
    *,
    block_id: str | None = None,
    user_id: str | None = None,
    user_name: str | None = None,
    channel_id: str | None = None,
    message_ts: str | None = None,
    message: dict[str, Any] | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    team_id: str | None = None,
    fixture: str | None = None,
) -> dict[str, Any]:
    """A block_actions payload (one action) from the fixture, with overrides."""
    payload = load_fixture("block_actions", fixture)
    action = payload["actions"][0]
    if action_id is not None:
        action["action_id"] = action_id
    if value is not None:
        action["value"] = value
    if block_id is not None:
        action["block_id"] = block_id
    _set_user(payload, user_id, user_name)
    if team_id is not None:
        payload["user"]["team_id"] = payload["team"]["id"] = team_id
    container = payload["container"]
    if channel_id is not None:
        if "channel" in payload:
            payload["channel"]["id"] = channel_id
        container["channel_id"] = channel_id
    if message is not None:
        payload["message"] = message
        container["message_ts"] = message.get("ts", container.get("message_ts"))
    if message_ts is not None:
        container["message_ts"] = message_ts
        if "message" in payload:
            payload["message"]["ts"] = message_ts
    if response_url is not None:
        payload["response_url"] = response_url
    if trigger_id is not None:
        payload["trigger_id"] = trigger_id
    return payload


def view_submission_payload(
    callback_id: str | None = None,
    values: dict[str, dict[str, dict[str, Any]]] | None = None,
    private_metadata: str | None = None,
    *,
    user_id: str | None = None,
    user_name: str | None = None,
    view_id: str | None = None,
    trigger_id: str | None = None,
    response_urls: list[dict[str, Any]] | None = None,
    fixture: str | None = None,
) -> dict[str, Any]:
    """A view_submission payload from the fixture. ``values`` replaces view.state.values
    (``{block_id: {action_id: {"type": ..., "value": ...}}}``)."""
    payload = load_fixture("view_submission", fixture)
    view = payload["view"]
    if callback_id is not None:
        view["callback_id"] = callback_id
    if values is not None:
        view["state"]["values"] = values
    if private_metadata is not None:
        view["private_metadata"] = private_metadata
    if view_id is not None:
        view["id"] = view["root_view_id"] = view_id
    _set_user(payload, user_id, user_name)
    if trigger_id is not None:
        payload["trigger_id"] = trigger_id
    if response_urls is not None:
        payload["response_urls"] = response_urls
    return payload


# ---------------------------------------------------------------------- Events API


def event_body(envelope: dict[str, Any]) -> bytes:
    """The raw JSON body of an Events API POST."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def app_home_opened_body(
    user_id: str | None = None,
    *,
    channel: str | None = None,
    tab: str | None = None,
    with_view: bool = True,
    event_id: str | None = None,
    event_time: int | None = None,
    fixture: str | None = None,
) -> bytes:
    """An event_callback carrying app_home_opened. ``with_view=False`` is a first visit
    (Slack sends ``view`` only once a Home view was published)."""
    envelope = load_fixture("app_home_opened", fixture)
    event = envelope["event"]
    if user_id is not None:
        event["user"] = user_id
    if channel is not None:
        event["channel"] = channel
    if tab is not None:
        event["tab"] = tab
    if not with_view:
        event.pop("view", None)
    if event_id is not None:
        envelope["event_id"] = event_id
    if event_time is not None:
        envelope["event_time"] = event_time
        event["event_ts"] = f"{event_time}.000100"
    return event_body(envelope)


def url_verification_body(challenge: str | None = None) -> bytes:
    envelope = load_fixture("url_verification")
    if challenge is not None:
        envelope["challenge"] = challenge
    return event_body(envelope)


# ---------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Delivery:
    """A request as Slack would send it to the app: raw body, its Content-Type, and the
    response_url / trigger_id it carries (when it carries them)."""

    body: bytes
    content_type: str
    response_url: str | None = None
    trigger_id: str | None = None

    def headers(self, secret: str, timestamp: int | None = None) -> dict[str, str]:
        return signed_headers(secret, self.body, timestamp, self.content_type)

    def payload(self) -> dict[str, Any]:
        """The body decoded as the app sees it (form fields, ``payload`` JSON, or JSON)."""
        if self.content_type == JSON:
            data: dict[str, Any] = json.loads(self.body)
            return data
        fields = {k: v[-1] for k, v in parse_qs(self.body.decode(), True).items()}
        if set(fields) == {"payload"}:
            decoded: dict[str, Any] = json.loads(fields["payload"])
            return decoded
        return dict(fields)

    def post(self, url: str, secret: str, *, timestamp: int | None = None, **kw: Any) -> Any:
        """POST it, signed, to the app at ``url`` (see :func:`post_to_app`)."""
        return post_to_app(
            url, secret, self.body, timestamp=timestamp, content_type=self.content_type, **kw
        )


def post_to_app(
    url: str,
    secret: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    content_type: str | None = None,
    retry_num: int | None = None,
    timeout: float = 10,
) -> Any:
    """POST ``body`` to the app at ``url`` signed as Slack would; returns the
    ``requests.Response`` (its content read, its connection closed). ``retry_num`` adds
    Slack's ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason`` headers of a redelivery."""
    import requests

    headers = signed_headers(secret, body, timestamp, content_type)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    with requests.Session() as session:
        response = session.post(url, data=body, headers=headers, timeout=timeout)
        _ = response.content
        response.close()
    return response
