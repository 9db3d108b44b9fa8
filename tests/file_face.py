"""A face for tests in other processes (AIMODEL_FACES=...,tests.file_face): every notification
the bot delivers is appended to $AIMODEL_HOME/notifications.jsonl, one JSON line each, so a
test can count what a worker it started (and killed) told people."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from bot.faces import Faces

_lock = threading.Lock()


class FileRecorder:
    enabled = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        line = json.dumps({"kind": kind, "pr": data.get("pr"), "text": data.get("text", "")}) + "\n"
        with _lock, self.path.open("a") as handle:
            handle.write(line)


def recorded(home: Path) -> list[dict[str, Any]]:
    path = home / "notifications.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def recorder(ctx: Any) -> FileRecorder | None:
    return FileRecorder(ctx.settings.home / "notifications.jsonl") if __name__ in ctx.settings.faces else None


def install(faces: Faces) -> None:
    faces.notifier(recorder)
