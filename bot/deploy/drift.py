"""Desired against actual, from plain data: what differs in one environment, one sentence each.

`differences(plan, actual)` is pure. The target says what it holds (`Target.actual`): the
live release of each application, and per placed model version the digests its
metadata.json recorded and, when measured, the sha256 of every file on disk now (the
periodic drift task and `aimodel sync` measure; a deploy and the sweep do not, they only
read the small files). Digests, never timestamps: a file rewritten with the same bytes is
not drift, one byte changed is.

The drift task remembers what it last reported per environment (`DriftLog`), so one drift
is told once, and a repaired environment clears its entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.deploy.plan import EnvPlan
from bot.fsutil import read_json, write_json
from bot.messages import releases as msg


@dataclass(frozen=True)
class Placed:
    """One model version's folder as the target holds it."""

    sha256: str  # the model's digest metadata.json records ("" when metadata.json is missing or unreadable)
    files: Mapping[str, str]  # relative path -> sha256 metadata.json says was placed
    measured: Mapping[str, str] | None = None  # relative path -> sha256 on disk now; None: not measured


@dataclass(frozen=True)
class LiveRelease:
    version: str
    models: Mapping[str, str]  # model -> version


@dataclass(frozen=True)
class Actual:
    env: str
    apps: Mapping[str, LiveRelease] = field(default_factory=dict)
    placed: Mapping[tuple[str, str], Placed] = field(default_factory=dict)  # (model, version) -> folder


def differences(plan: EnvPlan, actual: Actual) -> list[str]:
    """What must change for `actual` to be `plan`; empty when they agree."""
    out: list[str] = []
    env = plan.env
    for name, app in sorted(plan.apps.items()):
        live = actual.apps.get(name)
        wanted = dict(app.models)
        if live is None:
            out.append(msg.app_not_released(env, name, app.version, wanted))
        elif live.version != app.version or dict(live.models) != wanted:
            out.append(msg.app_runs_other(env, name, live.version, dict(live.models), app.version, wanted))
    for name in sorted(set(actual.apps) - set(plan.apps)):
        out.append(msg.app_still_released(env, name))
    for name, model in sorted(plan.models.items()):
        if not any(m == name and v == model.version for app in plan.apps.values() for m, v in app.models):
            continue  # no application pins it here: nothing runs it
        placed = actual.placed.get((name, model.version))
        if placed is None:
            out.append(msg.version_missing(env, name, model.version))
            continue
        if placed.sha256 != model.sha256:
            out.append(msg.version_other_bytes(env, name, model.version))
            continue
        out.extend(_file_drift(env, name, model.version, placed))
    return out


def drifted(actual: Actual, recorded: Mapping[str, LiveRelease]) -> list[str]:
    """What was changed by hand since the last applies: a live release that is not what its
    last successful release record says (`recorded`: app -> that release), and the files of
    the model versions the live releases run. A failed apply is not drift: the previous
    release is still what it was."""
    out: list[str] = []
    env = actual.env
    for name, live in sorted(actual.apps.items()):
        was = recorded.get(name)
        if was is not None and (was.version != live.version or dict(was.models) != dict(live.models)):
            out.append(msg.release_changed(env, name, live.version, dict(live.models), was.version, dict(was.models)))
    for name in sorted(set(recorded) - set(actual.apps)):
        out.append(msg.release_removed(env, name))
    running = sorted({(m, v) for live in actual.apps.values() for m, v in live.models.items()})
    for model, version in running:
        placed = actual.placed.get((model, version))
        if placed is None:
            out.append(msg.version_removed(env, model, version))
        elif not placed.sha256:
            out.append(msg.metadata_removed(env, model, version))
        else:
            out.extend(_file_drift(env, model, version, placed))
    return out


def _file_drift(env: str, model: str, version: str, placed: Placed) -> list[str]:
    if placed.measured is None:
        return []
    out = []
    for path, digest in sorted(placed.files.items()):
        now = placed.measured.get(path)
        if now is None:
            out.append(msg.file_removed(env, model, version, path))
        elif now != digest:
            out.append(msg.file_changed(env, model, version, path))
    out.extend(msg.file_added(env, model, version, path) for path in sorted(set(placed.measured) - set(placed.files)))
    return out


class DriftLog:
    """What the drift task last found and reported, per environment: `<home>/drift/<env>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, env: str) -> Path:
        return self.root / f"{env}.json"

    def get(self, env: str) -> dict[str, Any]:
        """{"found": [sentences], "since": when first seen, "checked": when last looked}; {} when none."""
        try:
            data = read_json(self._path(env))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, env: str, found: list[str], now: float) -> bool:
        """Remember this environment's drift (none: an empty list, and when it was looked at);
        True when it is new, not what was last reported."""
        before = self.get(env)
        new = bool(found) and before.get("found") != found
        since = before.get("since", now) if found and not new else now
        write_json(self._path(env), {"found": found, "since": since, "checked": now})
        return new

    def all(self) -> dict[str, dict[str, Any]]:
        if not self.root.is_dir():
            return {}
        return {p.stem: data for p in sorted(self.root.glob("*.json")) if (data := self.get(p.stem)).get("found")}
