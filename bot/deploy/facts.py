"""What the proposing side needs to know about what ran: the ReleaseFacts port.

A deploy is judged against what actually happened (a version enters an environment only
after it ran successfully in the one before) and a rollback restores a release that ran.
The facts come from the release records and the target's state; gitops sees only this port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


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
