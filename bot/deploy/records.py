"""Release records: what each apply of an application to an environment did, kept for ever.

One JSON file per record under `<home>/releases/<env>/<id>.json`, written once (temporary
file, fsync, then a hard link that fails when the id is taken: never a half record, never
one overwritten). The id is `<env>-<app>-<n>`, n counting per environment and application
from 1, so a person can type it (`rollback --to prod-payments-3`). History, rollback and
the retirement of old model versions read them; nothing else keeps what ran when.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OK = "ok"
FAILED = "failed"


@dataclass(frozen=True)
class ModelPin:
    version: str
    sha256: str


@dataclass(frozen=True)
class ReleaseRecord:
    id: str  # "<env>-<app>-<n>"
    env: str
    app: str
    app_version: str
    models: Mapping[str, ModelPin]
    commit: str
    pr: int | None
    author: str
    approvers: tuple[str, ...]
    started: float
    finished: float
    result: str  # "ok" | "failed"
    reason: str = ""
    number: int = field(default=0, compare=False)  # the n of the id; 0: read from the id

    @property
    def ok(self) -> bool:
        return self.result == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "env": self.env, "app": self.app, "app_version": self.app_version,
            "models": {name: {"version": pin.version, "sha256": pin.sha256} for name, pin in sorted(self.models.items())},
            "commit": self.commit, "pr": self.pr, "author": self.author, "approvers": list(self.approvers),
            "started": self.started, "finished": self.finished, "result": self.result, "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReleaseRecord:
        models = data.get("models") or {}
        pr = data.get("pr")
        return cls(
            id=str(data["id"]), env=str(data["env"]), app=str(data["app"]), app_version=str(data.get("app_version", "")),
            models={str(n): ModelPin(str(p.get("version", "")), str(p.get("sha256", ""))) for n, p in models.items() if isinstance(p, Mapping)},
            commit=str(data.get("commit", "")), pr=int(pr) if isinstance(pr, int) else None, author=str(data.get("author", "")),
            approvers=tuple(str(a) for a in data.get("approvers") or ()),
            started=float(data.get("started", 0.0)), finished=float(data.get("finished", 0.0)),
            result=str(data.get("result", FAILED)), reason=str(data.get("reason", "")),
            number=_number(str(data["id"]), str(data["env"]), str(data["app"])) or 0,
        )


def _number(record_id: str, env: str, app: str) -> int | None:
    """n of `<env>-<app>-<n>`; None when the id is not one of this environment's and app's."""
    prefix = f"{env}-{app}-"
    rest = record_id[len(prefix):] if record_id.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


class ReleaseLog:
    """ctx.releases: the records of every environment under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _env(self, env: str) -> Path:
        return self.root / env

    def next_id(self, env: str, app: str) -> str:
        """The id the next record of `app` in `env` gets. The caller holds the environment's
        apply lock; append() refuses a taken id all the same."""
        folder = self._env(env)
        taken = [n for p in folder.glob(f"{env}-{app}-*.json") if (n := _number(p.stem, env, app)) is not None] if folder.is_dir() else []
        return f"{env}-{app}-{max(taken, default=0) + 1}"

    def append(self, record: ReleaseRecord) -> None:
        """Write the record once; FileExistsError when its id is taken."""
        folder = self._env(record.env)
        folder.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n").encode()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".record.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, folder / f"{record.id}.json")  # exclusive: never replaces a record
        finally:
            os.unlink(tmp)

    def _read(self, path: Path) -> ReleaseRecord | None:
        try:
            data = json.loads(path.read_bytes())
            return ReleaseRecord.from_json(data) if isinstance(data, Mapping) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a damaged record is not history; the others still are

    def records(self, env: str | None = None, app: str | None = None, model: str | None = None) -> list[ReleaseRecord]:
        """Oldest first."""
        if env is not None:
            folders = [self._env(env)]
        elif self.root.is_dir():
            folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        else:
            folders = []
        out: list[ReleaseRecord] = []
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                record = self._read(path)
                if record is None or (app is not None and record.app != app) or (model is not None and model not in record.models):
                    continue
                out.append(record)
        out.sort(key=lambda r: (r.started, r.env, r.app, r.number))
        return out

    def live(self, env: str) -> dict[str, ReleaseRecord]:
        """app -> its last successful release in `env`."""
        return {r.app: r for r in self.records(env) if r.ok}

    def at(self, env: str, when: float) -> dict[str, ReleaseRecord]:
        """app -> the successful release that was live in `env` at `when` (finished by then)."""
        return {r.app: r for r in sorted(self.records(env), key=lambda r: r.finished) if r.ok and r.finished <= when}

    def ran_ok(self, env: str, model: str, version: str) -> bool:
        return any(r.ok and (pin := r.models.get(model)) is not None and pin.version == version for r in self.records(env))

    def get(self, record_id: str) -> ReleaseRecord | None:
        if not self.root.is_dir() or "/" in record_id or record_id.startswith("."):
            return None
        for folder in sorted(self.root.iterdir()):
            path = folder / f"{record_id}.json"
            if folder.is_dir() and path.is_file():
                return self._read(path)
        return None
