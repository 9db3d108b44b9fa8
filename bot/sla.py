"""SLA expressions: `accuracy>=0.9,latency_p95_ms<=50,size_mb<=200`.

The same SLA can be written as the seed's one-line string (CLI and Slack) or as a
mapping in the manifest (`sla: {accuracy: ">=0.9"}`); both parse to one value.

A term is `metric OP number`. A metric is a name from METRICS (`f1_macro`, `roc_auc`,
`rmse`, ...) or a per-class metric from PER_CLASS_METRICS with the class in brackets:
`precision[fraud]`, `recall[1]` (the class as the data set's label column writes it;
numbers as `1`, not `1.0`).
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
    "precision_macro": "classifiers: precision averaged over the classes, unweighted (0..1)",
    "recall_macro": "classifiers: recall averaged over the classes, unweighted (0..1)",
    "f1_macro": "classifiers: F1 averaged over the classes, unweighted (0..1)",
    "roc_auc": "classifiers with scores: ROC AUC, of class 1 when binary, else the "
    "macro mean of one-vs-rest (0..1)",
    "mae": "regressors: mean absolute error",
    "rmse": "regressors: root mean squared error",
    "r2": "regressors: coefficient of determination R^2 (1 is perfect)",
}

# Metrics of one class, written `precision[CLASS]`.
PER_CLASS_METRICS: dict[str, str] = {
    "precision": "classifiers: of the rows predicted CLASS, the share that are CLASS (0..1)",
    "recall": "classifiers: of the rows labelled CLASS, the share predicted CLASS (0..1)",
    "f1": "classifiers: harmonic mean of precision[CLASS] and recall[CLASS] (0..1)",
}
_CLASS = r"-?[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME = rf"[A-Za-z_][A-Za-z0-9_]*(?:\[{_CLASS}\])?"
_PER_CLASS = re.compile(rf"([A-Za-z_][A-Za-z0-9_]*)\[({_CLASS})\]")

OPERATORS = (">=", "<=", "==", ">", "<")
_TERM = re.compile(rf"^\s*({_NAME})\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")
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


def known_metrics() -> str:
    return ", ".join([*METRICS, *(f"{name}[CLASS]" for name in PER_CLASS_METRICS)])


def _check_metric(name: str) -> None:
    if name in METRICS:
        return
    per_class = _PER_CLASS.fullmatch(name)
    if per_class and per_class.group(1) in PER_CLASS_METRICS:
        return
    if name in PER_CLASS_METRICS:
        hint = (
            f" (write {name}_macro for the mean over the classes, or {name}[CLASS] for one "
            f"class, e.g. {name}[fraud] or {name}[1])"
        )
    elif per_class:
        base, label = per_class.groups()
        close = difflib.get_close_matches(base, list(PER_CLASS_METRICS), n=1)
        hint = f" (did you mean {close[0]}[{label}]?)" if close else ""
    else:
        close = difflib.get_close_matches(name, list(METRICS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
    raise SlaSyntaxError(f"unknown SLA metric {name!r}{hint}; known metrics: {known_metrics()}")


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
