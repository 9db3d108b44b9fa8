"""The SLA verdict: each term's target against what was measured, pass or fail per line.

`evaluate_sla` compares an `Sla` with a `Measurement`. A metric comes from the measurement
("measured"); when the model could not be run, a value the manifest declares is used only
where the repository's policy for the environment accepts declared values ("declared");
otherwise the line fails ("missing"). Each line says how many rows of the data set its figure
used (quality metrics: all of them; latency: a sample). The report renders as plain text (CLI), a GitHub
Markdown table (pull request checks) and a dict (JSON, Slack).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bot.checks.measure import Measurement
from bot.checks.quality import class_key
from bot.messages import dataset as say
from bot.sla import PER_CLASS_METRICS, Sla, SlaTerm

__all__ = ["SlaLine", "SlaReport", "evaluate_sla", "format_value"]

# accuracy and pass_rate are one number under two names.
_ALIASES: dict[str, str] = {"accuracy": "pass_rate", "pass_rate": "accuracy"}

# What a failed term says, e.g. accuracy 0.82 < 0.9.
_NEGATION: dict[str, str] = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!="}

_EMPTY: Mapping[str, float] = MappingProxyType({})


def format_value(value: float | None) -> str:
    """A number for people: 0.9, 12.346, 98765; '-' for none."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    if magnitude >= 1:
        text = f"{value:.3f}"
    else:
        text = f"{value:.4g}"
        if "e" in text:
            return text
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class SlaLine:
    """One SLA term: its target (e.g. '>=0.9'), the value it was judged on, and the verdict.

    source: "measured" (run on the data set), "declared" (the manifest's value, accepted by
    policy) or "missing" (no value the verdict could use). note: why, when it is not plain.
    rows: how many rows of the data set the measured figure used (None: not row-based).
    """

    metric: str
    target: str
    measured: float | None
    source: str
    passed: bool
    note: str = ""
    rows: int | None = None

    @property
    def term(self) -> str:
        return f"{self.metric}{self.target}"

    def failure(self) -> str:
        """What went wrong, in a few words (empty when the line passed)."""
        if self.passed:
            return ""
        if self.measured is None:
            return f"{self.metric} {self.note or 'not measured'}"
        op, number = _split_target(self.target)
        said = f"{self.metric} {format_value(self.measured)} {_NEGATION.get(op, '!')} {number}"
        return f"{said} (declared)" if self.source == "declared" else said

    def to_dict(self) -> dict[str, Any]:
        op, number = _split_target(self.target)
        return {
            "metric": self.metric,
            "target": self.target,
            "op": op,
            "value": float(number),
            "measured": _json_number(self.measured),
            "source": self.source,
            "passed": self.passed,
            "note": self.note,
            "rows": self.rows,
        }


def _split_target(target: str) -> tuple[str, str]:
    for op in (">=", "<=", "==", ">", "<"):
        if target.startswith(op):
            return op, target[len(op) :]
    return "", target


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class SlaReport:
    lines: tuple[SlaLine, ...]
    measurement: Measurement

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def failed_lines(self) -> tuple[SlaLine, ...]:
        return tuple(line for line in self.lines if not line.passed)

    def summary(self) -> str:
        """One line: 'SLA met: 3 of 3 terms' or 'SLA failed: accuracy 0.82 < 0.9'."""
        total = len(self.lines)
        if total == 0:
            return "SLA empty: no terms to check"
        failed = self.failed_lines
        if not failed:
            declared = sum(1 for line in self.lines if line.source == "declared")
            tail = f" ({declared} declared, not measured)" if declared else ""
            return f"SLA met: {total} of {total} term{'s' if total != 1 else ''}{tail}"
        reasons = "; ".join(line.failure() for line in failed)
        if total > 1:
            reasons += f" ({len(failed)} of {total} terms failed)"
        return f"SLA failed: {reasons}"

    def _rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        return [
            (
                line.metric,
                line.target,
                format_value(line.measured),
                "-" if line.rows is None else str(line.rows),
                line.source,
                "pass" if line.passed else "FAIL",
                line.note,
            )
            for line in self.lines
        ]

    def _context(self) -> str:
        m = self.measurement
        if m.measured:
            latency = m.rows_used.get("latency_p50_ms", 0)
            batches = m.rows_used.get("throughput_rps", 0)
            return say.quality_context(m.rows, latency, batches, m.batch_size)
        return m.reason or "not measured"

    def to_text(self) -> str:
        """A plain-text table for the terminal, then the one-line summary."""
        header = ("metric", "target", "measured", "rows", "source", "result", "note")
        rows = self._rows()
        keep = 7 if any(r[6] for r in rows) else 6
        table = [header[:keep], *(r[:keep] for r in rows)]
        widths = [max(len(r[i]) for r in table) for i in range(keep)]
        out = []
        for r in table:
            cells = [r[i].ljust(widths[i]) if i < keep - 1 else r[i] for i in range(keep)]
            out.append("  ".join(cells).rstrip())
        out.append("")
        out.append(self.summary())
        out.append(self._context())
        return "\n".join(out) + "\n"

    def to_markdown(self) -> str:
        """A GitHub Markdown table, with the summary as its heading line."""
        mark = ":white_check_mark:" if self.passed else ":x:"
        out = [f"{mark} **{_md(self.summary())}**", "", f"_{_md(self._context())}_", ""]
        if self.lines:
            out.append("| metric | target | measured | rows | source | result | note |")
            out.append("|---|---|---:|---:|---|---|---|")
            for metric, target, value, rows, source, result, note in self._rows():
                shown = "pass" if result == "pass" else "**FAIL**"
                out.append(
                    f"| `{metric}` | `{_md(target)}` | {_md(value)} | {rows} | {source} | {shown} | {_md(note)} |"
                )
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (`--json`) and Slack blocks; no NaN or infinity."""
        m = self.measurement
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "lines": [line.to_dict() for line in self.lines],
            "measurement": {
                "measured": m.measured,
                "reason": m.reason,
                "format": m.model_format or None,
                "rows": m.rows,
                "task": m.task or None,
                "rows_used": dict(sorted(m.rows_used.items())),
                "metrics": {k: _json_number(v) for k, v in sorted(m.metrics.items())},
            },
        }


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _spellings(metric: str) -> list[str]:
    """The metric, its alias, and a per-class metric with its class number written as the
    measurement writes it (recall[1.0] -> recall[1])."""
    names = [metric]
    alias = _ALIASES.get(metric)
    if alias:
        names.append(alias)
    base, _, label = metric.partition("[")
    if label:
        try:
            number = float(label[:-1])
        except ValueError:
            return names
        if math.isfinite(number):
            names.append(f"{base}[{class_key(number)}]")
    return names


def _lookup(values: Mapping[str, float], metric: str) -> float | None:
    for name in _spellings(metric):
        if name is not None and name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            return float(value)
    return None


def _rows_used(measurement: Measurement, metric: str) -> int | None:
    for name in _spellings(metric):
        if name in measurement.rows_used:
            return measurement.rows_used[name]
    base = metric.partition("[")[0]
    if base in PER_CLASS_METRICS and measurement.measured:
        return measurement.rows
    return None


def _why_missing(measurement: Measurement, metric: str) -> str:
    """Why a metric is not in a measurement that ran the model."""
    if metric in measurement.notes:
        return measurement.notes[metric]
    base, _, label = metric.partition("[")
    if base in PER_CLASS_METRICS:
        if measurement.task == "regressor":
            return "not measured: the model is a regressor (one number per row)"
        return "not measured: " + say.class_metric_unknown(label[:-1])
    return ""


def _target(term: SlaTerm) -> str:
    return str(term)[len(term.metric) :]


def _judge(term: SlaTerm, value: float) -> bool:
    return math.isfinite(value) and term.holds(value)


def evaluate_sla(
    sla: Sla,
    measurement: Measurement,
    *,
    declared: Mapping[str, float] = _EMPTY,
    accept_declared: bool = False,
) -> SlaReport:
    """Judge every SLA term: measured values first; declared ones only when accepted.

    A term whose metric was not measured fails, unless `accept_declared` (the repository's
    policy for the environment) lets the manifest's declared value stand in. A metric neither
    measured nor declared fails as "missing".
    """
    lines: list[SlaLine] = []
    for term in sla.terms:
        target = _target(term)
        value = _lookup(measurement.metrics, term.metric)
        if value is not None:
            note = "" if math.isfinite(value) else "the measurement is not a finite number"
            rows = _rows_used(measurement, term.metric)
            lines.append(
                SlaLine(term.metric, target, value, "measured", _judge(term, value), note, rows)
            )
            continue
        claimed = _lookup(declared, term.metric)
        if claimed is not None and accept_declared:
            note = "declared in the manifest, accepted by policy (not measured)"
            lines.append(
                SlaLine(term.metric, target, claimed, "declared", _judge(term, claimed), note)
            )
            continue
        why = _why_missing(measurement, term.metric) if measurement.measured else ""
        if claimed is not None:
            shown = format_value(claimed)
            note = f"not measured (declared {shown} is not accepted in this environment)"
        elif why:
            note = why
        else:
            note = "not measured, not declared"
        lines.append(SlaLine(term.metric, target, None, "missing", False, note))
    return SlaReport(tuple(lines), measurement)
