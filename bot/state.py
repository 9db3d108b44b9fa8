"""The bot's own state (PR records, lock files, the queue, Redis): a damaged file or a store
that cannot be reached is one clear error that names it and says what to do, never a
traceback from deep inside a reader."""

from __future__ import annotations

import json

from bot import messages


class StateUnavailable(RuntimeError):
    """The bot's state cannot be read or written right now; the message is fit for the operator."""


class CorruptState(StateUnavailable):
    """A state file (or key) cannot be read. The message is fit to show the operator."""

    def __init__(self, where: str, problem: str, advice: str) -> None:
        super().__init__(messages.state_damaged(where, problem, advice))
        self.where = where
        self.problem = problem


def problem_of(exc: BaseException) -> str:
    """What is wrong with a file, from the exception its reader raised (no file content)."""
    if isinstance(exc, json.JSONDecodeError):
        return messages.not_json_at(exc.lineno, exc.colno)
    if isinstance(exc, UnicodeDecodeError):
        return messages.not_utf8(exc.start)
    if isinstance(exc, KeyError) and exc.args:
        return messages.record_field_missing(exc.args[0])
    return messages.unexpected_content(type(exc).__name__)
