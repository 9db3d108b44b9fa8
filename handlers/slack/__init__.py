"""The Slack face: a slack-bolt App (sync, lazy listeners) served by the web process at
POST /slack/events through Bolt's Flask adapter, or over Socket Mode when SLACK_APP_TOKEN
is set.

Requests are verified by Bolt (signature, 5-minute timestamp) and then by the replay guard
(a signature seen before within 5 minutes gets 401). Every listener acknowledges at once
with a short ephemeral answer; the git work runs in a lazy listener, and results go back
through response_url and chat.postMessage.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.request.internals import build_context
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from bot import messages
from bot.config import SlackSettings
from handlers.limits import SLACK_MAX_BODY, TooLarge, read_body, refused_line
from handlers.slack.replay import MemorySeen, RedisSeen, ReplayGuard, SeenSet, seen_set

if TYPE_CHECKING:
    from flask import Flask

    from bot.app import Context

__all__ = ["LazyDeferral", "MemorySeen", "RedisSeen", "ReplayGuard", "build_app", "register", "socket_mode_handler", "web_client"]

log = logging.getLogger("aimodel.slack")

LAZY_WORKERS = 8


class LazyDeferral:
    """Starts lazy listeners after the ack has gone out, not while it is being written.

    Bolt copies the request and starts each lazy listener as soon as the ack function
    returns; the copy and the new thread then compete for the interpreter with the request
    thread that still has to send the ack. Inside `deferring()` (the Flask view) those starts
    are collected instead, and the view runs them when the WSGI response is closed, i.e.
    after its bytes were written. Elsewhere (Socket Mode) they start at once, as in Bolt.
    Wraps ThreadListenerRunner._start_lazy_function; if a Bolt release renames it, lazy
    listeners simply start at once again."""

    def __init__(self, runner: Any) -> None:
        self._local = threading.local()
        self._start: Callable[[Any, Any], None] | None = getattr(runner, "_start_lazy_function", None)
        if self._start is not None:
            setattr(runner, "_start_lazy_function", self._maybe_defer)  # noqa: B010

    def _maybe_defer(self, lazy_func: Any, request: Any) -> None:
        assert self._start is not None
        pending = getattr(self._local, "pending", None)
        if pending is None:
            self._start(lazy_func, request)
        else:
            pending.append(functools.partial(self._start, lazy_func, request))

    @contextlib.contextmanager
    def deferring(self) -> Iterator[list[Callable[[], None]]]:
        pending: list[Callable[[], None]] = []
        self._local.pending = pending
        try:
            yield pending
        finally:
            self._local.pending = None

    @staticmethod
    def run(pending: list[Callable[[], None]]) -> None:
        for start in pending:
            try:
                start()
            except Exception:
                log.exception("could not start a lazy listener")


class FormSafeRequest(BoltRequest):
    """Bolt reads any form body containing the text "payload" as an interaction, and a slash
    command like `/aimodel status payload-scorer` then has no fields at all (404, "unhandled
    request"). Read such a body as the form it is; lazy listeners get the same reading."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.mode == "http" and not self.body and self.raw_body and self.content_type != "application/json" and not self.raw_body.startswith("{"):
            fields = dict(parse_qsl(self.raw_body, keep_blank_values=True))
            if "payload" not in fields:
                self.body = fields
                self.context = build_context(BoltContext(kwargs.get("context") or {}), self.body)

    def to_copyable(self) -> BoltRequest:
        return FormSafeRequest(
            body=self.raw_body if self.mode == "http" else self.body, query=self.query, headers=self.headers,
            context=self.context.to_copyable(), mode=self.mode,
        )


def _signed(verifier: SignatureVerifier, body: bytes, headers: Any) -> bool:
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    return bool(verifier.is_valid(body, timestamp, signature))


def body_problem(text: str, content_type: str | None) -> str:
    """Why Bolt could not read this body (it parses before any listener runs), or ""."""
    kind = content_type.split(";")[0] if content_type else None
    try:
        if kind == "application/json" or text.startswith("{"):
            value: Any = json.loads(text)
        elif "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            if payload is None:
                return ""
            value = json.loads(payload)
        else:
            return ""  # form fields (a slash command): always readable
    except (ValueError, RecursionError) as exc:
        return messages.body_not_json(type(exc).__name__)
    if not isinstance(value, dict):
        return messages.not_an_object("the body", type(value).__name__)
    return ""


_DEFERRALS: weakref.WeakKeyDictionary[App, LazyDeferral] = weakref.WeakKeyDictionary()


def web_client(settings: SlackSettings) -> WebClient:
    """The Web API client: SLACK_API_URL when set (a stand-in), rate limits retried."""
    kwargs: dict[str, Any] = {}
    if settings.api_url:
        kwargs["base_url"] = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    from handlers.slack.redaction import RedactingWebClient

    return RedactingWebClient(
        token=settings.bot_token,
        timeout=15,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), RateLimitErrorRetryHandler(max_retry_count=2)],
        **kwargs,
    )


def build_app(ctx: Context, settings: SlackSettings, *, seen: SeenSet | None = None) -> App:
    """The Bolt app with every listener. `auth.test` runs once here (token verification)."""
    from handlers.slack.listeners import SlackFace

    app = App(
        # Bolt sets the level of the logger named after the app on every request: a name of our
        # own "aimodel" logger would turn its INFO lines off in the web process.
        name="aimodel-slack",
        client=web_client(settings),
        signing_secret=settings.signing_secret,
        # The ack function runs in the request thread and the response goes out at once;
        # the lazy listeners carry the work on the executor.
        process_before_response=True,
        before_authorize=ReplayGuard(seen if seen is not None else seen_set(ctx.settings.redis_url)),
        listener_executor=ThreadPoolExecutor(max_workers=LAZY_WORKERS, thread_name_prefix="slack-lazy"),
    )
    _DEFERRALS[app] = LazyDeferral(app.listener_runner)
    SlackFace(ctx).attach(app)
    app.error(unreadable_request)
    return app


def unreadable_request(error: Exception) -> BoltResponse:
    """Bolt's one error handler: a signed request whose payload Bolt's matchers or an ack could
    not read (a view without its type, actions that are not a list) is the sender's fault:
    400 and one log line that says where, instead of a 500 and a traceback."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    refused_line("/slack/events", 400, f"{type(error).__name__}: {error}{at}")
    return BoltResponse(status=400, body={"error": messages.malformed_request()})


def socket_mode_handler(app: App, settings: SlackSettings) -> Any:
    """A Socket Mode connection for sites without a public URL (SLACK_APP_TOKEN, xapp-...)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, settings.app_token, web_client=app.client)


def register(flask_app: Flask, ctx: Context, settings: SlackSettings) -> App:
    """Mount POST /slack/events on the web process's Flask app (and Socket Mode if configured)."""
    from flask import jsonify, request
    from slack_bolt.adapter.flask.handler import to_flask_response

    app = build_app(ctx, settings)
    lazy = _DEFERRALS[app]
    verifier = SignatureVerifier(settings.signing_secret)

    def slack_events() -> Any:
        try:
            body = read_body(request, SLACK_MAX_BODY)
        except TooLarge as exc:
            refused_line("/slack/events", 413, str(exc))
            return jsonify({"error": str(exc)}), 413
        problem = body_problem(body.decode(errors="replace"), request.headers.get("Content-Type"))
        if problem:
            # Bolt would raise while parsing, before it checks the signature: check it here.
            if not _signed(verifier, body, request.headers):
                return jsonify({"error": messages.invalid_request()}), 401
            refused_line("/slack/events", 400, problem)
            return jsonify({"error": messages.malformed_request()}), 400
        with lazy.deferring() as pending:
            try:
                bolt_request = FormSafeRequest(body=body.decode(errors="replace"), query=request.query_string.decode(), headers=dict(request.headers))
                response = to_flask_response(app.dispatch(bolt_request))
            except Exception as exc:  # raised by Bolt's own error handling of an odd payload
                unreadable_request(exc)
                return jsonify({"error": messages.malformed_request()}), 400
        if pending and response.status_code < 400:  # a refused request starts no work
            response.call_on_close(lambda: lazy.run(pending))
        return response

    flask_app.add_url_rule("/slack/events", "slack_events", slack_events, methods=["POST"])
    flask_app.extensions["aimodel_slack"] = app
    if settings.app_token:
        socket = socket_mode_handler(app, settings)
        socket.connect()  # background threads; the HTTP route stays available too
        flask_app.extensions["aimodel_slack_socket"] = socket
        log.info("Slack Socket Mode connected")
    return app
