"""A face for tests, loaded like any other (AIMODEL_FACES=...,tests.recording_face): it
records every notification the bot delivers, as a Slack or GitHub face would receive it."""

from __future__ import annotations

import threading
from typing import Any

from bot.faces import Faces

RECORDED: list[tuple[str, dict[str, Any]]] = []
_lock = threading.Lock()


class Recorder:
    enabled = True

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        with _lock:
            RECORDED.append((kind, data))


def recorder(ctx: Any) -> Recorder | None:
    return Recorder() if __name__ in ctx.settings.faces else None


def install(faces: Faces) -> None:
    faces.notifier(recorder)
