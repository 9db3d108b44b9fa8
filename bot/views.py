"""Read models shared by every face (CLI, Slack, REST): what `list` and `pr list` show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forges.base import PullRequest

if TYPE_CHECKING:
    from bot.app import Context


def list_rows(ctx: Context, app: str = "", env: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    catalog = ctx.gitops.catalog()
    envs = sorted(set(catalog.config.environments) | set(ctx.target.environments()))
    status = {e: ctx.target.status(e) for e in envs}
    rows = []
    for name in sorted(catalog.models):
        m = catalog.models[name]
        if app and m.application != app:
            continue
        per_env: dict[str, Any] = {}
        for e in envs:
            held = status[e].models.get(name)
            if held is not None:
                per_env[e] = {"version": held.version, "state": held.state, **({"reason": held.reason} if held.reason else {})}
            elif e in m.environments:
                per_env[e] = {"version": m.version, "state": "pending"}
        if env and env not in per_env:
            continue
        rows.append({"name": name, "version": m.version, "application": m.application, "dataset": m.dataset, "environments": per_env})
    return rows, envs



def pr_row(pr: PullRequest) -> dict[str, Any]:
    current = [ch for ch in pr.checks.values() if ch.commit in ("", pr.head)]
    states = [ch.state for ch in current]
    summary = "-" if not states else ("failed" if any(s in ("failure", "error") for s in states) else ("pending" if "pending" in states else "green"))
    return {"number": pr.number, "state": pr.state, "author": pr.author, "title": pr.title, "checks_summary": summary}
