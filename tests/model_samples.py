"""Tiny real ONNX models and data sets whose accuracy is known by construction.

The models are built with the `onnx` helper API (a test dependency), saved as real files,
and run by onnxruntime in the tests like any model a Data Scientist would push.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnxruntime reads models up to its own IR version; pin one it knows.
IR_VERSION = 8
OPSET = 13
CLASS_NAMES = ["cat", "dog", "bird", "fish", "frog", "newt"]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 2)],
        producer_name="aimodel-gitops-tests",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def permutation_weights(features: int, classes: int) -> np.ndarray:
    """W such that x @ W picks, for class k, feature (k * 2 + 1) % features.

    The class a row belongs to is told by one feature, not the first ones, so a validator
    that fed the columns in the wrong order (or fed the label) would get the accuracy wrong.
    """
    if classes > features:
        raise ValueError("need at least as many features as classes")
    w = np.zeros((features, classes), dtype=np.float32)
    for k in range(classes):
        w[class_feature(k, features, classes), k] = 1.0
    return w


def class_feature(k: int, features: int, classes: int) -> int:
    """The feature that carries class k (distinct for every class)."""
    order = [(i * 2 + 1) % features for i in range(features)]
    seen: list[int] = []
    for f in order + list(range(features)):
        if f not in seen:
            seen.append(f)
    return seen[k]


def linear_classifier(
    path: Path,
    features: int = 4,
    classes: int = 3,
    *,
    output: str = "scores",
    batch: int | str = "N",
    dtype: int = TensorProto.FLOAT,
) -> Path:
    """A linear classifier over `features` inputs: scores = x @ W + b.

    output: "scores" (logits [N, classes]), "probabilities" (Softmax, i.e. multinomial
    logistic regression), "labels" (ArgMax, an int64 label vector [N]) or "names" (the
    class names in CLASS_NAMES, a string label vector [N], as sklearn-onnx classifiers give).
    batch: the input's first dimension ("N" dynamic, or a fixed number).
    """
    np_dtype = np.float64 if dtype == TensorProto.DOUBLE else np.float32
    w = permutation_weights(features, classes).astype(np_dtype)
    b = np.zeros((classes,), dtype=np_dtype)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["scores"]),
    ]
    out_name, out_type, out_shape = "scores", dtype, [batch, classes]
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1))
        out_name = "probabilities"
    elif output == "labels":
        nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
        out_name, out_type, out_shape = "label", TensorProto.INT64, [batch]
    elif output == "names":
        nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                ["label"],
                ["name"],
                domain="ai.onnx.ml",
                keys_int64s=list(range(classes)),
                values_strings=CLASS_NAMES[:classes],
                default_string="?",
            )
        )
        out_name, out_type, out_shape = "name", TensorProto.STRING, [batch]
    elif output != "scores":
        raise ValueError(f"unknown output kind {output!r}")
    graph = helper.make_graph(
        nodes,
        "linear_classifier",
        [helper.make_tensor_value_info("x", dtype, [batch, features])],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return _save(graph, path)


def logistic_regression(path: Path, features: int = 3) -> Path:
    """Binary logistic regression: probabilities [N, 2] = Softmax(x @ W + b)."""
    return linear_classifier(path, features, 2, output="probabilities")


def slow_model(
    path: Path, features: int = 4, classes: int = 3, *, hidden: int = 128, layers: int = 24
) -> Path:
    """Many MatMuls in a chain, for latency; it predicts the same classes as linear_classifier.

    The hidden layers are identity matrices, so the answer does not change with depth while
    the work per row grows with `layers * hidden^2`.
    """
    first = np.zeros((features, hidden), dtype=np.float32)
    first[:, :features] = np.eye(features, dtype=np.float32)
    last = np.zeros((hidden, classes), dtype=np.float32)
    last[:features, :] = permutation_weights(features, classes)
    eye = np.eye(hidden, dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W_in"], ["h0"])]
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "W_hidden"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{layers}", "W_out"], ["scores"]))
    graph = helper.make_graph(
        nodes,
        "slow_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        initializer=[
            numpy_helper.from_array(first, "W_in"),
            numpy_helper.from_array(eye, "W_hidden"),
            numpy_helper.from_array(last, "W_out"),
        ],
    )
    return _save(graph, path)


def two_input_model(path: Path, features: int = 2) -> Path:
    """A model with two inputs (the validator feeds one matrix and must refuse it)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", features]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", features]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", features])],
    )
    return _save(graph, path)


@dataclass(frozen=True)
class Sample:
    rows: int
    right: int
    features: list[str]
    label_column: str

    @property
    def accuracy(self) -> float:
        return self.right / self.rows


def sample_rows(
    rows: int, right: int, features: int = 4, classes: int = 3, *, seed: int = 7
) -> list[tuple[list[float], int]]:
    """(features, label) pairs: exactly `right` rows whose label is the class the model predicts.

    A row of class k has its class feature at 2.0..3.0 and every other feature at 0..1, so
    the linear classifier predicts k; a wrong row is labelled (k + 1) % classes instead.
    Which rows are wrong is shuffled.
    """
    if not 0 <= right <= rows:
        raise ValueError("right must be between 0 and rows")
    rnd = random.Random(seed)
    wrong = set(rnd.sample(range(rows), rows - right))
    out: list[tuple[list[float], int]] = []
    for i in range(rows):
        k = rnd.randrange(classes)
        values = [round(rnd.uniform(0.0, 1.0), 4) for _ in range(features)]
        values[class_feature(k, features, classes)] = round(rnd.uniform(2.0, 3.0), 4)
        label = (k + 1) % classes if i in wrong else k
        out.append((values, label))
    return out


def write_csv(
    path: Path,
    rows: int = 100,
    right: int = 90,
    features: int = 4,
    classes: int = 3,
    *,
    label_column: str = "label",
    label_position: int | None = None,
    class_names: list[str] | None = None,
    seed: int = 7,
) -> Sample:
    """A CSV data set for linear_classifier: header row, the label at `label_position`
    (default: in the middle, to prove the other columns are fed in order).
    class_names: write labels as these names instead of class numbers."""
    names = [f"f{i}" for i in range(features)]
    at = features // 2 if label_position is None else label_position
    header = [*names[:at], label_column, *names[at:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for values, label in sample_rows(rows, right, features, classes, seed=seed):
            shown = class_names[label] if class_names else label
            writer.writerow([*values[:at], shown, *values[at:]])
    return Sample(rows, right, names, label_column)


def write_parquet(
    path: Path,
    rows: int = 100,
    right: int = 90,
    features: int = 4,
    classes: int = 3,
    *,
    label_column: str = "label",
    seed: int = 7,
) -> Sample:
    """The same data set as write_csv, as Parquet (needs pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = sample_rows(rows, right, features, classes, seed=seed)
    names = [f"f{i}" for i in range(features)]
    columns: dict[str, list[float] | list[int]] = {
        name: [values[i] for values, _ in data] for i, name in enumerate(names)
    }
    columns[label_column] = [label for _, label in data]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), str(path))
    return Sample(rows, right, names, label_column)
