"""The Notifier port: where the bot tells people what happened (a Slack thread, a channel)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Notifier(Protocol):
    def deliver(self, kind: str, data: dict[str, Any]) -> None: ...

    @property
    def enabled(self) -> bool: ...


class NullNotifier:
    """The embedded default: the CLI prints results itself; nobody else listens."""

    enabled = False

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        return None


class Fanout:
    """Several notifiers as one, told in order (GitHub's summary first, then Slack). An error
    in one stops the rest: the notify task is retried and each notifier skips what it sent."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = tuple(notifiers)

    @property
    def enabled(self) -> bool:
        return any(n.enabled for n in self.notifiers)

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        for notifier in self.notifiers:
            if notifier.enabled:
                notifier.deliver(kind, data)
