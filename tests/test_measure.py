"""measure_model: real ONNX models run by onnxruntime on CSV and Parquet data sets."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from bot.checks.measure import (
    INSTALL_HINT,
    LATENCY_ROWS,
    MeasureError,
    Measurement,
    detect_format,
    measure_model,
    percentile,
)
from tests import model_samples as samples

TIMING = {
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "batch_latency_p95_ms",
    "throughput_rps",
    "size_mb",
}
CLASSIFIER = {"accuracy", "pass_rate", "precision_macro", "recall_macro", "f1_macro"}
PER_CLASS = {f"{m}[{k}]" for m in ("precision", "recall", "f1") for k in (0, 1, 2)}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return samples.linear_classifier(tmp_path / "model.onnx")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    samples.write_csv(path, rows=100, right=90)
    return path


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- accuracy as constructed ---------------------------------------------------------------


def test_accuracy_is_exactly_the_share_of_rows_right(model: Path, data: Path) -> None:
    m = measure_model(model, data, "label")
    assert m.measured is True
    assert m.reason is None
    assert m.rows == 100
    assert m.metrics["accuracy"] == 0.9
    assert m.metrics["pass_rate"] == m.metrics["accuracy"]
    # A score matrix: a classifier with scores, so ROC AUC too; no regression metrics.
    assert set(m.metrics) == CLASSIFIER | PER_CLASS | TIMING | {"roc_auc"}
    assert m.task == "classifier"
    assert set(m.notes) == {"mae", "rmse", "r2"}


@pytest.mark.parametrize(("rows", "right"), [(100, 100), (50, 0), (37, 29), (130, 117)])
def test_accuracy_for_other_mixes(tmp_path: Path, model: Path, rows: int, right: int) -> None:
    data = tmp_path / "mix.csv"
    samples.write_csv(data, rows=rows, right=right, seed=rows)
    m = measure_model(model, data, "label", batch_size=16)
    assert m.rows == rows
    assert m.metrics["accuracy"] == right / rows


@pytest.mark.parametrize("position", [0, 2, 4])
def test_features_are_fed_in_order_wherever_the_label_is(
    tmp_path: Path, model: Path, position: int
) -> None:
    data = tmp_path / f"label_at_{position}.csv"
    samples.write_csv(data, rows=60, right=45, label_position=position)
    assert measure_model(model, data, "label").metrics["accuracy"] == 0.75


def test_label_column_is_named_by_the_caller(tmp_path: Path, model: Path) -> None:
    data = tmp_path / "named.csv"
    samples.write_csv(data, rows=20, right=19, label_column="species")
    assert measure_model(model, data, "species").metrics["accuracy"] == 0.95


@pytest.mark.parametrize("output", ["scores", "probabilities", "labels"])
def test_label_vector_and_score_matrix_outputs(tmp_path: Path, data: Path, output: str) -> None:
    model = samples.linear_classifier(tmp_path / f"{output}.onnx", output=output)
    assert measure_model(model, data, "label").metrics["accuracy"] == 0.9


def test_string_label_output_against_named_classes(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "names.onnx", output="names")
    data = tmp_path / "names.csv"
    samples.write_csv(data, rows=40, right=30, class_names=samples.CLASS_NAMES)
    assert measure_model(model, data, "label").metrics["accuracy"] == 0.75


def test_logistic_regression_binary(tmp_path: Path) -> None:
    model = samples.logistic_regression(tmp_path / "logreg.onnx", features=3)
    data = tmp_path / "binary.csv"
    samples.write_csv(data, rows=80, right=62, features=3, classes=2)
    assert measure_model(model, data, "label").metrics["accuracy"] == 62 / 80


def test_double_input_model(tmp_path: Path, data: Path) -> None:
    model = samples.linear_classifier(tmp_path / "double.onnx", dtype=TensorProto.DOUBLE)
    assert measure_model(model, data, "label").metrics["accuracy"] == 0.9


@pytest.mark.parametrize("fixed", [1, 5, 64])
def test_fixed_batch_dimension_is_padded(tmp_path: Path, data: Path, fixed: int) -> None:
    model = samples.linear_classifier(tmp_path / f"fixed{fixed}.onnx", batch=fixed)
    m = measure_model(model, data, "label", batch_size=7)
    assert m.rows == 100
    assert m.metrics["accuracy"] == 0.9


def test_max_rows_bounds_the_rows_read(model: Path, data: Path) -> None:
    m = measure_model(model, data, "label", max_rows=10)
    assert m.rows == 10
    everything = measure_model(model, data, "label", max_rows=None)
    assert everything.rows == 100


def test_label_values_written_as_floats_compare_as_classes(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "floats.csv", "f0,f1,f2,f3,label\n0,3,0,0,0.0\n0,0,0,3,1.0\n3,0,0,0,1\n")
    assert measure_model(model, data, "label").metrics["accuracy"] == pytest.approx(2 / 3)


# --- latency, throughput, size ------------------------------------------------------------


def test_latency_and_throughput_are_measured_and_positive(model: Path, data: Path) -> None:
    m = measure_model(model, data, "label", batch_size=10)
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "batch_latency_p95_ms"):
        assert m.metrics[name] > 0, name
    assert m.metrics["latency_p50_ms"] <= m.metrics["latency_p95_ms"] <= m.metrics["latency_p99_ms"]
    assert m.metrics["throughput_rps"] > 0
    assert np.isfinite(list(m.metrics.values())).all()


def test_slow_model_is_slower_per_row(tmp_path: Path, model: Path, data: Path) -> None:
    slow = samples.slow_model(tmp_path / "slow.onnx", hidden=256, layers=48)
    fast_m = measure_model(model, data, "label", max_rows=60)
    slow_m = measure_model(slow, data, "label", max_rows=60)
    assert slow_m.metrics["accuracy"] == fast_m.metrics["accuracy"]
    assert slow_m.metrics["latency_p50_ms"] > 3 * fast_m.metrics["latency_p50_ms"]
    assert slow_m.metrics["throughput_rps"] < fast_m.metrics["throughput_rps"]


def test_latency_is_timed_on_a_sample_and_quality_on_every_row(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.checks.measure as measure

    data = tmp_path / "many.csv"
    samples.write_csv(data, rows=LATENCY_ROWS + 50, right=LATENCY_ROWS)
    calls: list[int] = []
    real = measure._Runner.__call__

    def counting(self: measure._Runner, x: np.ndarray) -> object:
        calls.append(x.shape[0])
        return real(self, x)

    monkeypatch.setattr(measure._Runner, "__call__", counting)
    m = measure_model(model, data, "label", batch_size=100, warmup=0)
    assert m.rows == LATENCY_ROWS + 50
    assert calls.count(1) == LATENCY_ROWS
    # One call for the quality pass over all rows, then the timed batches.
    assert [c for c in calls if c != 1] == [LATENCY_ROWS + 50, 100, 100, 50]
    assert m.rows_used["accuracy"] == LATENCY_ROWS + 50
    assert m.rows_used["latency_p95_ms"] == LATENCY_ROWS
    assert m.rows_used["throughput_rps"] == LATENCY_ROWS + 50


def test_size_is_file_size_in_megabytes(model: Path, data: Path) -> None:
    m = measure_model(model, data, "label")
    assert m.metrics["size_mb"] == model.stat().st_size / 1e6


# --- formats that are not run -------------------------------------------------------------


def test_pickle_is_not_measured_but_its_size_is(tmp_path: Path) -> None:
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(pickle.dumps({"weights": list(range(1000))}))
    # The data set is not even read: it need not exist.
    m = measure_model(artifact, tmp_path / "absent.csv", "label")
    assert m.measured is False
    assert m.reason is not None and "pickle" in m.reason and "safely" in m.reason
    assert m.metrics == {"size_mb": artifact.stat().st_size / 1e6}
    assert m.rows == 0


def test_pickle_is_recognised_by_bytes_whatever_its_name(tmp_path: Path, data: Path) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    assert detect_format(artifact) == "pickle"
    assert measure_model(artifact, data, "label", model_format="sklearn").measured is False


@pytest.mark.parametrize(
    ("name", "declared", "content", "expected"),
    [
        ("model.joblib", None, b"\x00joblib-compressed", "joblib"),
        ("model.pt", None, b"not sniffable", "torch"),
        ("model.h5", None, b"\x89HDF\r\n\x1a\n" + b"\0" * 32, "h5"),
        ("weights", "pytorch", b"opaque", "torch"),
        ("weights", "keras", b"opaque", "keras"),
        ("model.gguf", None, b"GGUF\x03\x00\x00\x00", "gguf"),
        ("mystery.dat", None, b"opaque bytes", "unknown"),
    ],
)
def test_unsafe_formats_are_not_measured(
    tmp_path: Path, data: Path, name: str, declared: str | None, content: bytes, expected: str
) -> None:
    artifact = tmp_path / name
    artifact.write_bytes(content)
    m = measure_model(artifact, data, "label", model_format=declared)
    assert m.measured is False
    assert m.model_format == expected
    assert m.reason
    assert set(m.metrics) == {"size_mb"}


def test_torch_zip_and_safetensors_are_sniffed(tmp_path: Path) -> None:
    torch_file = tmp_path / "model.zip"
    with zipfile.ZipFile(torch_file, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({}))
    assert detect_format(torch_file) == "torch"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    st = tmp_path / "weights"
    st.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    assert detect_format(st) == "safetensors"


def test_saved_model_directory_size_is_the_sum_of_its_files(tmp_path: Path, data: Path) -> None:
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"x" * 1000)
    (saved / "variables" / "variables.data").write_bytes(b"y" * 500)
    m = measure_model(saved, data, "label")
    assert m.measured is False
    assert m.model_format == "savedmodel"
    assert m.metrics["size_mb"] == 1500 / 1e6


def test_onnx_is_recognised_by_bytes_even_when_declared_otherwise(
    tmp_path: Path, data: Path
) -> None:
    artifact = samples.linear_classifier(tmp_path / "model.bin")
    assert detect_format(artifact) == "onnx"
    m = measure_model(artifact, data, "label", model_format="pickle")
    assert m.measured is True
    assert m.metrics["accuracy"] == 0.9


def test_declared_onnx_that_is_not_onnx_is_an_error(tmp_path: Path, data: Path) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(pickle.dumps("not a model"))
    with pytest.raises(MeasureError, match="cannot load the model"):
        measure_model(artifact, data, "label", model_format="onnx")


def test_missing_artifact(tmp_path: Path, data: Path) -> None:
    with pytest.raises(MeasureError, match="does not exist"):
        measure_model(tmp_path / "nope.onnx", data, "label")


def test_model_with_two_inputs_is_refused(tmp_path: Path, data: Path) -> None:
    artifact = samples.two_input_model(tmp_path / "two.onnx")
    with pytest.raises(MeasureError, match="2 inputs"):
        measure_model(artifact, data, "label")


def test_missing_onnxruntime_says_how_to_install(
    model: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    assert str(info.value) == INSTALL_HINT


def test_importing_the_module_does_not_load_onnxruntime_or_numpy() -> None:
    code = (
        "import sys, bot.checks.measure, bot.checks.sla_report; "
        "print(sorted(m for m in ('onnxruntime', 'numpy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --- bad data sets ------------------------------------------------------------------------


def test_missing_label_column_is_named(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "nolabel.csv", "f0,f1,f2,f3,target\n1,2,3,4,0\n")
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    message = str(info.value)
    assert "nolabel.csv" in message
    assert "'label'" in message
    assert "the header has 5 columns: f0, f1, f2, f3, target" in message


def test_non_numeric_cell_names_the_line_and_column(tmp_path: Path, model: Path) -> None:
    data = _csv(
        tmp_path / "text.csv",
        "f0,f1,label,f2,f3\n0.1,0.2,0,0.3,0.4\n0.1,0.2,1,0.3,0.4\n0.1,abc,1,0.3,0.4\n",
    )
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    message = str(info.value)
    assert f"{data}:4:" in message
    assert "column 'f1'" in message and "not a number" in message
    assert "abc" not in message  # the cell is never quoted


def test_empty_cell_names_the_line(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "hole.csv", "f0,f1,f2,f3,label\n1,2,3,4,0\n1,2,,4,0\n")
    with pytest.raises(MeasureError, match=r"hole\.csv:3: column 'f2': an empty cell"):
        measure_model(model, data, "label")


def test_line_numbers_count_quoted_newlines(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "quoted.csv", 'f0,f1,f2,f3,label\n1,2,3,4,"a\nb"\n1,2,x,4,0\n')
    with pytest.raises(MeasureError, match=r"quoted\.csv:4:"):
        measure_model(model, data, "label")


def test_wrong_feature_count(tmp_path: Path, model: Path) -> None:
    data = tmp_path / "three.csv"
    samples.write_csv(data, rows=10, right=10, features=3)
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    message = str(info.value)
    assert "three.csv" in message and "3 feature columns" in message and "expects 4" in message


def test_ragged_row_names_the_line(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "ragged.csv", "f0,f1,f2,f3,label\n1,2,3,4,0\n1,2,3,0\n")
    with pytest.raises(MeasureError, match=r"ragged\.csv:3: 4 cells, but the header has 5"):
        measure_model(model, data, "label")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("f0,f1,f2,f3,label\n", "no rows"),
        ("f0,f1,f2,f3,label\n\n\n", "no rows"),
        ("", "empty"),
        ("label\n1\n", "no feature columns"),
        ("f0,label,label\n1,2,3\n", "appears twice"),
    ],
)
def test_degenerate_csv(tmp_path: Path, model: Path, text: str, match: str) -> None:
    data = _csv(tmp_path / "bad.csv", text)
    with pytest.raises(MeasureError, match=match) as info:
        measure_model(model, data, "label")
    assert "bad.csv" in str(info.value)


def test_blank_lines_are_skipped(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "blank.csv", "f0,f1,f2,f3,label\n\n0,3,0,0,0\n\n0,0,0,3,1\n")
    m = measure_model(model, data, "label")
    assert m.rows == 2 and m.metrics["accuracy"] == 1.0


def test_text_labels_against_class_numbers(tmp_path: Path, model: Path) -> None:
    data = _csv(tmp_path / "words.csv", "f0,f1,f2,f3,label\n0,3,0,0,cat\n")
    with pytest.raises(MeasureError, match=r"words\.csv: line 2: the label is not a number") as info:
        measure_model(model, data, "label")
    assert "cat" not in str(info.value)


def test_missing_data_set(tmp_path: Path, model: Path) -> None:
    with pytest.raises(MeasureError, match="does not exist"):
        measure_model(model, tmp_path / "absent.csv", "label")


def test_measure_error_is_a_value_error() -> None:
    assert issubclass(MeasureError, ValueError)


def test_bad_arguments(model: Path, data: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        measure_model(model, data, "label", batch_size=0)
    with pytest.raises(ValueError, match="max_rows"):
        measure_model(model, data, "label", max_rows=0)


# --- Parquet ------------------------------------------------------------------------------


def test_parquet_accuracy(tmp_path: Path, model: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet data sets need pyarrow (optional)")
    data = tmp_path / "data.parquet"
    samples.write_parquet(data, rows=100, right=90)
    m = measure_model(model, data, "label")
    assert m.rows == 100 and m.metrics["accuracy"] == 0.9
    assert measure_model(model, data, "label", max_rows=10).rows == 10


def test_parquet_missing_label_and_text_column(tmp_path: Path, model: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet data sets need pyarrow (optional)")
    import pyarrow.parquet as pq

    data = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"f0": [1.0], "f1": ["x"], "f2": [1.0], "f3": [1.0], "y": [0]}), data)
    with pytest.raises(MeasureError, match=r"bad\.parquet: no label column 'label'"):
        measure_model(model, data, "label")
    with pytest.raises(MeasureError, match=r"column 'f1' is string, not a number"):
        measure_model(model, data, "y")


def test_corrupt_parquet(tmp_path: Path, model: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet data sets need pyarrow (optional)")
    data = tmp_path / "broken.parquet"
    data.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(MeasureError, match=r"broken\.parquet: not a readable Parquet file"):
        measure_model(model, data, "label")


def test_parquet_null_cell_names_the_row(tmp_path: Path, model: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet data sets need pyarrow (optional)")
    import pyarrow.parquet as pq

    data = tmp_path / "null.parquet"
    table = pa.table(
        {"f0": [0.0, 0.0], "f1": [3.0, None], "f2": [0.0, 0.0], "f3": [0.0, 0.0], "label": [0, 0]}
    )
    pq.write_table(table, data)
    with pytest.raises(MeasureError, match=r"row 2: column 'f1' is empty \(null\)"):
        measure_model(model, data, "label")


def test_parquet_without_pyarrow_says_so(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.parquet"
    data.write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MeasureError, match="needs pyarrow"):
        measure_model(model, data, "label")


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0, 3.5, 8.9, 7.0, 9.3]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges() -> None:
    assert percentile([2.0], 99) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_measurement_is_frozen(model: Path, data: Path) -> None:
    m = measure_model(model, data, "label", max_rows=5)
    assert isinstance(m, Measurement)
    with pytest.raises(AttributeError):
        m.rows = 1  # type: ignore[misc]
