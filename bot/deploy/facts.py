"""What the proposing side needs to know about what ran: the ReleaseFacts port.

A deploy is judged against what actually happened (a version enters an environment only
after it ran successfully in the one before) and a rollback restores a release that ran.
The facts come from the release records and the target's state; gitops sees only this port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.deploy.records import ReleaseLog
    from bot.deploy.targets.base import Target


@dataclass(frozen=True)
class Running:
    """A model's actual state in one environment."""

    version: str
    state: str  # running | failed | pending
    reason: str = ""


@dataclass(frozen=True)
class PastRelease:
    """An application's release that went live in an environment."""

    id: str
    app_version: str
    models: Mapping[str, str] = field(default_factory=dict)  # model -> version
    finished: float = 0.0


class ReleaseFacts(Protocol):
    def ran_ok(self, env: str, model: str, version: str) -> bool: ...

    def running(self, env: str, model: str) -> Running | None: ...

    def releases(self, env: str, app: str) -> list[PastRelease]: ...  # went live, oldest first


class NothingRan:
    """No records: nothing has run anywhere (the strictest answer)."""

    def ran_ok(self, env: str, model: str, version: str) -> bool:
        return False

    def running(self, env: str, model: str) -> Running | None:
        return None

    def releases(self, env: str, app: str) -> list[PastRelease]:
        return []


class RecordedFacts:
    """The facts from the release records and the target's state, both read when asked (a
    proposal that needs none of them reads neither)."""

    def __init__(self, records: Callable[[], ReleaseLog], target: Callable[[], Target]) -> None:
        self._records = records
        self._target = target

    def running(self, env: str, model: str) -> Running | None:
        state = self._target().status(env).models.get(model)
        return Running(state.version, state.state, state.reason) if state is not None else None

    def ran_ok(self, env: str, model: str, version: str) -> bool:
        if self._records().ran_ok(env, model, version):
            return True
        now = self.running(env, model)  # running there now is having run (a release older than the records)
        return now is not None and now.version == version and now.state == "running"

    def releases(self, env: str, app: str) -> list[PastRelease]:
        return [
            PastRelease(r.id, r.app_version, {m: pin.version for m, pin in r.models.items()}, r.finished)
            for r in self._records().records(env=env, app=app) if r.ok
        ]
