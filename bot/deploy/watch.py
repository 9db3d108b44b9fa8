"""The drift task: compare each environment's deployed files and releases with what was
released (bot.deploy.drift decides), tell each new drift once, remember it for `status`."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bot import metrics, redact
from bot.deploy.drift import DriftLog, LiveRelease, drifted
from bot.messages import releases as msg

if TYPE_CHECKING:
    from bot.app import Context

log = logging.getLogger("aimodel.drift")


def drift_log(ctx: Context) -> DriftLog:
    return DriftLog(ctx.settings.home / "drift")


def find_drift(ctx: Context, envs: list[str] | None = None) -> dict[str, list[str]]:
    """env -> what was changed by hand (only the environments where something was)."""
    found = {}
    for env in ctx.target.environments() if envs is None else envs:
        recorded = {app: LiveRelease(r.app_version, {m: p.version for m, p in r.models.items()}) for app, r in ctx.releases.live(env).items()}
        lines = drifted(ctx.target.actual(env, measure=True), recorded)
        if lines:
            found[env] = lines
    return found


def check_drift(ctx: Context, envs: list[str] | None = None) -> dict[str, list[str]]:
    """Look, remember, and tell what is new; returns what was found."""
    looked = ctx.target.environments() if envs is None else envs
    found = find_drift(ctx, looked)
    book = drift_log(ctx)
    now = time.time()
    for env in sorted(set(looked) | (set(book.all()) if envs is None else set())):
        lines = found.get(env, [])
        if book.record(env, lines, now):
            log.warning("drift in %s: %s", env, "; ".join(lines))
            metrics.drift(env)
            if ctx.notifier.enabled:
                ctx.jobs.notify("drift", redact.redact_value({"pr": None, "env": env, "found": lines, "text": msg.drift_notice(env, lines)}))
    return found
