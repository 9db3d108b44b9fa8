"""The Notifier port: where the bot tells people what happened (a Slack thread, a channel)."""

from __future__ import annotations

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
