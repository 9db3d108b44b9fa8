"""Replay protection for signed Slack requests.

Bolt checks the signature and that the timestamp is within 5 minutes; a captured request
could still be sent again inside that window. This middleware runs right after Bolt's
verification (as `before_authorize`) and refuses, with 401, a request whose signature
(an HMAC over timestamp and body) was already seen within the window. Nothing runs for a
refused request.

An Events API delivery is keyed by its event_id instead: Slack's retries of one event
(X-Slack-Retry-Num, signed anew) run it once and are answered 200.

Memory: a bounded TTL set per process (the embedded default, one web process).
Redis: `SET key 1 NX EX 300` shared by every web process (REDIS_URL).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from slack_bolt.middleware.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot import messages

log = logging.getLogger("aimodel.slack")

WINDOW_SECONDS = 5 * 60
# Slack retries an event nearly at once, after 1 minute and after 5 minutes: its id is kept longer.
EVENT_WINDOW_SECONDS = 60 * 60


class SeenSet(Protocol):
    def first_time(self, key: str, ttl: float | None = None) -> bool:
        """True the first time `key` is offered within the window (`ttl` seconds, or the set's
        own); False for a replay."""
        ...


class MemorySeen:
    """A bounded set of keys, each forgotten after `ttl` seconds (oldest first when full)."""

    def __init__(self, ttl: float = WINDOW_SECONDS, max_entries: int = 200_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str, ttl: float | None = None) -> bool:
        now = self.clock()
        with self._lock:
            entries = self._entries
            while entries:
                oldest, expires = next(iter(entries.items()))
                if expires > now and len(entries) < self.max_entries:
                    break
                del entries[oldest]
            seen_until = entries.get(key)
            if seen_until is not None and seen_until > now:
                return False
            entries[key] = now + (self.ttl if ttl is None else ttl)
            entries.move_to_end(key)
            return True

    def __len__(self) -> int:
        return len(self._entries)


class RedisSeen:
    def __init__(self, url: str, ttl: int = WINDOW_SECONDS, prefix: str = "aimodel:slack:seen:") -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url)
        self.ttl = ttl
        self.prefix = prefix

    def first_time(self, key: str, ttl: float | None = None) -> bool:
        return bool(self.client.set(self.prefix + key, b"1", nx=True, ex=int(self.ttl if ttl is None else ttl)))


def seen_set(redis_url: str = "") -> SeenSet:
    return RedisSeen(redis_url) if redis_url else MemorySeen()


class ReplayGuard(Middleware):
    """401 for a request whose signature was seen before within the window."""

    def __init__(self, seen: SeenSet) -> None:
        self.seen = seen

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        if req.mode == "socket_mode":
            return next()  # no signature: the connection itself is authenticated
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
        if not signature or not timestamp:
            return BoltResponse(status=401, body={"error": messages.invalid_request()})
        # Slack redelivers an event it thinks was missed (X-Slack-Retry-Num), signed anew: its
        # event_id says it is the same one, whichever web process the retry reaches.
        event_id = req.body.get("event_id") if req.body.get("type") == "event_callback" else None
        key = f"event:{event_id}" if isinstance(event_id, str) and event_id else hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
        try:
            fresh = self.seen.first_time(key, EVENT_WINDOW_SECONDS if key.startswith("event:") else None)
        except Exception as exc:  # the shared store is down: refuse rather than risk running twice
            log.error("replay check failed; refusing the request: %s", exc)
            if req.body.get("command"):  # a person typed it: Slack shows a 200's text, not a 503's
                return BoltResponse(status=200, body={"response_type": "ephemeral", "text": messages.store_unreachable()})
            return BoltResponse(status=503, body={"error": messages.try_again()})
        if not fresh and key.startswith("event:"):
            retry = (req.headers.get("x-slack-retry-num") or ["0"])[0]
            log.info("Slack event %s seen before (retry %s); not run again", event_id, retry)
            return BoltResponse(status=200, body="")  # answered: Slack stops redelivering
        if not fresh:
            log.warning("replayed Slack request refused (signature seen within %ss)", WINDOW_SECONDS)
            return BoltResponse(status=401, body={"error": messages.invalid_request()})
        return next()
