"""SLA expressions: `accuracy>=0.9,latency_p95_ms<=50,size_mb<=200`.

The same SLA can be written as the seed's one-line string (CLI and Slack) or as a
mapping in the manifest (`sla: {accuracy: ">=0.9"}`); both parse to one value.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

# What the validator can measure. "pass_rate" is the seed's name for the share of
# the data set's rows the model gets right; it is the same number as accuracy.
METRICS: dict[str, str] = {
    "accuracy": "share of the data set's rows the model gets right (0..1)",
    "pass_rate": "the seed's name for accuracy (0..1)",
    "latency_p50_ms": "median latency of one row, milliseconds",
    "latency_p95_ms": "95th percentile latency of one row, milliseconds",
    "latency_p99_ms": "99th percentile latency of one row, milliseconds",
    "batch_latency_p95_ms": "95th percentile latency of one batch, milliseconds",
    "throughput_rps": "rows per second in batches",
    "size_mb": "artifact size in megabytes (10^6 bytes)",
}

OPERATORS = (">=", "<=", "==", ">", "<")
_TERM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")
_OP_VALUE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")


class SlaSyntaxError(ValueError):
    """The SLA text cannot be read; the message says which term and why."""


@dataclass(frozen=True)
class SlaTerm:
    metric: str
    op: str
    value: float

    def holds(self, measured: float) -> bool:
        if self.op == ">=":
            return measured >= self.value
        if self.op == "<=":
            return measured <= self.value
        if self.op == ">":
            return measured > self.value
        if self.op == "<":
            return measured < self.value
        return math.isclose(measured, self.value, rel_tol=1e-9, abs_tol=1e-12)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{_fmt(self.value)}"


@dataclass(frozen=True)
class Sla:
    terms: tuple[SlaTerm, ...] = ()

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def as_mapping(self) -> dict[str, str]:
        return {t.metric: f"{t.op}{_fmt(t.value)}" for t in self.terms}


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _check_metric(name: str) -> None:
    if name not in METRICS:
        close = difflib.get_close_matches(name, list(METRICS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        known = ", ".join(METRICS)
        raise SlaSyntaxError(f"unknown SLA metric {name!r}{hint}; known metrics: {known}")


def _number(text: str, term: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SlaSyntaxError(f"SLA term {term!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SlaSyntaxError(f"SLA term {term!r}: the value must be a finite number")
    return value


def _add(terms: list[SlaTerm], term: SlaTerm) -> None:
    if any(t.metric == term.metric and t.op == term.op for t in terms):
        raise SlaSyntaxError(f"SLA names {term.metric}{term.op} twice")
    terms.append(term)


def parse_sla(text: str) -> Sla:
    """Parse `metric OP number[,metric OP number...]`; empty text is an empty SLA."""
    terms: list[SlaTerm] = []
    if not text.strip():
        return Sla()
    for raw in text.split(","):
        if not raw.strip():
            raise SlaSyntaxError(f"SLA {text!r} has an empty term (two commas in a row?)")
        match = _TERM.match(raw)
        if not match:
            raise SlaSyntaxError(
                f"SLA term {raw.strip()!r} is not of the form metric>=number "
                f"(operators: {' '.join(OPERATORS)}); example: accuracy>=0.9,latency_p95_ms<=50"
            )
        name, op, number = match.groups()
        _check_metric(name)
        _add(terms, SlaTerm(name, op, _number(number, raw.strip())))
    return Sla(tuple(terms))


def sla_from_mapping(data: Mapping[str, object]) -> Sla:
    """The manifest form: `{accuracy: ">=0.9", latency_p95_ms: "<=50"}`."""
    if all(isinstance(v, str) for v in data.values()):
        return _sla_from_items(tuple((str(k), str(v)) for k, v in data.items()))
    return _parse_mapping(data)


@functools.lru_cache(maxsize=4096)
def _sla_from_items(items: tuple[tuple[str, str], ...]) -> Sla:
    # Thousands of models share a handful of SLAs; parse each text once.
    return _parse_mapping(dict(items))


def _parse_mapping(data: Mapping[str, object]) -> Sla:
    terms: list[SlaTerm] = []
    for name, spec in data.items():
        _check_metric(str(name))
        if isinstance(spec, bool) or not isinstance(spec, str | int | float):
            raise SlaSyntaxError(f"SLA {name}: expected a string like '>=0.9', got {spec!r}")
        if isinstance(spec, int | float):
            raise SlaSyntaxError(
                f"SLA {name}: a bare number has no direction; write '>={spec}' or '<={spec}'"
            )
        match = _OP_VALUE.match(spec)
        if not match:
            raise SlaSyntaxError(f"SLA {name}: {spec!r} is not of the form '>=number'")
        op, number = match.groups()
        _add(terms, SlaTerm(str(name), op, _number(number, f"{name}{spec}")))
    return Sla(tuple(terms))
