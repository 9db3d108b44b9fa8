"""The quality metrics on the whole data set, each against scikit-learn.metrics.

Models are real: scikit-learn estimators fitted in the test, written out as ONNX graphs with
the estimator's own coefficients, and run by onnxruntime. The references are computed in the
test, independently of the validator: the CSV is read back with numpy, the model is run by
onnxruntime directly, and scikit-learn.metrics scores its outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

import bot.checks.dataset as dataset
from bot.checks.measure import MeasureError, measure_model
from bot.checks.sla_report import evaluate_sla
from bot.sla import parse_sla
from tests import model_samples as samples

ROWS = 12_000  # more than the 10,000 rows the validator once stopped at
TIGHT = 1e-9


def _save(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto],
          inits: dict[str, np.ndarray], features: int, path: Path) -> Path:
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        outputs,
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", samples.OPSET)])
    model.ir_version = samples.IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def logistic_onnx(clf: LogisticRegression, path: Path, *, output: str = "probabilities") -> Path:
    """The fitted classifier as ONNX: logits = x @ W + b (binary: [0, z]), then
    output "probabilities" (Softmax), "logits", or "label+probabilities" (two outputs)."""
    coef, intercept = clf.coef_.T, clf.intercept_
    if coef.shape[1] == 1:  # binary: sklearn keeps one logit for class 1
        coef = np.hstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    features, classes = coef.shape
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    scores = {
        n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", classes])
        for n in ("logits", "probabilities")
    }
    label = helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])
    outs = {
        "probabilities": [scores["probabilities"]],
        "logits": [scores["logits"]],
        "label+probabilities": [label, scores["probabilities"]],
        "label": [label],
    }[output]
    return _save(nodes, outs, {"W": coef, "b": intercept}, features, path)


def linear_onnx(reg: LinearRegression, path: Path) -> Path:
    features = reg.coef_.shape[0]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])]
    inits = {"W": reg.coef_.reshape(features, 1), "b": np.array([reg.intercept_])}
    return _save(nodes, out, inits, features, path)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, *, label_fmt: str = "%d") -> Path:
    """Features f0.., the label in the middle (the validator must feed the others in order)."""
    at = x.shape[1] // 2
    names = [f"f{i}" for i in range(x.shape[1])]
    header = ",".join([*names[:at], "label", *names[at:]])
    table = np.column_stack([x[:, :at], y, x[:, at:]])
    fmt = ["%.6f"] * at + [label_fmt] + ["%.6f"] * (x.shape[1] - at)
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=header, comments="")
    return path


def read_back(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The CSV as numpy reads it: features in order, and the label column."""
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    at = (table.shape[1] - 1) // 2
    return np.delete(table, at, axis=1), table[:, at]


def run_onnx(model: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs: list[np.ndarray] = session.run(None, {"x": x.astype(np.float32)})
    return outputs


def classification_data(
    rows: int, classes: int, seed: int, features: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs: a model that gets most, not all, rows right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    centres = rng.normal(0, 1.5, (classes, features))
    x = np.round(centres[y] + rng.normal(0, 1.2, (rows, features)), 6)
    return x, y


def assert_classification(m_metrics: dict[str, float], y: np.ndarray, pred: np.ndarray) -> None:
    assert m_metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=TIGHT)
    labels = sorted(set(y.tolist()) | set(pred.tolist()))
    p, r, f, _ = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    for i, label in enumerate(labels):
        key = str(int(label)) if isinstance(label, float | int | np.integer) else str(label)
        assert m_metrics[f"precision[{key}]"] == pytest.approx(p[i], abs=TIGHT)
        assert m_metrics[f"recall[{key}]"] == pytest.approx(r[i], abs=TIGHT)
        assert m_metrics[f"f1[{key}]"] == pytest.approx(f[i], abs=TIGHT)
    for name, average in (("precision_macro", 0), ("recall_macro", 1), ("f1_macro", 2)):
        macro = skm.precision_recall_fscore_support(
            y, pred, labels=labels, average="macro", zero_division=0
        )[average]
        assert m_metrics[name] == pytest.approx(macro, abs=TIGHT), name


# --- classifiers ------------------------------------------------------------------------------


def test_multiclass_metrics_match_scikit_learn(tmp_path: Path) -> None:
    x, y = classification_data(ROWS, 3, seed=1)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = logistic_onnx(clf, tmp_path / "logreg3.onnx")
    data = write_csv(tmp_path / "three.csv", x, y)

    m = measure_model(model, data, "label")

    xs, ys = read_back(data)
    (proba,) = run_onnx(model, xs)
    pred = proba.argmax(axis=1)
    assert m.task == "classifier" and m.rows == ROWS
    assert 0.5 < m.metrics["accuracy"] < 0.99  # a model with errors, so the figures mean something
    assert_classification(m.metrics, ys, pred)
    reference_auc = skm.roc_auc_score(ys, proba, multi_class="ovr", average="macro")
    assert m.metrics["roc_auc"] == pytest.approx(reference_auc, abs=1e-9)
    # The ONNX graph is the estimator: its accuracy is scikit-learn's own (float32 aside).
    assert m.metrics["accuracy"] == pytest.approx(clf.score(xs, ys), abs=1e-3)
    assert {m.rows_used[k] for k in ("accuracy", "f1_macro", "precision[2]", "roc_auc")} == {ROWS}


def test_binary_logits_auc_is_ranked_on_class_one(tmp_path: Path) -> None:
    x, y = classification_data(ROWS, 2, seed=2)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = logistic_onnx(clf, tmp_path / "binary.onnx", output="logits")
    data = write_csv(tmp_path / "binary.csv", x, y)

    m = measure_model(model, data, "label")

    xs, ys = read_back(data)
    (logits,) = run_onnx(model, xs)
    assert_classification(m.metrics, ys, logits.argmax(axis=1))
    # Logits are not probabilities: class 1's chance grows with z1 - z0.
    reference = skm.roc_auc_score(ys, logits[:, 1].astype(np.float64) - logits[:, 0])
    assert m.metrics["roc_auc"] == pytest.approx(reference, abs=1e-6)
    assert m.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(ys, clf.decision_function(xs)), abs=1e-3
    )


def test_labels_with_probabilities_as_a_second_output(tmp_path: Path) -> None:
    x, y = classification_data(5_000, 4, seed=3)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = logistic_onnx(clf, tmp_path / "two_outputs.onnx", output="label+probabilities")
    data = write_csv(tmp_path / "four.csv", x, y)

    m = measure_model(model, data, "label")

    xs, ys = read_back(data)
    label, proba = run_onnx(model, xs)
    assert_classification(m.metrics, ys, label)
    reference = skm.roc_auc_score(ys, proba, multi_class="ovr", average="macro")
    assert m.metrics["roc_auc"] == pytest.approx(reference, abs=1e-9)


def test_labels_only_give_no_auc_and_say_why(tmp_path: Path) -> None:
    x, y = classification_data(2_000, 3, seed=4)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = logistic_onnx(clf, tmp_path / "labels.onnx", output="label")
    m = measure_model(model, write_csv(tmp_path / "l.csv", x, y), "label")
    assert "roc_auc" not in m.metrics
    report = evaluate_sla(parse_sla("roc_auc>=0.8"), m)
    assert report.summary() == (
        "SLA failed: roc_auc not measured: the model gives class labels, no scores"
    )


def test_named_classes_are_named_in_per_class_metrics(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "names.onnx", output="names")
    data = tmp_path / "names.csv"
    samples.write_csv(data, rows=3_000, right=2_400, class_names=samples.CLASS_NAMES)
    m = measure_model(model, data, "label")

    import csv

    with data.open() as handle:
        rows = list(csv.DictReader(handle))
    xs = np.array([[float(r[f"f{i}"]) for i in range(4)] for r in rows])
    (pred,) = run_onnx(model, xs)
    truth = np.array([r["label"] for r in rows])
    assert_classification(m.metrics, truth, pred.astype(str))
    assert {"precision[cat]", "recall[dog]", "f1[bird]"} <= set(m.metrics)
    report = evaluate_sla(parse_sla("recall[dog]>=0.5,precision[cat]>=0.99"), m)
    assert [line.passed for line in report.lines] == [True, False]


# --- regressors -------------------------------------------------------------------------------


def test_regressor_metrics_match_scikit_learn(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 1, (ROWS, 4)), 6)
    # A large offset on the labels: R^2 must not lose its digits to cancellation.
    y = np.round(1e5 + x @ np.array([3.0, -2.0, 0.5, 1.0]) + rng.normal(0, 0.7, ROWS), 4)
    reg = LinearRegression().fit(x, y)
    model = linear_onnx(reg, tmp_path / "linreg.onnx")
    data = write_csv(tmp_path / "reg.csv", x, y, label_fmt="%.4f")

    m = measure_model(model, data, "label")

    xs, ys = read_back(data)
    (pred,) = run_onnx(model, xs)
    pred = pred[:, 0].astype(np.float64)
    assert m.task == "regressor" and m.rows == ROWS
    assert m.metrics["mae"] == pytest.approx(skm.mean_absolute_error(ys, pred), rel=1e-9)
    assert m.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(ys, pred)), rel=1e-9)
    assert m.metrics["r2"] == pytest.approx(skm.r2_score(ys, pred), rel=1e-9)
    assert {"accuracy", "f1_macro", "roc_auc"} <= set(m.notes)
    assert "accuracy" not in m.metrics
    report = evaluate_sla(parse_sla("rmse<=1,r2>=0.9,accuracy>=0.9"), m)
    assert [line.passed for line in report.lines] == [True, True, False]
    assert report.lines[2].note == "not measured: the model is a regressor (one number per row)"


def test_regressor_with_a_text_label_names_the_line_not_the_text(tmp_path: Path) -> None:
    reg = LinearRegression().fit(np.eye(4), np.arange(4.0))
    model = linear_onnx(reg, tmp_path / "r.onnx")
    data = tmp_path / "r.csv"
    data.write_text("f0,f1,label,f2,f3\n1,2,3.5,4,5\n1,2,hunter2,4,5\n")
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    assert str(info.value) == (
        f"{data}: line 3: the label is not a number, but the model predicts numbers"
    )


# --- the whole data set -----------------------------------------------------------------------


def _right_then_wrong(path: Path, right: int, wrong: int) -> Path:
    """`right` rows the linear classifier gets right, then `wrong` rows it gets wrong."""
    good = samples.sample_rows(right, right, seed=11)
    bad = samples.sample_rows(wrong, 0, seed=12)
    with path.open("w") as handle:
        handle.write("f0,f1,label,f2,f3\n")
        for values, label in good + bad:
            handle.write(",".join([*map(str, values[:2]), str(label), *map(str, values[2:])]) + "\n")
    return path


def test_rows_after_ten_thousand_change_the_verdict(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = _right_then_wrong(tmp_path / "late.csv", 10_000, 2_000)
    m = measure_model(model, data, "label")
    assert m.rows == 12_000
    assert m.metrics["accuracy"] == 10_000 / 12_000
    report = evaluate_sla(parse_sla("accuracy>=0.9,latency_p95_ms<=1000"), m)
    assert report.summary() == "SLA failed: accuracy 0.8333 < 0.9 (1 of 2 terms failed)"
    text = report.to_text()
    assert "quality metrics on all 12000 rows of the data set" in text
    assert "per-row latency on a sample of 200 rows" in text
    accuracy, latency = text.splitlines()[1:3]
    assert accuracy.split()[:4] == ["accuracy", ">=0.9", "0.8333", "12000"]
    assert latency.split()[:4] == ["latency_p95_ms", "<=1000", latency.split()[2], "200"]
    # The first 10,000 rows alone would pass.
    assert measure_model(model, data, "label", max_rows=10_000).metrics["accuracy"] == 1.0


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few hundred rows, so a test-sized file spans many of them."""
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 700)
    monkeypatch.setattr(dataset, "ARROW_BLOCK_BYTES", 16_384)


QUALITY = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "f1[1]")


def _all_rows(path: Path, label: str, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(dataset.read_chunks(path, label, exact=exact))
    assert len(chunks) > 5  # many chunks, or the test proves nothing about joining them
    assert [c.first_row for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]) + 1)
    numbers = [c.numbers for c in chunks]
    assert all(n is not None for n in numbers)
    return np.concatenate([c.x for c in chunks]), np.concatenate([n for n in numbers if n is not None])


@pytest.mark.usefixtures("small_chunks")
def test_the_three_csv_readers_read_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow.csv", reason="the fast CSV reader needs pyarrow")
    monkeypatch.setattr(dataset, "NUMPY_BLOCK_BYTES", 16_384)
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1e3, (ROWS, 4)) * rng.choice([1e-8, 1, 1e8], (ROWS, 4))
    y = rng.integers(0, 5, ROWS)
    data = tmp_path / "d.csv"
    with data.open("w", newline="") as handle:  # repr: Python's own shortest round-trip text
        handle.write("f0,f1,label,f2,f3\r\n")
        for row, label in zip(x.tolist(), y.tolist(), strict=True):
            handle.write(f"{row[0]!r},{row[1]!r},{label},{row[2]!r},{row[3]!r}\r\n")
    arrow = _all_rows(data, "label")
    exact = _all_rows(data, "label", exact=True)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    numpy_rows = _all_rows(data, "label")
    for got in (arrow, exact, numpy_rows):
        assert np.array_equal(got[0], x)  # bit for bit
        assert np.array_equal(got[1], y)


@pytest.mark.usefixtures("small_chunks")
def test_every_reader_and_parquet_give_the_same_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow", reason="the fast CSV reader and Parquet need pyarrow")
    monkeypatch.setattr(dataset, "NUMPY_BLOCK_BYTES", 16_384)
    x, y = classification_data(ROWS, 3, seed=6)
    model = logistic_onnx(LogisticRegression(max_iter=500).fit(x, y), tmp_path / "m.onnx")
    data = write_csv(tmp_path / "d.csv", x, y)
    fast = measure_model(model, data, "label")
    parquet = tmp_path / "d.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    xs, ys = read_back(data)
    columns = {f"f{i}": xs[:, i] for i in range(4)}
    pq.write_table(pa.table({**columns, "label": ys.astype(np.int64)}), parquet)
    from_parquet = measure_model(model, parquet, "label")
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)  # numpy's reader
    from_numpy = measure_model(model, data, "label")
    # Quoted cells on one line: numpy's reader hands the file over to the csv module.
    lines = data.read_text().splitlines()
    quoted_line = '"' + lines[3].replace(",", '","') + '"'
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("\n".join([*lines[:3], quoted_line, *lines[4:]]) + "\n")
    exact = measure_model(model, quoted, "label")

    (proba,) = run_onnx(model, xs)
    assert_classification(fast.metrics, ys, proba.argmax(axis=1))
    for name in QUALITY:
        runs = (fast, from_numpy, exact, from_parquet)
        assert len({run.metrics[name] for run in runs}) == 1, name
    assert fast.rows == from_numpy.rows == exact.rows == from_parquet.rows == ROWS


@pytest.mark.usefixtures("small_chunks")
def test_a_file_the_fast_reader_refuses_is_read_exactly(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "odd.csv"
    samples.write_csv(data, rows=3_000, right=2_700)
    lines = data.read_text().splitlines(keepends=True)
    # A line of spaces deep in the file: the csv module skips it, pyarrow calls it a
    # one-cell row.
    lines.insert(2_500, "   \n")
    data.write_text("".join(lines))
    m = measure_model(model, data, "label")
    assert m.rows == 3_000 and m.metrics["accuracy"] == 0.9


def test_an_error_after_many_good_chunks_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "ARROW_BLOCK_BYTES", 16_384)
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "late_error.csv"
    samples.write_csv(data, rows=5_000, right=5_000)
    lines = data.read_text().splitlines(keepends=True)
    lines[4_321] = "0.1,0.2,1,SECRET-VALUE,0.3\n"
    data.write_text("".join(lines))
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, "label")
    assert str(info.value) == (
        f"{data}:4322: column 'f2': not a number (every column but the label must be a number)"
    )


@pytest.mark.parametrize("decimals", [0, 1, 3])
def test_auc_counts_ties_half_as_scikit_learn_does(decimals: int) -> None:
    from bot.checks.quality import binary_auc

    rng = np.random.default_rng(decimals)
    truth = rng.random(5_000) < 0.3
    scores = np.round(rng.random(5_000) + truth * 0.3, decimals).astype(np.float32)
    assert binary_auc(scores, truth) == pytest.approx(skm.roc_auc_score(truth, scores), abs=1e-12)
    assert binary_auc(scores, np.zeros(5_000, dtype=bool)) is None


def test_auc_beyond_its_memory_cap_is_not_measured_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.checks.quality as quality

    monkeypatch.setattr(quality, "MAX_SCORE_VALUES", 3 * 999)  # 999 rows of 3 scores
    model = samples.linear_classifier(tmp_path / "m.onnx", output="probabilities")
    data = tmp_path / "d.csv"
    samples.write_csv(data, rows=1_000, right=900)
    m = measure_model(model, data, "label")
    assert m.metrics["accuracy"] == 0.9  # the other figures still use every row
    assert "roc_auc" not in m.metrics
    assert m.notes["roc_auc"] == "not measured: more than 2997 scores (rows x classes) to rank"


def test_per_class_figures_are_listed_for_fifty_classes_at_most() -> None:
    from bot.checks.quality import ClassTally

    tally = ClassTally()
    truth = np.arange(600, dtype=np.float64) % 60
    tally.add(truth, truth)
    listed = tally.metrics()
    assert listed["f1_macro"] == 1.0 and listed["accuracy"] == 1.0
    assert not [k for k in listed if "[" in k]
    few = ClassTally()
    few.add(truth % 50, truth % 50)
    assert len([k for k in few.metrics() if k.startswith("f1[")]) == 50


def test_class_names_that_are_numbers_match_labels_however_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = samples.permutation_weights(4, 3)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["scores"]),
            helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
            helper.make_node(
                "LabelEncoder", ["label"], ["name"], domain="ai.onnx.ml",
                keys_int64s=[0, 1, 2], values_strings=["0", "1", "2"], default_string="?",
            ),
        ],
        "numbered_names",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("name", TensorProto.STRING, ["N"])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model_proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", samples.OPSET), helper.make_opsetid("ai.onnx.ml", 2)],
    )
    model_proto.ir_version = samples.IR_VERSION
    model = tmp_path / "numbered.onnx"
    onnx.save(model_proto, str(model))
    data = tmp_path / "d.csv"
    samples.write_csv(data, rows=300, right=270)
    lines = data.read_text().splitlines()
    for i in range(1, 300, 3):  # "1" as "1.0", "2" as "2.00"
        cells = lines[i].split(",")
        cells[2] = f"{int(cells[2])}.0" if i % 2 else f"{int(cells[2])}.00"
        lines[i] = ",".join(cells)
    data.write_text("\n".join(lines) + "\n")
    results = [measure_model(model, data, "label").metrics["accuracy"]]
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    results.append(measure_model(model, data, "label").metrics["accuracy"])
    lines[1] = lines[1] + "  "  # trailing spaces in the label: numpy's reader hands over
    quoted = tmp_path / "q.csv"
    quoted.write_text("\n".join([lines[0], '"' + lines[1].replace(",", '","') + '"', *lines[2:]]) + "\n")
    results.append(measure_model(model, quoted, "label").metrics["accuracy"])
    assert results == [0.9, 0.9, 0.9]
