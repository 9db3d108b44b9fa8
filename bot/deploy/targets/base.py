"""The Target port: apply a release, report what runs, remove."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.deploy.plan import EnvPlan, ModelRelease

if TYPE_CHECKING:
    from bot.deploy.drift import Actual

# Places a model's artifact into a folder and checks it (digest, signature);
# raises DeployRefused with the reason when the bytes must not run.
Installer = Callable[[ModelRelease, Path], None]


# The name a model file gets in its deployed folder: the layout serving engines read
# (Triton's model.onnx, model.pt, model.savedmodel ...), whatever the source was called.
FILE_NAMES = {
    "onnx": "model.onnx", "pytorch": "model.pt", "safetensors": "model.safetensors", "pickle": "model.pkl",
    "joblib": "model.joblib", "numpy": "model.npy", "keras": "model.keras", "gguf": "model.gguf",
}


def deployed_name(release: ModelRelease) -> str:
    """`model.<ext>` by format; another format keeps its source's extension (model.bin); a
    folder model is the folder `model/` holding its files under their own names."""
    if release.layout == "folder":
        return "model"
    if release.format in FILE_NAMES:
        return FILE_NAMES[release.format]
    suffix = PurePosixPath((release.source or release.uri).rsplit("/", 1)[-1]).suffix.lower()
    return "model" + suffix if suffix[1:].isalnum() and len(suffix) <= 12 else "model"


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
class Provenance:
    """Who a release is for: the merged pull request, its author and approvers (a sync: the
    person who asked, no pull request)."""

    pr: int | None = None
    author: str = ""
    approvers: tuple[str, ...] = ()


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
    kept: dict[str, str] = field(default_factory=dict)  # app -> why its previous release stays live
    repaired: list[str] = field(default_factory=list)  # "model@version" placed again (drift)
    records: list[str] = field(default_factory=list)  # release record ids written

    @property
    def ok(self) -> bool:
        return not self.failed and not self.kept


@runtime_checkable
class RemembersApplies(Protocol):
    """A target that keeps the last apply's outcome per environment (what `status` shows)."""

    def last_apply(self, env: str) -> dict[str, Any]: ...  # {"at", "commit", "failed": [reasons]}


class Target(Protocol):
    kind: str

    def apply(self, plan: EnvPlan, install: Installer, who: Provenance | None = None, *, repair: bool = False) -> ApplyResult: ...

    def actual(self, env: str, *, measure: bool = False) -> Actual: ...

    def status(self, env: str) -> EnvStatus: ...

    def environments(self) -> list[str]: ...
