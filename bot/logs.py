"""Structured logs of the long-running processes (`serve`, `worker`).

One line per event at INFO on stderr: JSON when stderr is not a terminal (a container, a
log collector), plain text on a terminal. The request id, pull request, delivery id and
commit of the work at hand ride along from context variables (`bound`). Messages pass
the redacting record factory (bot.redact) first; the whole line is redacted once more, so
a secret in a bound field never reaches the output either.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from bot.redact import redact

_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("aimodel_log_fields", default={})  # noqa: B039  # never mutated: replaced


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Fields (request_id, pr, delivery, commit) carried by every line logged inside."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """As `bound`, for a caller that resets the token itself (a web request's hooks)."""
    return _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


def reset(token: contextvars.Token[dict[str, Any]]) -> None:
    _fields.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields.get(),
        }
        if record.exc_info:
            text = self.formatException(record.exc_info)
            line["error"] = text.splitlines()[-1]
            if record.levelno >= logging.ERROR:  # an unexpected failure: the operator needs where it broke
                line["stack"] = text
        return redact(json.dumps(line, default=str, sort_keys=False))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields.get().items())
        text = f"aimodel {record.levelname.lower()}: {record.getMessage()}" + (f" [{extra}]" if extra else "")
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def setup(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """The `aimodel` loggers of a server or worker process write structured lines to `stream`."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(PlainFormatter() if out.isatty() else JsonFormatter())
    root = logging.getLogger("aimodel")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


@contextlib.contextmanager
def to_file(where: str) -> Iterator[None]:
    """Lines of the `aimodel` loggers at INFO also go to `where` (a file, appended, JSON; or "-":
    stderr) while inside: a CLI command's own line. Handlers already there keep their level."""
    handler: logging.Handler
    if where == "-":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainFormatter() if sys.stderr.isatty() else JsonFormatter())
    else:
        handler = logging.FileHandler(where, encoding="utf-8")
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger("aimodel")
    level = root.level
    for old in root.handlers:
        if old.level == logging.NOTSET:
            old.setLevel(level)  # the terminal's warnings stay warnings
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
