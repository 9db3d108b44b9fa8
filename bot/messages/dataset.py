"""What validate says about a data set, without ever quoting its content.

A data set URI can point at any file the worker can read (an environment dump, a key), so a
message about a data set names rows, column numbers and counts, never cell text. Column and
class names appear only when they look like names (a short identifier); anything else could be
a secret that happens to sit where a header or a label is expected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "MAX_NAMES_SHOWN",
    "class_metric_unknown",
    "column",
    "columns",
    "is_safe_name",
    "quality_context",
]

MAX_NAME_LENGTH = 64
MAX_NAMES_SHOWN = 50
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_. -]*")
_SAFE_CLASS = re.compile(r"-?[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Credentials that look like identifiers: well-known token prefixes (Slack, GitHub, GitLab,
# AWS, Google, OpenAI-style keys), or a long run that mixes letters and digits.
_TOKEN_PREFIX = re.compile(r"(?i)(?:^|[^a-z0-9])(?:xox[a-z]-|gh[pousr]_|github_pat_|glpat-|sk-|akia|asia|aiza)")
_LONG_RUN = re.compile(r"[A-Za-z0-9]{20,}")


def _looks_like_a_secret(text: str) -> bool:
    if _TOKEN_PREFIX.search(text):
        return True
    return any(
        any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        for run in _LONG_RUN.findall(text)
    )


def is_safe_name(text: str) -> bool:
    """A column name that may be shown: a short identifier (letters, digits, _ . - space)
    that does not look like a credential."""
    return (
        len(text) <= MAX_NAME_LENGTH
        and _SAFE_NAME.fullmatch(text) is not None
        and not _looks_like_a_secret(text)
    )


def is_safe_class(text: str) -> bool:
    """A class label that may be shown and named in an SLA (precision[fraud], recall[1])."""
    return (
        len(text) <= MAX_NAME_LENGTH
        and _SAFE_CLASS.fullmatch(text) is not None
        and not _looks_like_a_secret(text)
    )


def column(name: str, index: int) -> str:
    """'column 'f1'' when the name is safe to show, else 'column 3' (1-based)."""
    return f"column {name!r}" if is_safe_name(name) else f"column {index + 1}"


def columns(names: Sequence[str]) -> str:
    """'5 columns: a, b, c, d, e' or '3 columns (names not shown: not all are short names)'."""
    count = f"{len(names)} column{'s' if len(names) != 1 else ''}"
    if len(names) > MAX_NAMES_SHOWN:
        return f"{count} (too many to list)"
    if not all(is_safe_name(n) for n in names):
        return f"{count} (names not shown: not all of them are short names)"
    return f"{count}: {', '.join(names)}"


def class_metric_unknown(label: str) -> str:
    return f"no class {label!r} in the data set's labels or the model's predictions"


def quality_context(rows: int, latency_rows: int, batch_rows: int, batch_size: int) -> str:
    """What each figure was measured on, for the report's footer."""
    plural = "s" if rows != 1 else ""
    parts = [f"quality metrics on all {rows} row{plural} of the data set"]
    if latency_rows:
        parts.append(f"per-row latency on a sample of {latency_rows} rows")
    if batch_rows:
        parts.append(f"batch latency and throughput on {batch_rows} rows in batches of {batch_size}")
    return "; ".join(parts)
