"""Readiness: the queue's store answers, a worker was seen lately, the forge is there.

`readiness` decides from plain data (pure); `probe` reads it through the Context. The
answer names what is not ready and never carries a path, a URL or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import Context
    from bot.jobs import QueueHealth

@dataclass(frozen=True)
class Probe:
    queue: QueueHealth | None  # None: the queue's store is unreachable or damaged
    forge: bool | None  # None: not checked (GitHub: reachability is GitHub's)
    now: float
    within: float = 30.0  # a worker's heartbeat this recent counts (Settings.worker.ready_within)


def readiness(p: Probe) -> tuple[bool, dict[str, Any]]:
    body: dict[str, Any] = {"queue": "ok" if p.queue is not None else "unreachable"}
    if p.queue is None:
        body["worker"] = "unknown"
    elif p.queue.worker_seen is None:
        body["worker"] = "never seen"
    else:
        age = max(0.0, p.now - p.queue.worker_seen)
        body["worker"] = "ok" if age <= p.within else f"last seen {int(age)} s ago"
        body["worker_seen_seconds_ago"] = round(age, 1)
    body["forge"] = {True: "ok", False: "missing", None: "not checked"}[p.forge]
    ready = body["queue"] == "ok" and body["worker"] == "ok" and p.forge is not False
    return ready, {"ready": ready, **body}


def probe(ctx: Context, now: float) -> Probe:
    from bot.state import StateUnavailable

    try:
        queue: QueueHealth | None = ctx.jobs.queue_health()
    except StateUnavailable:
        queue = None
    forge = None if ctx.settings.github else (ctx.settings.home / "repo.git").is_dir()
    return Probe(queue, forge, now, float(ctx.settings.worker.ready_within))
