"""Is serving on, and the supervisor's process for `aimodel serve`."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.serving import servers

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.deploy.targets.base import ModelServer


def installed() -> bool:
    """The serve extra: MLServer in this interpreter (it needs Python < 3.13)."""
    return importlib.util.find_spec("mlserver") is not None


def wanted(settings: Settings) -> bool:
    return settings.serving.enabled and installed()


def model_server(settings: Settings) -> ModelServer | None:
    """The local target's model server: MLServer with the serve extra, else None (files only)."""
    if not wanted(settings):
        return None
    from bot.deploy.targets.mlserver import MLServerModels

    return MLServerModels(settings.home, settings.serving.timeout)


def off_reason(settings: Settings) -> str | None:
    """Why no deployed model answers now, as a person reads it; None when serving is on."""
    from bot.messages import serving as msg

    if not settings.serving.enabled:
        return msg.off_disabled()
    if not installed():
        return msg.off_not_installed()
    if not servers.supervisor_running(settings.home):
        return msg.off_not_running()
    return None


def supervisor_command() -> list[str]:
    """`-P`: the installed product runs, never a `bot/` folder in the current directory (as
    bot.server.worker_command)."""
    return [sys.executable, "-P", "-m", "bot.serving.supervisor"]


@contextlib.contextmanager
def supervised(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """`aimodel serve`: the model servers run while the web process does, and stop with it."""
    if not wanted(settings):
        yield None
        return
    import os

    proc = subprocess.Popen(supervisor_command(), env={**os.environ, "AIMODEL_HOME": str(settings.home)})
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)  # it stops its servers first
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
