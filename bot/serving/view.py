"""What `list` and `status` show about serving: per environment, whether each deployed model
answers and where. One repository-index call per environment, whatever the number of models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.serving import client, layout, servers

INDEX_TIMEOUT = 2.0


@dataclass(frozen=True)
class EnvServing:
    env: str
    url: str | None  # the server's base URL; None: no server runs for this environment
    ready: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (model, version) that answer


def read(home: Path, envs: Iterable[str]) -> dict[str, EnvServing]:
    found = {}
    for env in envs:
        record = servers.read(home, env)
        if record is None:
            found[env] = EnvServing(env, None)
            continue
        items = client.index(record.url, INDEX_TIMEOUT) or []
        ready = frozenset(
            (str(i.get("name")), str(i.get("version")))
            for i in items
            if str(i.get("state", "")).upper() == "READY"
        )
        found[env] = EnvServing(env, record.url, ready)
    return found


def answer(serving: EnvServing, home: Path, model: str, version: str) -> dict[str, Any]:
    """{"answers": bool, "endpoint": URL or None} for one deployed version."""
    served = layout.has_settings(layout.repository(home, serving.env), model, version)
    answers = serving.url is not None and served and (model, version) in serving.ready
    endpoint = client.infer_url(serving.url, model) if serving.url is not None and served else None
    return {"answers": answers, "endpoint": endpoint}


def annotate(rows: list[dict[str, Any]], home: Path, envs: Iterable[str]) -> list[dict[str, Any]]:
    """Add answers/endpoint to each deployed (model, environment) of `list` rows; returns the
    serving table's rows (env, name, version, answers, endpoint)."""
    serving = read(home, envs)
    table = []
    for row in rows:
        per_env: Mapping[str, dict[str, Any]] = row["environments"]
        for env, state in sorted(per_env.items()):
            if env not in serving or state.get("state") == "pending":
                continue
            found = answer(serving[env], home, row["name"], state["version"])
            state.update(found)
            table.append({"env": env, "name": row["name"], "version": state["version"], **found})
    return table


def servers_summary(home: Path, envs: Iterable[str]) -> list[dict[str, Any]]:
    """`status`: each environment's server and how many model versions answer there."""
    return [
        {"env": s.env, "url": s.url, "answering": len(s.ready)}
        for s in read(home, envs).values()
        if s.url is not None or layout.served_versions(layout.repository(home, s.env))
    ]
