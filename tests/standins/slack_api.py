"""A stateful stand-in for the Slack Web API, served over real HTTP on 127.0.0.1.

Tests point slack_sdk (``WebClient(base_url=standin.api_url)``) or the app (env
``SLACK_API_URL``) at it instead of slack.com. It speaks the wire protocol Slack speaks:

* ``POST`` (or ``GET``) ``/api/<method>`` with a form-encoded or JSON body and/or a query string;
* ``Authorization: Bearer xoxb-...`` checked against the tokens registered with
  :meth:`SlackStandIn.add_bot_token` (a ``token`` form field is accepted too, as Slack does);
* errors are HTTP 200 with ``{"ok": false, "error": "..."}``, except rate limits, which are
  HTTP 429 with a ``Retry-After`` header;
* ``POST /response/<id>`` plays a ``response_url`` (see :meth:`SlackStandIn.new_response_url`).

It serves only the methods the app calls (auth.test, chat.postMessage, chat.postEphemeral,
chat.update, conversations.history, users.info, views.open, views.publish); any other is
``unknown_method``, as Slack answers. It keeps state (channels, users, messages with ``ts`` and
threads, modal and App Home views), records every call, and can be told to fail the next call(s)
of a method.

Example::

    with SlackStandIn() as slack:              # seeded: U0ALICE, U0BOB, ..., C0MODELS
        slack.add_bot_token("xoxb-test")       # what the app uses as SLACK_BOT_TOKEN
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        client.chat_postMessage(channel="C0MODELS", text="hi")
        assert slack.messages("C0MODELS")[0]["text"] == "hi"

        cmd = slack.slash_command("list")      # a signed-able request as Slack sends it
        cmd.post("http://127.0.0.1:3000/slack/events", signing_secret)
        slack.wait_for_response(cmd.response_url)   # what the app sent to response_url
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins import slack_signing
from tests.standins.slack_signing import Delivery

__all__ = ["SEED_USERS", "Call", "Delivery", "SlackStandIn", "StandInError"]

# Parameters that slack_sdk sends as JSON strings inside form bodies.
_JSON_PARAMS = ("blocks", "attachments", "view", "metadata", "unfurls", "user_auth_blocks")

_BASE_TS_SECONDS = 1_700_000_000
_MAX_MESSAGE_BLOCKS = 50
_MAX_VIEW_BLOCKS = 100
_MAX_TEXT = 40_000

BOT_SCOPES = (
    "chat:write,chat:write.public,commands,im:write,im:history,channels:read,"
    "channels:history,groups:read,groups:history,users:read,users:read.email,reactions:write"
)


# The people the payload fixtures in tests/fixtures/slack name.
SEED_USERS = (
    ("U0ALICE", "alice", "alice@example.com", "Alice Data-Scientist"),
    ("U0BOB", "bob", "bob@example.com", "Bob DevOps"),
    ("U0CAROL", "carol", "carol@example.com", "Carol Data-Engineer"),
    ("U0DAVE", "dave", "dave@example.com", "Dave App-Developer"),
)


class StandInError(Exception):
    """A Web API error: becomes ``{"ok": false, "error": error}`` with the given HTTP status."""

    def __init__(
        self,
        error: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}


@dataclass(frozen=True)
class Call:
    """One recorded Web API call (also recorded when it failed)."""

    method: str
    params: dict[str, Any]
    token: str | None
    time: float
    http_method: str = "POST"
    content_type: str = ""
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None
    times: int


@dataclass
class _ResponseUrl:
    id: str
    channel: str | None
    user: str | None
    message_ts: str | None
    max_uses: int
    received: list[dict[str, Any]] = field(default_factory=list)


def _missing(name: str) -> StandInError:
    return StandInError(
        "invalid_arguments",
        extra={"response_metadata": {"messages": [f"[ERROR] missing required field: {name}"]}},
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


class SlackStandIn:
    """Slack Web API stand-in. Use as a context manager, or call :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        *,
        team_id: str = "T0001",
        team_domain: str = "aimodel-dev",
        team_name: str = "AI Model Dev",
        app_id: str = "A0AIMODEL",
        strict_channels: bool = False,
        seed: bool = True,
    ) -> None:
        """``strict_channels=False`` (the default) creates a public channel the first time an
        unknown ``C...``/``G...`` id is used, so tests need not register every channel;
        ``True`` answers ``channel_not_found`` as Slack does.

        ``seed=True`` adds the people and channel that the payload fixtures name (see
        :data:`SEED_USERS`, channel ``C0MODELS`` "ml-models"). No token is accepted until
        :meth:`add_bot_token` is called."""
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.app_id = app_id
        self.strict_channels = strict_channels

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tokens: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemeral: dict[str, list[dict[str, Any]]] = {}
        self._dms: dict[str, str] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._home: dict[str, dict[str, Any]] = {}
        self._calls: list[Call] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)

        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if seed:
            for user_id, name, email, real_name in SEED_USERS:
                self.add_user(user_id, name, email, real_name)
            self.add_channel("C0MODELS", "ml-models", purpose="AI model changes")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandIn:
        if self._server is not None:
            return self
        standin = self

        class Handler(_Handler):
            owner = standin

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"slack-standin-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SlackStandIn is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base, as ``WebClient(base_url=...)`` and ``SLACK_API_URL`` take it."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ seeding state

    def add_bot_token(
        self,
        token: str,
        team_id: str | None = None,
        bot_user_id: str = "U0BOT",
        *,
        bot_id: str = "B0BOT",
        bot_name: str = "aimodel",
        scopes: str = BOT_SCOPES,
    ) -> None:
        """Accept ``token``; auth.test answers with this team and bot user. The bot user is
        added as a user too (``is_bot``)."""
        team = team_id or self.team_id
        with self._lock:
            self._tokens[token] = {
                "team_id": team,
                "user_id": bot_user_id,
                "bot_id": bot_id,
                "user": bot_name,
                "scopes": scopes,
            }
            if bot_user_id not in self._users:
                self._users[bot_user_id] = self._user_object(
                    bot_user_id, bot_name, None, bot_name, team_id=team, is_bot=True, bot_id=bot_id
                )

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None = None,
        real_name: str | None = None,
        *,
        is_bot: bool = False,
        is_admin: bool = False,
        tz: str = "Europe/Berlin",
        team_id: str | None = None,
    ) -> dict[str, Any]:
        user = self._user_object(
            user_id,
            name,
            email,
            real_name or name,
            team_id=team_id or self.team_id,
            is_bot=is_bot,
            is_admin=is_admin,
            tz=tz,
        )
        with self._lock:
            self._users[user_id] = user
        return copy.deepcopy(user)

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        is_member: bool = True,
        topic: str = "",
        purpose: str = "",
    ) -> dict[str, Any]:
        """Register a channel. A bot that is not a member gets ``not_in_channel`` on post."""
        with self._lock:
            channel = self._channel_object(channel_id, name, is_private, is_member, topic, purpose)
            self._channels[channel_id] = channel
            self._messages.setdefault(channel_id, [])
            return copy.deepcopy(channel)

    def new_trigger_id(self) -> str:
        """A trigger_id shaped like Slack's (``<digits>.<digits>.<hex>``)."""
        return f"{int(time.time() * 1000)}.{next(self._id_counter):013d}.{secrets.token_hex(16)}"

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        max_uses: int = 5,
    ) -> str:
        """A response_url served by this stand-in. With ``channel``, an ``in_channel`` reply is
        also posted to that channel's history; with ``message_ts`` too, ``replace_original`` /
        ``delete_original`` change that message. Slack accepts 5 uses; more get ``used_url``."""
        rid = f"{self.team_id}/{next(self._id_counter):010d}/{secrets.token_hex(12)}"
        with self._lock:
            self._response_urls[rid] = _ResponseUrl(rid, channel, user, message_ts, max_uses)
        return f"{self.base_url}/response/{rid}"

    # ------------------------------------------------------------------ requests Slack sends

    def slash_command(
        self,
        text: str,
        *,
        user_id: str = "U0ALICE",
        channel_id: str = "C0MODELS",
        command: str = "/aimodel",
        **more: Any,
    ) -> Delivery:
        """A slash command as Slack would POST it to the app, with a fresh response_url on
        this stand-in (bound to the channel and user) and a fresh trigger_id."""
        user = self._users.get(user_id, {})
        response_url = self.new_response_url(channel=channel_id, user=user_id)
        trigger_id = self.new_trigger_id()
        more.setdefault("user_name", user.get("name"))
        more.setdefault("team_id", self.team_id)
        if channel_id in self._channels and self._channels[channel_id].get("name"):
            more.setdefault("channel_name", self._channels[channel_id]["name"])
        body = slack_signing.slash_command_body(
            command,
            text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=response_url,
            trigger_id=trigger_id,
            **more,
        )
        return Delivery(body, slack_signing.FORM, response_url, trigger_id)

    def block_action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user_id: str = "U0BOB",
        channel_id: str = "C0MODELS",
        message_ts: str | None = None,
        **more: Any,
    ) -> Delivery:
        """A block_actions click on a message button. With ``message_ts`` of a message in the
        stand-in, that message is carried in the payload and the response_url can replace it."""
        response_url = self.new_response_url(
            channel=channel_id, user=user_id, message_ts=message_ts
        )
        trigger_id = self.new_trigger_id()
        user = self._users.get(user_id, {})
        with self._lock:
            message = self._find_message(channel_id, message_ts) if message_ts else None
            message = copy.deepcopy(message)
        payload = slack_signing.block_actions_payload(
            action_id,
            value,
            user_id=user_id,
            user_name=user.get("name"),
            channel_id=channel_id,
            message_ts=message_ts,
            message=message,
            response_url=response_url,
            trigger_id=trigger_id,
            team_id=self.team_id,
            **more,
        )
        return Delivery(
            slack_signing.interactive_body(payload), slack_signing.FORM, response_url, trigger_id
        )

    def view_submission(
        self,
        callback_id: str,
        values: dict[str, dict[str, dict[str, Any]]] | None = None,
        private_metadata: str | None = None,
        *,
        user_id: str = "U0ALICE",
        **more: Any,
    ) -> Delivery:
        """A modal submitted by ``user_id`` (``values`` as in view.state.values)."""
        trigger_id = self.new_trigger_id()
        user = self._users.get(user_id, {})
        payload = slack_signing.view_submission_payload(
            callback_id,
            values,
            private_metadata,
            user_id=user_id,
            user_name=user.get("name"),
            trigger_id=trigger_id,
            **more,
        )
        return Delivery(
            slack_signing.interactive_body(payload), slack_signing.FORM, None, trigger_id
        )

    def app_home_opened(self, user_id: str = "U0ALICE", **more: Any) -> Delivery:
        """The app_home_opened event; carries the user's current Home view when one exists."""
        with self._lock:
            dm = self._open_dm(user_id)["id"] if user_id in self._users else None
            view = copy.deepcopy(self._home.get(user_id))
        more.setdefault("channel", dm)
        more.setdefault("event_id", f"Ev{next(self._id_counter):010d}")  # each event has its own; a retry repeats it
        envelope = json.loads(
            slack_signing.app_home_opened_body(user_id, with_view=view is not None, **more)
        )
        if view is not None:
            envelope["event"]["view"] = view
        return Delivery(slack_signing.event_body(envelope), slack_signing.JSON, None, None)

    # ------------------------------------------------------------------ failure injection

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        ``ratelimited`` defaults to HTTP 429 with ``Retry-After: retry_after`` (as Slack, and
        as slack_sdk's RateLimitErrorRetryHandler expects); other errors default to HTTP 200
        with ``ok: false``. ``method`` may be ``"response_url"`` to fail response_url posts."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        with self._lock:
            self._failures.setdefault(method, []).append(
                _Failure(error, status, retry_after if status == 429 else None, times)
            )

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10,
    ) -> Call:
        """The first recorded call of ``method`` (matching ``predicate``), waiting for it."""

        def find() -> Call | None:
            for c in self._calls:
                if c.method == method and (predicate is None or predicate(c)):
                    return c
            return None

        with self._changed:
            found = self._changed.wait_for(find, timeout=timeout)
            if found is None:
                seen = [c.method for c in self._calls]
                raise TimeoutError(f"no {method} call within {timeout}s; calls so far: {seen}")
            return found

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message in the channel, replies included, oldest first."""
        with self._lock:
            channel_id = self._resolve_channel(channel, create=False, strict=False) or channel
            return copy.deepcopy(self._messages.get(channel_id, []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent message and its replies, oldest first."""
        with self._lock:
            return [
                m for m in self.messages(channel) if m.get("ts") == ts or m.get("thread_ts") == ts
            ]

    def ephemerals(self, channel: str, user: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(
                [m for m in self._ephemeral.get(channel, []) if user is None or m["user"] == user]
            )

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The last view published to this user's App Home, or None."""
        with self._lock:
            view = self._home.get(user_id)
            return copy.deepcopy(view) if view else None

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        with self._lock:
            c = self._channels.get(channel_id)
            return copy.deepcopy(c) if c else None

    def dm_channel(self, user_id: str) -> str | None:
        with self._lock:
            return self._dms.get(user_id)

    def responses(self, response_id: str) -> list[dict[str, Any]]:
        """Messages POSTed to a response_url (pass its id or the whole URL)."""
        with self._lock:
            rurl = self._response_urls.get(self._response_id(response_id))
            return copy.deepcopy(rurl.received) if rurl else []

    def wait_for_response(
        self, response_id: str, count: int = 1, timeout: float = 10
    ) -> list[dict[str, Any]]:
        rid = self._response_id(response_id)

        def enough() -> bool:
            rurl = self._response_urls.get(rid)
            return rurl is not None and len(rurl.received) >= count

        with self._changed:
            if not self._changed.wait_for(enough, timeout=timeout):
                raise TimeoutError(
                    f"fewer than {count} responses to {rid} within {timeout}s: "
                    f"{self.responses(rid)}"
                )
            return self.responses(rid)

    @staticmethod
    def _response_id(value: str) -> str:
        if "/response/" in value:
            return value.split("/response/", 1)[1]
        return value

    # ------------------------------------------------------------------ object shapes

    def _user_object(
        self,
        user_id: str,
        name: str,
        email: str | None,
        real_name: str,
        *,
        team_id: str,
        is_bot: bool = False,
        is_admin: bool = False,
        tz: str = "Europe/Berlin",
        bot_id: str | None = None,
    ) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": name,
            "display_name_normalized": name,
            "status_text": "",
            "status_emoji": "",
            "team": team_id,
            "image_48": f"https://avatars.example/{user_id}_48.png",
        }
        if email:
            profile["email"] = email
        if bot_id:
            profile["bot_id"] = bot_id
            profile["api_app_id"] = self.app_id
        return {
            "id": user_id,
            "team_id": team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": tz,
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": _BASE_TS_SECONDS,
        }

    def _channel_object(
        self,
        channel_id: str,
        name: str,
        is_private: bool,
        is_member: bool,
        topic: str = "",
        purpose: str = "",
    ) -> dict[str, Any]:
        return {
            "id": channel_id,
            "name": name,
            "name_normalized": name,
            "is_channel": not is_private,
            "is_group": is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": is_private,
            "created": _BASE_TS_SECONDS,
            "is_archived": False,
            "is_general": False,
            "unlinked": 0,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "context_team_id": self.team_id,
            "creator": "",
            "is_member": is_member,
            "topic": {"value": topic, "creator": "", "last_set": 0},
            "purpose": {"value": purpose, "creator": "", "last_set": 0},
            "previous_names": [],
        }

    # ------------------------------------------------------------------ state helpers

    def _next_ts(self) -> str:
        n = next(self._ts_counter) * 100
        return f"{_BASE_TS_SECONDS + n // 1_000_000}.{n % 1_000_000:06d}"

    def _resolve_channel(
        self, channel: str, *, create: bool, strict: bool | None = None
    ) -> str | None:
        """Channel id for an id, a ``#name``/``name``, or a user id (their DM with the bot)."""
        strict = self.strict_channels if strict is None else strict
        if not channel:
            return None
        if channel in self._channels:
            return channel
        if channel[0] in "UW" and channel in self._users:
            return str(self._open_dm(channel)["id"])
        name = channel.lstrip("#")
        for cid, c in self._channels.items():
            if c.get("name") == name:
                return cid
        if channel[0] in "CG" and channel[1:].isalnum() and channel.isupper() and not strict:
            if create:
                self._channels[channel] = self._channel_object(
                    channel, channel.lower(), channel[0] == "G", True
                )
                self._messages.setdefault(channel, [])
            return channel
        return None

    def _require_channel(self, params: dict[str, Any], key: str = "channel") -> str:
        value = params.get(key)
        if not value:
            raise StandInError("channel_not_found")
        channel_id = self._resolve_channel(str(value), create=True)
        if channel_id is None:
            raise StandInError("channel_not_found")
        return channel_id

    def _open_dm(self, user_id: str) -> dict[str, Any]:
        if user_id not in self._dms:
            dm_id = f"D{next(self._id_counter):08d}"
            self._dms[user_id] = dm_id
            self._channels[dm_id] = {
                "id": dm_id,
                "created": _BASE_TS_SECONDS,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "user": user_id,
                "is_user_deleted": False,
                "priority": 0,
            }
            self._messages.setdefault(dm_id, [])
        return self._channels[self._dms[user_id]]

    def _find_message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        for m in self._messages.get(channel_id, []):
            if m.get("ts") == ts:
                return m
        return None

    def _append_message(
        self, channel_id: str, message: dict[str, Any], thread_ts: str | None
    ) -> dict[str, Any]:
        ts = self._next_ts()
        message["ts"] = ts
        if thread_ts:
            parent = self._find_message(channel_id, thread_ts)
            if parent is None:
                # Slack posts a reply to an unknown thread_ts as a top-level message.
                thread_ts = None
            else:
                if parent.get("thread_ts") and parent["thread_ts"] != parent["ts"]:
                    parent = self._find_message(channel_id, parent["thread_ts"]) or parent
                thread_ts = parent["ts"]
                message["thread_ts"] = thread_ts
                message["parent_user_id"] = parent.get("user", "")
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                if message.get("user") and message["user"] not in users:
                    users.append(message["user"])
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = ts
                parent.setdefault("is_locked", False)
                parent.setdefault("subscribed", False)
        self._messages.setdefault(channel_id, []).append(message)
        self._changed.notify_all()
        return message

    def _default_bot(self) -> dict[str, Any]:
        return next(iter(self._tokens.values()), {})

    def _token_info(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise StandInError("not_authed")
        info = self._tokens.get(token)
        if info is None:
            raise StandInError("invalid_auth")
        return info

    # ------------------------------------------------------------------ request handling

    def _handle_api(
        self,
        method: str,
        params: dict[str, Any],
        token: str | None,
        http_method: str,
        content_type: str,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Run one Web API call; returns (status, headers, body) and records it."""
        headers: dict[str, str] = {}
        with self._lock:
            try:
                handler = _METHODS.get(method)
                if handler is None:
                    raise StandInError("unknown_method", extra={"req_method": method})
                info = self._token_info(token)
                headers["X-OAuth-Scopes"] = info["scopes"]
                self._maybe_fail(method)
                body = {"ok": True, **handler(self, params, token)}
                status = 200
            except StandInError as e:
                status = e.status
                headers.update(e.headers)
                body = {"ok": False, "error": e.error, **e.extra}
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                # A malformed argument (e.g. a non-numeric ts): answer as Slack does, and keep
                # the detail for whoever reads the recorded call.
                status = 200
                body = {
                    "ok": False,
                    "error": "invalid_arguments",
                    "response_metadata": {"messages": [f"[ERROR] {type(e).__name__}: {e}"]},
                }
            self._calls.append(
                Call(
                    method=method,
                    params=copy.deepcopy(params),
                    token=token,
                    time=time.time(),
                    http_method=http_method,
                    content_type=content_type,
                    status=status,
                    response=copy.deepcopy(body),
                )
            )
            self._changed.notify_all()
        return status, headers, body

    def _maybe_fail(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        raise StandInError(failure.error, status=failure.status, headers=headers)

    def _handle_response_url(self, rid: str, payload: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            rurl = self._response_urls.get(rid)
            if rurl is None:
                return 404, {"ok": False, "error": "expired_url"}
            try:
                self._maybe_fail("response_url")
            except StandInError as e:
                return e.status, {"ok": False, "error": e.error}
            if not isinstance(payload, dict):
                return 400, {"ok": False, "error": "invalid_payload"}
            if len(rurl.received) >= rurl.max_uses:
                return 404, {"ok": False, "error": "used_url"}
            rurl.received.append(copy.deepcopy(payload))
            self._apply_response(rurl, payload)
            self._changed.notify_all()
            return 200, {"ok": True}

    def _apply_response(self, rurl: _ResponseUrl, payload: dict[str, Any]) -> None:
        if rurl.channel is None:
            return
        channel_id = self._resolve_channel(rurl.channel, create=True) or rurl.channel
        original = self._find_message(channel_id, rurl.message_ts) if rurl.message_ts else None
        if _truthy(payload.get("delete_original")):
            if original is not None:
                self._messages[channel_id].remove(original)
            return
        if _truthy(payload.get("replace_original")) and original is not None:
            for key in ("text", "blocks", "attachments"):
                if key in payload:
                    original[key] = payload[key]
            original["edited"] = {"user": original.get("user", ""), "ts": self._next_ts()}
            return
        if payload.get("response_type") == "in_channel":
            message = {
                "type": "message",
                "subtype": "bot_message",
                "text": payload.get("text", ""),
                "blocks": payload.get("blocks", []),
                "bot_id": self._default_bot().get("bot_id", ""),
                "app_id": self.app_id,
            }
            self._append_message(channel_id, message, payload.get("thread_ts"))
        else:
            self._ephemeral.setdefault(channel_id, []).append(
                {
                    "type": "message",
                    "user": rurl.user or "",
                    "text": payload.get("text", ""),
                    "blocks": payload.get("blocks", []),
                    "message_ts": self._next_ts(),
                    "via": "response_url",
                }
            )

    # ------------------------------------------------------------------ Web API methods

    def _bot_message(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        info = self._tokens.get(token or "", {})
        text = params.get("text")
        blocks = params.get("blocks")
        attachments = params.get("attachments")
        if not text and not blocks and not attachments:
            raise StandInError("no_text")
        if text is not None and len(str(text)) > _MAX_TEXT:
            raise StandInError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks, _MAX_MESSAGE_BLOCKS)
        message: dict[str, Any] = {
            "user": info.get("user_id", ""),
            "type": "message",
            "text": str(text or ""),
            "bot_id": info.get("bot_id", ""),
            "app_id": self.app_id,
            "team": info.get("team_id", self.team_id),
            "bot_profile": {
                "id": info.get("bot_id", ""),
                "app_id": self.app_id,
                "name": info.get("user", "aimodel"),
                "deleted": False,
                "team_id": info.get("team_id", self.team_id),
            },
            "blocks": blocks or [],
        }
        if attachments:
            message["attachments"] = attachments
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
        return message

    def _auth_test(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        info = self._token_info(token)
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": info["user"],
            "team_id": info["team_id"],
            "user_id": info["user_id"],
            "bot_id": info["bot_id"],
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        channel = self._channels[channel_id]
        if not channel.get("is_im") and not channel.get("is_member", True):
            raise StandInError("not_in_channel")
        if channel.get("is_archived"):
            raise StandInError("is_archived")
        message = self._bot_message(params, token)
        thread_ts = params.get("thread_ts") or None
        if thread_ts and _truthy(params.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        stored = self._append_message(channel_id, message, thread_ts)
        return {"channel": channel_id, "ts": stored["ts"], "message": copy.deepcopy(stored)}

    def _chat_post_ephemeral(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        user = params.get("user")
        if not user:
            raise _missing("user")
        if user not in self._users:
            raise StandInError("user_not_in_channel")
        message = self._bot_message(params, token)
        message_ts = self._next_ts()
        message.update({"user": user, "message_ts": message_ts})
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self._ephemeral.setdefault(channel_id, []).append(message)
        self._changed.notify_all()
        return {"message_ts": message_ts}

    def _chat_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = params.get("ts")
        if not ts:
            raise _missing("ts")
        original = self._find_message(channel_id, str(ts))
        if original is None:
            raise StandInError("message_not_found")
        info = self._tokens.get(token or "", {})
        if original.get("bot_id") != info.get("bot_id"):
            raise StandInError("cant_update_message")
        if "text" not in params and "blocks" not in params and "attachments" not in params:
            raise StandInError("no_text")
        if "blocks" in params and params["blocks"] is not None:
            _check_blocks(params["blocks"], _MAX_MESSAGE_BLOCKS)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                original[key] = params[key]
        original["edited"] = {"user": original.get("user", ""), "ts": self._next_ts()}
        self._changed.notify_all()
        return {
            "channel": channel_id,
            "ts": original["ts"],
            "text": original.get("text", ""),
            "message": copy.deepcopy(original),
        }

    def _conversations_history(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        latest = float(params.get("latest") or "inf")
        oldest = float(params.get("oldest") or 0)
        inclusive = _truthy(params.get("inclusive"))
        top = [
            m
            for m in self._messages.get(channel_id, [])
            if not m.get("thread_ts")
            or m["thread_ts"] == m["ts"]
            or m.get("subtype") == "thread_broadcast"
        ]

        def in_range(m: dict[str, Any]) -> bool:
            t = float(m["ts"])
            if inclusive:
                return oldest <= t <= latest
            return oldest < t < latest

        selected = [m for m in reversed(top) if in_range(m)]
        return _page(selected, params, "messages", default_limit=100)

    def _users_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise StandInError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _new_view(self, view: Any, token: str | None, **extra: Any) -> dict[str, Any]:
        if not isinstance(view, dict):
            raise _missing("view")
        vtype = view.get("type")
        if vtype not in ("modal", "home"):
            raise StandInError("invalid_arguments")
        blocks = view.get("blocks")
        if blocks is None:
            raise _missing("view.blocks")
        _check_blocks(blocks, _MAX_VIEW_BLOCKS)
        if vtype == "modal" and not view.get("title"):
            raise _missing("view.title")
        info = self._tokens.get(token or "", {})
        view_id = f"V{next(self._id_counter):010d}"
        obj: dict[str, Any] = {
            "id": view_id,
            "team_id": info.get("team_id", self.team_id),
            "type": vtype,
            "blocks": copy.deepcopy(blocks),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": info.get("team_id", self.team_id),
            "bot_id": info.get("bot_id", ""),
        }
        obj.update(extra)
        return obj

    def _views_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not params.get("trigger_id") and not params.get("interactivity_pointer"):
            raise _missing("trigger_id")
        view = self._new_view(params.get("view"), token)
        if view["type"] != "modal":
            raise StandInError("invalid_arguments")
        self._store_view(view)
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        user_id = params.get("user_id")
        if not user_id:
            raise _missing("user_id")
        if user_id not in self._users:
            raise StandInError("user_not_found")
        view = self._new_view(params.get("view"), token)
        if view["type"] != "home":
            raise StandInError("invalid_arguments")
        current = self._home.get(str(user_id))
        if current is not None:
            if params.get("hash") and params["hash"] != current["hash"]:
                raise StandInError("hash_conflict")
            view["id"] = view["root_view_id"] = current["id"]
        self._home[str(user_id)] = view
        self._store_view(view)
        return {"view": copy.deepcopy(view)}

    def _store_view(self, view: dict[str, Any]) -> None:
        self._views[view["id"]] = view
        self._changed.notify_all()


def _check_blocks(blocks: Any, limit: int) -> None:
    if not isinstance(blocks, list):
        raise StandInError("invalid_blocks_format")
    if len(blocks) > limit:
        raise StandInError("invalid_blocks")
    for b in blocks:
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            raise StandInError("invalid_blocks")


def _page(
    items: list[dict[str, Any]], params: dict[str, Any], key: str, *, default_limit: int
) -> dict[str, Any]:
    """One page of ``items``; cursors are opaque base64 strings, as Slack's are."""
    limit = int(params.get("limit") or default_limit)
    cursor = str(params.get("cursor") or "")
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("next_offset:"))
        except ValueError as e:
            raise StandInError("invalid_cursor") from e
    page = items[start : start + limit]
    has_more = start + limit < len(items)
    next_cursor = base64.b64encode(f"next_offset:{start + limit}".encode()).decode()
    return {
        key: copy.deepcopy(page),
        "has_more": has_more,
        "response_metadata": {"next_cursor": next_cursor if has_more else ""},
    }


_METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any], str | None], dict[str, Any]]] = {
    "auth.test": SlackStandIn._auth_test,
    "chat.postMessage": SlackStandIn._chat_post_message,
    "chat.postEphemeral": SlackStandIn._chat_post_ephemeral,
    "chat.update": SlackStandIn._chat_update,
    "conversations.history": SlackStandIn._conversations_history,
    "users.info": SlackStandIn._users_info,
    "views.open": SlackStandIn._views_open,
    "views.publish": SlackStandIn._views_publish,
}


class _Handler(BaseHTTPRequestHandler):
    owner: SlackStandIn
    server_version = "SlackStandIn/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, http_method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        if url.path.startswith("/response/") and http_method == "POST":
            rid = url.path[len("/response/") :]
            try:
                payload = json.loads(raw.decode("utf-8") or "null")
            except ValueError:
                self._send(400, {"ok": False, "error": "invalid_payload"})
                return
            status, body = self.owner._handle_response_url(rid, payload)
            self._send(status, body)
            return
        if not url.path.startswith("/api/"):
            self._send(404, {"ok": False, "error": "unknown_method"})
            return
        method = url.path[len("/api/") :].strip("/")
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query, True).items()}
        try:
            if "json" in content_type:
                decoded = json.loads(raw.decode("utf-8") or "{}")
                if not isinstance(decoded, dict):
                    raise ValueError("not an object")
                params.update(decoded)
            elif raw:
                form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
                params.update({k: v[-1] for k, v in form.items()})
        except ValueError:
            self._send(200, {"ok": False, "error": "invalid_json"})
            return
        for key in _JSON_PARAMS:
            if isinstance(params.get(key), str) and params[key]:
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    self._send(200, {"ok": False, "error": f"invalid_{key}_format"})
                    return
        token = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        elif isinstance(params.get("token"), str):
            token = params["token"]
        status, headers, body = self.owner._handle_api(
            method, params, token, http_method, content_type
        )
        self._send(status, body, headers)

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
