"""The Target port: apply a release, report what runs, remove."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from bot.deploy.plan import EnvPlan, ModelRelease

# Places a model's artifact into a folder and checks it (digest, signature);
# raises DeployRefused with the reason when the bytes must not run.
Installer = Callable[[ModelRelease, Path], None]


class DeployRefused(RuntimeError):
    """These bytes must not run; the message says why."""


@runtime_checkable
class ModelServer(Protocol):
    """Serves the placed model versions (the serving helper implements it). `load` raises
    DeployRefused(reason) when the version does not become ready: the applications that pin
    it keep their previous release."""

    def load(self, env: str, model: str, version: str, folder: Path, fmt: str) -> None: ...

    def unload(self, env: str, model: str, version: str) -> None: ...

    def endpoint(self, env: str, model: str, version: str) -> str | None: ...  # None: not serving


@dataclass(frozen=True)
class ModelState:
    version: str
    state: str  # running | failed | pending
    reason: str = ""
    deployed_at: float = 0.0


@dataclass
class EnvStatus:
    env: str
    commit: str = ""
    models: dict[str, ModelState] = field(default_factory=dict)
    apps: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass
class ApplyResult:
    env: str
    commit: str
    applied: list[str] = field(default_factory=list)  # "model@version" newly placed
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # model -> reason
    apps: list[str] = field(default_factory=list)  # applications whose release switched

    @property
    def ok(self) -> bool:
        return not self.failed


class Target(Protocol):
    kind: str

    def apply(self, plan: EnvPlan, install: Installer) -> ApplyResult: ...

    def status(self, env: str) -> EnvStatus: ...

    def environments(self) -> list[str]: ...
