"""`history APP|MODEL`: what ran where and when, read from the release records.

Pure functions of plain data decide (which name is meant, which records answer, in what
order); `gather` only reads the ports (the default branch's catalog for the names and
environments people know, ctx.releases for what ran). A destroyed model or application
keeps its history: names come from the records as well as from the catalog.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.deploy.records import ReleaseRecord

if TYPE_CHECKING:
    from bot.app import Context
    from bot.catalog import Catalog

APP = "app"
MODEL = "model"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_UNIT_WORDS = {"sec": "s", "second": "s", "min": "m", "minute": "m", "hour": "h", "day": "d", "week": "w"}
_RELATIVE = re.compile(r"(\d{1,6})\s*([a-z]+?)s?\s+ago")


class BadTime(ValueError):
    """TIME is neither ISO 8601 nor a relative time."""


def parse_time(text: str, now: float) -> float:
    """`--at`: ISO 8601 (`2026-11-30T12:00Z`, `2026-11-30 12:00`, `2026-11-30`; UTC when no zone
    is given), `now`, or a relative time (`2h ago`, `30 minutes ago`, `3d ago`)."""
    value = text.strip().lower()
    if value == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative:
        unit = relative.group(2)
        unit = _UNIT_WORDS.get(unit, unit)
        if unit not in _UNITS:
            raise BadTime(text)
        return now - int(relative.group(1)) * _UNITS[unit]
    try:
        when = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise BadTime(text) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(ts: float) -> str:
    """A record's moment as people read it in every face: UTC, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Known:
    """The names and environments a person may ask about."""

    apps: frozenset[str]
    models: frozenset[str]
    environments: tuple[str, ...]  # promotion order first (the config's), then any other with records

    def kind(self, name: str) -> str:
        """APP, MODEL, or "" (an application and a model may share a name: the application wins,
        and its releases name the model's versions anyway)."""
        if name in self.apps:
            return APP
        if name in self.models:
            return MODEL
        return ""

    def close_to(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, sorted(self.apps | self.models), n=3, cutoff=0.6) if len(name) <= 64 else []


def known_names(app_names: Iterable[str], model_names: Iterable[str], env_order: Sequence[str], records: Iterable[ReleaseRecord]) -> Known:
    apps, models, envs = set(app_names), set(model_names), list(env_order)
    for r in records:
        apps.add(r.app)
        models.update(r.models)
        if r.env not in envs:
            envs.append(r.env)
    return Known(frozenset(apps), frozenset(models), tuple(envs))


def concerns(record: ReleaseRecord, name: str, kind: str) -> bool:
    return record.app == name if kind == APP else name in record.models


def history_of(records: Iterable[ReleaseRecord], name: str, kind: str, environments: Sequence[str]) -> dict[str, list[ReleaseRecord]]:
    """env -> the records of `name` there, newest first (by the moment each finished)."""
    out: dict[str, list[ReleaseRecord]] = {}
    for r in records:
        if concerns(r, name, kind):
            out.setdefault(r.env, []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (r.finished, r.started, r.id), reverse=True)
    return {env: out[env] for env in environments if env in out}


def live_at(live: Mapping[str, Mapping[str, ReleaseRecord]], name: str, kind: str, environments: Sequence[str]) -> dict[str, list[ReleaseRecord]]:
    """From ReleaseLog.at per environment (app -> record live then): the records of `name`."""
    out: dict[str, list[ReleaseRecord]] = {}
    for env in environments:
        rows = sorted((r for r in live.get(env, {}).values() if concerns(r, name, kind)), key=lambda r: r.app)
        if rows:
            out[env] = rows
    return out


# --------------------------------------------------------------------------- reading the ports


@dataclass(frozen=True)
class History:
    name: str
    kind: str
    at: float | None
    environments: Mapping[str, Sequence[ReleaseRecord]] = field(default_factory=dict)  # env -> rows, newest first
    asked_envs: tuple[str, ...] = ()

    def records(self) -> list[ReleaseRecord]:
        """Every row, newest first across environments (what --json prints)."""
        rows = [r for rs in self.environments.values() for r in rs]
        return sorted(rows, key=lambda r: (r.finished, r.started, r.id), reverse=True)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records()]


class UnknownName(LookupError):
    def __init__(self, name: str, suggestions: Sequence[str]) -> None:
        super().__init__(name)
        self.name = name
        self.suggestions = tuple(suggestions)


class UnknownEnvironment(LookupError):
    def __init__(self, env: str, environments: Sequence[str]) -> None:
        super().__init__(env)
        self.env = env
        self.environments = tuple(environments)


def gather(ctx: Context, name: str, env: str = "", at: float | None = None, catalog: Catalog | None = None) -> History:
    """The history `name` asks for; UnknownName / UnknownEnvironment when nothing is called so.
    `catalog`: the default branch's, when the caller has read it already (Slack)."""
    catalog = catalog or ctx.gitops.catalog()
    every = ctx.releases.records()
    known = known_names(catalog.apps, catalog.models, list(catalog.config.environments), every)
    kind = known.kind(name)
    if not kind:
        raise UnknownName(name, known.close_to(name))
    if env and env not in known.environments:
        raise UnknownEnvironment(env, known.environments)
    envs = (env,) if env else known.environments
    if at is None:
        return History(name, kind, None, history_of(every, name, kind, envs), envs)
    return History(name, kind, at, live_at({e: ctx.releases.at(e, at) for e in envs}, name, kind, envs), envs)
