"""evaluate_sla and the SLA report: target against measured, pass or fail per line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from bot.checks.measure import Measurement, measure_model
from bot.checks.sla_report import SlaLine, SlaReport, evaluate_sla, format_value
from bot.sla import parse_sla, sla_from_mapping
from tests import model_samples as samples

MEASURED = Measurement(
    metrics={
        "accuracy": 0.82,
        "pass_rate": 0.82,
        "latency_p50_ms": 1.25,
        "latency_p95_ms": 12.3456,
        "latency_p99_ms": 20.0,
        "batch_latency_p95_ms": 40.0,
        "throughput_rps": 123456.7,
        "size_mb": 1.5,
    },
    rows=100,
    measured=True,
    reason=None,
    task="classifier",
    rows_used={
        "accuracy": 100,
        "pass_rate": 100,
        "latency_p50_ms": 20,
        "latency_p95_ms": 20,
        "latency_p99_ms": 20,
        "batch_latency_p95_ms": 50,
        "throughput_rps": 50,
    },
    batch_size=10,
)
PICKLED = Measurement(
    metrics={"size_mb": 1.5},
    rows=0,
    measured=False,
    reason="not measured: pickle cannot be run safely (loading it executes code from the file)",
)


def test_all_terms_met() -> None:
    report = evaluate_sla(parse_sla("accuracy>=0.8,latency_p95_ms<=50,size_mb<=2"), MEASURED)
    assert report.passed
    assert report.summary() == "SLA met: 3 of 3 terms"
    assert [line.source for line in report.lines] == ["measured"] * 3
    assert [line.measured for line in report.lines] == [0.82, 12.3456, 1.5]


def test_one_term_failed_is_summarised_with_numbers() -> None:
    report = evaluate_sla(parse_sla("accuracy>=0.9"), MEASURED)
    assert not report.passed
    assert report.summary() == "SLA failed: accuracy 0.82 < 0.9"
    (line,) = report.lines
    assert line == SlaLine("accuracy", ">=0.9", 0.82, "measured", False, rows=100)


def test_several_failures_are_counted() -> None:
    report = evaluate_sla(
        parse_sla("accuracy>=0.9,latency_p95_ms<10,throughput_rps>=1000,size_mb<=1"), MEASURED
    )
    assert report.summary() == (
        "SLA failed: accuracy 0.82 < 0.9; latency_p95_ms 12.346 >= 10; size_mb 1.5 > 1 "
        "(3 of 4 terms failed)"
    )
    assert [line.passed for line in report.lines] == [False, False, True, False]
    assert len(report.failed_lines) == 3


def test_pass_rate_is_accuracy() -> None:
    report = evaluate_sla(parse_sla("pass_rate>=0.8"), MEASURED)
    assert report.passed and report.lines[0].measured == 0.82


def test_equality_term() -> None:
    assert evaluate_sla(parse_sla("size_mb==1.5"), MEASURED).passed
    report = evaluate_sla(parse_sla("size_mb==2"), MEASURED)
    assert report.summary() == "SLA failed: size_mb 1.5 != 2"


def test_empty_sla_passes() -> None:
    report = evaluate_sla(parse_sla(""), MEASURED)
    assert report.passed
    assert report.summary() == "SLA empty: no terms to check"
    assert "SLA empty" in report.to_text()


# --- not measured, declared, missing --------------------------------------------------------


SLA = sla_from_mapping({"accuracy": ">=0.9", "latency_p95_ms": "<=50", "size_mb": "<=2"})


def test_not_measured_fails_even_when_declared_unless_policy_accepts() -> None:
    report = evaluate_sla(SLA, PICKLED, declared={"accuracy": 0.95, "latency_p95_ms": 5})
    assert not report.passed
    acc, lat, size = report.lines
    assert (acc.source, acc.measured, acc.passed) == ("missing", None, False)
    assert "declared 0.95 is not accepted" in acc.note
    assert (lat.source, lat.passed) == ("missing", False)
    # The size is measured for every format.
    assert (size.source, size.measured, size.passed) == ("measured", 1.5, True)
    assert report.summary().startswith("SLA failed: accuracy not measured (declared 0.95")
    assert "(2 of 3 terms failed)" in report.summary()


def test_declared_values_stand_in_when_accepted() -> None:
    report = evaluate_sla(
        SLA, PICKLED, declared={"accuracy": 0.95, "latency_p95_ms": 5}, accept_declared=True
    )
    assert report.passed
    acc, lat, size = report.lines
    assert (acc.source, acc.measured) == ("declared", 0.95)
    assert (lat.source, lat.measured) == ("declared", 5.0)
    assert size.source == "measured"
    assert report.summary() == "SLA met: 3 of 3 terms (2 declared, not measured)"


def test_declared_values_are_still_judged() -> None:
    report = evaluate_sla(
        SLA, PICKLED, declared={"accuracy": 0.7, "latency_p95_ms": 5}, accept_declared=True
    )
    assert not report.passed
    assert report.summary() == "SLA failed: accuracy 0.7 < 0.9 (declared) (1 of 3 terms failed)"


def test_measured_beats_declared() -> None:
    report = evaluate_sla(
        parse_sla("accuracy>=0.9"), MEASURED, declared={"accuracy": 0.99}, accept_declared=True
    )
    assert not report.passed
    assert report.lines[0].source == "measured"
    assert report.lines[0].measured == 0.82


def test_declared_accuracy_serves_pass_rate() -> None:
    report = evaluate_sla(
        parse_sla("pass_rate>=0.9"), PICKLED, declared={"accuracy": 0.95}, accept_declared=True
    )
    assert report.passed and report.lines[0].source == "declared"


def test_metric_neither_measured_nor_declared_is_missing() -> None:
    report = evaluate_sla(
        parse_sla("latency_p99_ms<=10"), PICKLED, declared={"accuracy": 0.95}, accept_declared=True
    )
    (line,) = report.lines
    assert (line.source, line.measured, line.passed) == ("missing", None, False)
    assert report.summary() == "SLA failed: latency_p99_ms not measured, not declared"


def test_metric_missing_from_a_partial_measurement() -> None:
    partial = Measurement({"accuracy": 0.95, "size_mb": 1.0}, 10, True, None)
    report = evaluate_sla(parse_sla("accuracy>=0.9,throughput_rps>=100"), partial)
    assert [line.source for line in report.lines] == ["measured", "missing"]
    assert not report.passed


def test_non_numeric_declared_value_is_ignored() -> None:
    declared: dict[str, object] = {"accuracy": "high"}
    report = evaluate_sla(
        parse_sla("accuracy>=0.9"),
        PICKLED,
        declared=declared,  # type: ignore[arg-type]
        accept_declared=True,
    )
    assert report.lines[0].source == "missing"


def test_not_finite_measurement_fails() -> None:
    odd = Measurement({"throughput_rps": float("inf"), "size_mb": float("nan")}, 1, True, None)
    report = evaluate_sla(parse_sla("throughput_rps>=1,size_mb<=2"), odd)
    assert [line.passed for line in report.lines] == [False, False]
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["lines"][0]["measured"] is None


# --- rendering ------------------------------------------------------------------------------


def _report() -> SlaReport:
    return evaluate_sla(
        parse_sla("accuracy>=0.9,latency_p95_ms<=50,throughput_rps>=1000"), MEASURED
    )


def test_text_table_has_target_and_measured_per_line() -> None:
    text = _report().to_text()
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "target", "measured", "rows", "source", "result"]
    assert lines[1].split() == ["accuracy", ">=0.9", "0.82", "100", "measured", "FAIL"]
    assert lines[2].split() == ["latency_p95_ms", "<=50", "12.346", "20", "measured", "pass"]
    assert lines[3].split() == ["throughput_rps", ">=1000", "123457", "50", "measured", "pass"]
    assert "SLA failed: accuracy 0.82 < 0.9 (1 of 3 terms failed)" in lines
    assert (
        "quality metrics on all 100 rows of the data set; per-row latency on a sample of "
        "20 rows; batch latency and throughput on 50 rows in batches of 10"
    ) in lines
    # Columns line up.
    assert len({line.index(">=") for line in lines[1:4] if ">=" in line}) == 1


def test_text_shows_notes_and_the_reason_when_not_measured() -> None:
    text = evaluate_sla(SLA, PICKLED, declared={"accuracy": 0.95}).to_text()
    assert "note" in text.splitlines()[0]
    assert "not measured, not declared" in text
    assert PICKLED.reason is not None and PICKLED.reason in text


def test_markdown_table() -> None:
    md = _report().to_markdown()
    assert md.startswith(":x: **SLA failed: accuracy 0.82 < 0.9 (1 of 3 terms failed)**")
    assert "| metric | target | measured | rows | source | result | note |" in md
    assert "| `accuracy` | `>=0.9` | 0.82 | 100 | measured | **FAIL** |  |" in md
    assert "| `latency_p95_ms` | `<=50` | 12.346 | 20 | measured | pass |  |" in md
    assert "_quality metrics on all 100 rows of the data set;" in md
    passed = evaluate_sla(parse_sla("accuracy>=0.8"), MEASURED).to_markdown()
    assert passed.startswith(":white_check_mark: **SLA met: 1 of 1 term**")


def test_markdown_escapes_pipes() -> None:
    odd = Measurement({"size_mb": 1.0}, 0, False, "not measured: a|b")
    assert "a\\|b" in evaluate_sla(parse_sla("size_mb<=2"), odd).to_markdown()


def test_dict_is_json_ready() -> None:
    data = _report().to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["passed"] is False
    assert data["summary"] == "SLA failed: accuracy 0.82 < 0.9 (1 of 3 terms failed)"
    assert data["lines"][0] == {
        "metric": "accuracy",
        "target": ">=0.9",
        "op": ">=",
        "value": 0.9,
        "measured": 0.82,
        "source": "measured",
        "passed": False,
        "note": "",
        "rows": 100,
    }
    assert data["measurement"]["rows"] == 100
    assert data["measurement"]["rows_used"]["latency_p95_ms"] == 20
    assert data["measurement"]["task"] == "classifier"
    assert data["measurement"]["metrics"]["size_mb"] == 1.5


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0.0, "0"),
        (0.9, "0.9"),
        (0.82, "0.82"),
        (0.123456, "0.1235"),
        (0.00001234, "1.234e-05"),
        (12.3456, "12.346"),
        (50.0, "50"),
        (123456.7, "123457"),
        (float("inf"), "inf"),
    ],
)
def test_format_value(value: float | None, text: str) -> None:
    assert format_value(value) == text


# --- end to end: a real model measured and judged --------------------------------------------


def test_real_onnx_model_meets_and_misses_its_sla(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "data.csv"
    samples.write_csv(data, rows=100, right=90)
    m = measure_model(model, data, "label")

    met = evaluate_sla(
        parse_sla(
            "accuracy>=0.9,pass_rate>=0.9,latency_p50_ms<=1000,latency_p95_ms<=1000,"
            "latency_p99_ms<=1000,batch_latency_p95_ms<=1000,throughput_rps>=1,size_mb<=1"
        ),
        m,
    )
    assert met.passed, met.to_text()
    assert met.summary() == "SLA met: 8 of 8 terms"
    assert all(line.source == "measured" for line in met.lines)
    assert all(line.measured is not None and line.measured > 0 for line in met.lines)

    missed = evaluate_sla(parse_sla("accuracy>0.9"), m)
    assert not missed.passed
    assert missed.summary() == "SLA failed: accuracy 0.9 <= 0.9"


def test_real_pickle_with_and_without_accept_declared(tmp_path: Path) -> None:
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(pickle.dumps({"coef": [0.1, 0.2]}))
    m = measure_model(artifact, tmp_path / "data.csv", "label")
    sla = parse_sla("accuracy>=0.9,size_mb<=1")
    refused = evaluate_sla(sla, m, declared={"accuracy": 0.93})
    assert not refused.passed
    assert refused.lines[0].source == "missing"
    accepted = evaluate_sla(sla, m, declared={"accuracy": 0.93}, accept_declared=True)
    assert accepted.passed
    assert [line.source for line in accepted.lines] == ["declared", "measured"]


# --- the metrics of classifiers and regressors ------------------------------------------------


CLASSIFIED = Measurement(
    metrics={"accuracy": 0.9, "f1_macro": 0.85, "precision[fraud]": 0.75, "recall[1]": 0.5},
    rows=3_000_000,
    measured=True,
    reason=None,
    task="classifier",
    rows_used={"accuracy": 3_000_000, "f1_macro": 3_000_000, "precision[fraud]": 3_000_000},
    notes={"mae": "not measured: the model is a classifier"},
)


def test_per_class_and_macro_terms_are_judged_with_their_row_counts() -> None:
    report = evaluate_sla(parse_sla("f1_macro>=0.8,precision[fraud]>=0.9"), CLASSIFIED)
    f1, precision = report.lines
    assert (f1.measured, f1.passed, f1.rows) == (0.85, True, 3_000_000)
    assert (precision.measured, precision.passed, precision.rows) == (0.75, False, 3_000_000)
    assert report.summary() == "SLA failed: precision[fraud] 0.75 < 0.9 (1 of 2 terms failed)"


def test_a_class_number_may_be_written_as_a_float() -> None:
    report = evaluate_sla(parse_sla("recall[1.0]>=0.5"), CLASSIFIED)
    assert report.passed and report.lines[0].measured == 0.5


def test_a_class_that_is_not_in_the_data_says_so() -> None:
    report = evaluate_sla(parse_sla("recall[dog]>=0.5"), CLASSIFIED)
    assert report.summary() == (
        "SLA failed: recall[dog] not measured: no class 'dog' in the data set's labels or "
        "the model's predictions"
    )


def test_a_metric_of_the_other_kind_of_model_says_why() -> None:
    report = evaluate_sla(parse_sla("mae<=1"), CLASSIFIED)
    assert report.summary() == "SLA failed: mae not measured: the model is a classifier"
    regressor = Measurement({"rmse": 2.0}, 10, True, None, task="regressor")
    per_class = evaluate_sla(parse_sla("f1[1]>=0.5"), regressor)
    assert per_class.lines[0].note == "not measured: the model is a regressor (one number per row)"
