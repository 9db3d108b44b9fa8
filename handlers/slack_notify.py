"""The Slack Notifier: the worker's notifications go into each pull request's Slack thread,
and deploys to prod, and drift found in any environment, also go to the channel the
repository config names (`notifications.prod_channel`).

The thread is `meta["slack"] = {"channel", "ts", "user"}` of the pull request, recorded by
the Slack face when it posts the parent message. A notification can race that record (the
checks may finish before the parent message is posted); then the parent is found by its
message metadata in the channel's recent history, and failing that the task is retried
(bot.jobs retries notify tasks).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.config import SlackSettings
from bot.messages import slack as render

if TYPE_CHECKING:
    from bot.app import Context

log = logging.getLogger("aimodel.slack.notify")

PROD_NAMES = ("prod", "production")
# Errors that another try cannot fix: logged and dropped instead of retried.
PERMANENT = ("channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "msg_too_long", "no_text", "invalid_auth", "account_inactive", "token_revoked")


class ThreadNotReady(RuntimeError):
    """The pull request's parent message is not posted yet; the task is retried."""


class SlackNotifier:
    enabled = True

    def __init__(self, settings: SlackSettings, ctx: Context | None = None) -> None:
        from handlers.slack import web_client

        self.settings = settings
        self.client = web_client(settings)
        self.ctx = ctx
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, ctx: Context) -> None:
        """The process's Context: for the repository config (the prod channel)."""
        self.ctx = ctx

    # ------------------------------------------------------------------ Notifier

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        meta = data.get("meta") or {}
        thread = meta.get("slack") or {}
        number = int(data.get("pr") or 0)
        if thread.get("channel"):
            ts = thread.get("ts") or self._find_parent(str(thread["channel"]), number)
            if not ts:
                raise ThreadNotReady(f"the Slack thread of #{number} is not posted yet")
            payload = render.notification(kind, data)
            self._post_once(f"{kind}:{number}:thread", str(thread["channel"]), payload, thread_ts=str(ts),
                            broadcast=kind == "deploy_failed")
        if kind in ("deployed", "deploy_failed"):
            self._prod(data)
        if kind == "drift":
            self._drift(data)

    # ------------------------------------------------------------------ parts

    def _prod(self, data: Mapping[str, Any]) -> None:
        deploy = data.get("deploy") or {}
        results = [r for r in deploy.get("results", []) if str(r.get("env")) in PROD_NAMES]
        touched = [r for r in results if r.get("applied") or r.get("removed") or r.get("failed") or r.get("apps")]
        if not touched:
            return
        channel = self.prod_channel()
        if not channel:
            return
        summary = [s for s in deploy.get("summary", []) if s.split(":", 1)[0] in PROD_NAMES]
        self._post_once(f"prod:{data.get('pr')}:{deploy.get('commit', '')}", channel, render.prod_deploy(data, summary))

    def _drift(self, data: Mapping[str, Any]) -> None:
        """Drift has no pull request: it goes to the team's deploy channel, once per finding."""
        channel = self.prod_channel()
        if not channel or not data.get("found"):
            return
        key = hashlib.sha256(repr((data.get("env"), data.get("found"))).encode()).hexdigest()[:16]
        self._post_once(f"drift:{data.get('env')}:{key}", channel, render.drift(data))

    def prod_channel(self) -> str:
        if self.ctx is None:
            return ""
        try:
            return self.ctx.gitops.catalog().config.prod_channel
        except Exception:
            log.exception("cannot read notifications.prod_channel")
            return ""

    def _find_parent(self, channel: str, number: int) -> str:
        """The pull request's parent message among the channel's recent messages (by metadata)."""
        try:
            history = self.client.conversations_history(channel=channel, limit=100, include_all_metadata=True)
        except SlackApiError as exc:
            log.info("conversations.history %s: %s", channel, exc.response.get("error"))
            return ""
        for message in history.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == render.PR_EVENT and int((meta.get("event_payload") or {}).get("pr", 0)) == number:
                return str(message.get("ts", ""))
        return ""

    def _post_once(self, key: str, channel: str, payload: Mapping[str, Any], *, thread_ts: str = "", broadcast: bool = False) -> None:
        """Post unless this exact message went out already (a retried task re-delivers)."""
        digest = hashlib.sha256(f"{key}\n{channel}\n{thread_ts}\n{payload.get('text', '')}".encode()).hexdigest()
        with self._lock:
            if digest in self._sent:
                return
        kwargs: dict[str, Any] = {"channel": channel, "text": payload["text"], "blocks": payload.get("blocks"), "unfurl_links": False}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            if broadcast:
                kwargs["reply_broadcast"] = True
        try:
            self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in PERMANENT:
                log.warning("Slack refused a notification to %s: %s", channel, error)
                return
            raise
        with self._lock:
            self._sent[digest] = None
            while len(self._sent) > 10_000:
                self._sent.popitem(last=False)
