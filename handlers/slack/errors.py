"""The one answer to a failure in a Slack listener: a refusal is shown as it is; a damaged state
file or an unexpected error is logged for the operator with a reference, and the person sees
only that reference (never an exception's text: it may name paths, hosts or tokens)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from bot import messages
from bot.checks.fetch import ArtifactError
from bot.gitops import Refusal
from bot.messages import slack as render
from bot.state import StateUnavailable

log = logging.getLogger("aimodel.slack")


def reference() -> str:
    """A short id that ties what a person saw to one log record."""
    return secrets.token_hex(4)


def log_unexpected(where: str, error: BaseException) -> str:
    ref = reference()
    log.error("%s failed [reference %s]", where, ref, exc_info=error)
    return ref


def answer_failure(error: Exception, reply: Callable[..., Any], where: str, usage: str = "", **extra: Any) -> None:
    if isinstance(error, Refusal):
        reply(**render.error(error.message, usage), **extra)
    elif isinstance(error, ArtifactError):
        reply(**render.error(messages.refused(str(error)), usage), **extra)
    elif isinstance(error, StateUnavailable):
        log.error("%s: %s", where, error)
        reply(**render.error(messages.server_state_damaged()), **extra)
    else:
        reply(**render.error(messages.unexpected(log_unexpected(where, error))), **extra)
