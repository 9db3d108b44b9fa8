"""The bot's own state files (PR records, lock files, the queue): a damaged one is one clear
error that names it and says what to do, never a traceback from deep inside a reader."""

from __future__ import annotations

import json

from bot import messages


class CorruptState(RuntimeError):
    """A state file (or key) cannot be read. The message is fit to show the operator."""

    def __init__(self, where: str, problem: str, advice: str) -> None:
        super().__init__(messages.state_damaged(where, problem, advice))
        self.where = where
        self.problem = problem


def problem_of(exc: BaseException) -> str:
    """What is wrong with a file, from the exception its reader raised (no file content)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r} is missing" if exc.args else "a field is missing"
    return f"unexpected content ({type(exc).__name__})"
