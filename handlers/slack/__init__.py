"""The Slack face: a slack-bolt App (sync, lazy listeners) served by the web process at
POST /slack/events through Bolt's Flask adapter, or over Socket Mode when SLACK_APP_TOKEN
is set.

Requests are verified by Bolt (signature, 5-minute timestamp) and then by the replay guard
(a signature seen before within 5 minutes gets 401). Every listener acknowledges at once
with a short ephemeral answer; the git work runs in a lazy listener, and results go back
through response_url and chat.postMessage.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.config import SlackSettings
from handlers.slack.replay import MemorySeen, RedisSeen, ReplayGuard, SeenSet, seen_set

if TYPE_CHECKING:
    from flask import Flask

    from bot.app import Context

__all__ = ["MemorySeen", "RedisSeen", "ReplayGuard", "build_app", "register", "socket_mode_handler", "web_client"]

log = logging.getLogger("aimodel.slack")

LAZY_WORKERS = 8


def web_client(settings: SlackSettings) -> WebClient:
    """The Web API client: SLACK_API_URL when set (a stand-in), rate limits retried."""
    kwargs: dict[str, Any] = {}
    if settings.api_url:
        kwargs["base_url"] = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return WebClient(
        token=settings.bot_token,
        timeout=15,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), RateLimitErrorRetryHandler(max_retry_count=2)],
        **kwargs,
    )


def build_app(ctx: Context, settings: SlackSettings, *, seen: SeenSet | None = None) -> App:
    """The Bolt app with every listener. `auth.test` runs once here (token verification)."""
    from handlers.slack.listeners import SlackFace

    app = App(
        name="aimodel",
        client=web_client(settings),
        signing_secret=settings.signing_secret,
        # The ack function runs in the request thread and the response goes out at once;
        # the lazy listeners carry the work on the executor.
        process_before_response=True,
        before_authorize=ReplayGuard(seen if seen is not None else seen_set(ctx.settings.redis_url)),
        listener_executor=ThreadPoolExecutor(max_workers=LAZY_WORKERS, thread_name_prefix="slack-lazy"),
    )
    SlackFace(ctx).attach(app)
    return app


def socket_mode_handler(app: App, settings: SlackSettings) -> Any:
    """A Socket Mode connection for sites without a public URL (SLACK_APP_TOKEN, xapp-...)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, settings.app_token, web_client=app.client)


def register(flask_app: Flask, ctx: Context, settings: SlackSettings) -> App:
    """Mount POST /slack/events on the web process's Flask app (and Socket Mode if configured)."""
    from flask import request
    from slack_bolt.adapter.flask import SlackRequestHandler

    app = build_app(ctx, settings)
    handler = SlackRequestHandler(app)

    def slack_events() -> Any:
        return handler.handle(request)

    flask_app.add_url_rule("/slack/events", "slack_events", slack_events, methods=["POST"])
    flask_app.extensions["aimodel_slack"] = app
    if settings.app_token:
        socket = socket_mode_handler(app, settings)
        socket.connect()  # background threads; the HTTP route stays available too
        flask_app.extensions["aimodel_slack_socket"] = socket
        log.info("Slack Socket Mode connected")
    return app
