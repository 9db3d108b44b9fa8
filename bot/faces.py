"""The faces (Slack, GitHub's webhook endpoint, later REST) register themselves here at
start-up; the core never imports them.

A face module has `install(faces: Faces)`, which adds what it brings: a notifier factory
(called once per Context with the Context, returns None when its face is not configured),
a web-route installer (called by the web process with the Flask app and the Context) and a
state check (the web process's master opens the face's own state once before it forks).
Which modules are faces is configuration (`Settings.faces`, `AIMODEL_FACES`), like a list of
plugins; each is imported once per process, when the first Context is built.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.config import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.notify import Notifier

NotifierFactory = Callable[[Any], "Notifier | None"]  # the Context -> a notifier, or None
RouteInstaller = Callable[[Any, Any, "Settings"], None]  # (Flask app, Context, Settings)
StateCheck = Callable[["Settings"], None]  # raises CorruptState / StateUnavailable before the web process starts


@dataclass
class Faces:
    notifiers: list[NotifierFactory] = field(default_factory=list)
    routes: list[RouteInstaller] = field(default_factory=list)
    state_checks: list[StateCheck] = field(default_factory=list)
    installed: set[str] = field(default_factory=set)

    def notifier(self, factory: NotifierFactory) -> NotifierFactory:
        if factory not in self.notifiers:
            self.notifiers.append(factory)
        return factory

    def route(self, installer: RouteInstaller) -> RouteInstaller:
        if installer not in self.routes:
            self.routes.append(installer)
        return installer

    def state_check(self, check: StateCheck) -> StateCheck:
        if check not in self.state_checks:
            self.state_checks.append(check)
        return check


@runtime_checkable
class FaceModule(Protocol):
    def install(self, faces: Faces) -> None: ...


FACES = Faces()
_lock = threading.Lock()


class FaceError(ConfigError):
    """A configured face module cannot be loaded; the message names it."""


def load(settings: Settings, faces: Faces = FACES) -> Faces:
    """Import every face module the settings name (once per process) and let it register."""
    with _lock:
        for name in settings.faces:
            if name in faces.installed:
                continue
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise FaceError(f"AIMODEL_FACES names {name}, which cannot be imported: {exc}") from None
            if not isinstance(module, FaceModule):
                raise FaceError(f"AIMODEL_FACES names {name}, which has no install(faces) function")
            module.install(faces)
            faces.installed.add(name)
    return faces
