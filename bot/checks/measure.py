"""Measure a model on its data set: quality, latency, throughput and size, measured, not declared.

ONNX models are run with onnxruntime (CPU, one intra-op thread, so latency is stable) on the
data set tied to the model (CSV or Parquet, read in chunks by bot.checks.dataset). Every row
of the data set goes through the model for the quality metrics (bot.checks.quality); latency
is timed on a sample of the first rows. What the model is comes from its first output: a
label vector ([rows] or [rows, 1] of integers or strings) or a score matrix ([rows,
classes]: probabilities or logits, whose argmax is the class number) makes a classifier;
one float per row ([rows] or [rows, 1]) makes a regressor. A classifier that gives labels
first may give its scores as a second [rows, classes] output (scikit-learn converters do).
Formats that cannot be run safely (pickle, joblib, torch, keras, ...) are "not measured":
only their size is. onnxruntime, numpy and pyarrow are imported lazily, inside
`measure_model`, so importing this module (and starting the CLI) stays fast.
"""

from __future__ import annotations

import io
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bot.checks.dataset import Chunk, DatasetError, NeedExactReader, feature_count, read_chunks
from bot.checks.quality import ClassTally, RegressionTally, ScoreStore, class_key, roc_auc

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "LATENCY_ROWS",
    "TIMING_ROWS",
    "MeasureError",
    "Measurement",
    "detect_format",
    "measure_model",
    "percentile",
]

# Rows run one at a time for the per-row latency percentiles (bounded: it is the slow part).
LATENCY_ROWS = 200

INSTALL_HINT = "onnxruntime is not installed; pip install onnxruntime (a dependency of aimodel-gitops)"

# Formats that onnxruntime runs without executing code from the artifact.
RUNNABLE_FORMATS = frozenset({"onnx"})

# Why a format is not run. Anything not listed and not runnable gets a generic reason.
_NOT_RUN_REASONS: dict[str, str] = {
    "pickle": "pickle cannot be run safely (loading it executes code from the file)",
    "joblib": "joblib files are pickles and cannot be run safely (loading executes code)",
    "torch": "PyTorch checkpoints are pickles and cannot be run safely (loading executes code)",
    "keras": "Keras models can hold Python code (Lambda layers) and are not run by the validator",
    "h5": "HDF5/Keras models can hold Python code (Lambda layers) and are not run by the validator",
    "savedmodel": "TensorFlow SavedModels can call arbitrary ops and are not run by the validator",
    "tensorflow": "TensorFlow models can call arbitrary ops and are not run by the validator",
    "safetensors": "safetensors holds weights only, with no graph the validator could run",
    "gguf": "GGUF language models are not run by the validator",
}

_FORMAT_ALIASES: dict[str, str] = {
    "pkl": "pickle",
    "sklearn": "pickle",
    "scikit-learn": "pickle",
    "pytorch": "torch",
    "pt": "torch",
    "pth": "torch",
    "hdf5": "h5",
    "tf": "tensorflow",
    "saved_model": "savedmodel",
}

_SUFFIX_FORMATS: dict[str, str] = {
    ".onnx": "onnx",
    ".ort": "onnx",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "joblib",
    ".pt": "torch",
    ".pth": "torch",
    ".bin": "torch",
    ".keras": "keras",
    ".h5": "h5",
    ".hdf5": "h5",
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".pb": "tensorflow",
}


class MeasureError(ValueError):
    """The model or its data set cannot be measured; the message names the file (and line)."""


@dataclass(frozen=True)
class Measurement:
    """What was measured. `metrics` keys are SLA metric names (`bot.sla`), per-class ones
    written `precision[CLASS]`.

    `measured` is False when the model's format cannot be run safely; then `metrics` holds
    only `size_mb` and `reason` says why. `rows` is how many rows of the data set the quality
    metrics used; `rows_used` says it per metric (latency is timed on a sample). `task` is
    "classifier" or "regressor"; `notes` says why a metric of the other kind, or ROC AUC, is
    not there.
    """

    metrics: dict[str, float]
    rows: int
    measured: bool
    reason: str | None
    model_format: str = field(default="", compare=False)
    task: str = field(default="", compare=False)
    rows_used: dict[str, int] = field(default_factory=dict, compare=False)
    notes: dict[str, str] = field(default_factory=dict, compare=False)
    batch_size: int = field(default=0, compare=False)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks.

    The same definition as numpy's default ("linear", type 7 of Hyndman and Fan).
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    frac = pos - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


# --- format detection -------------------------------------------------------------------------


def _varint(f: BinaryIO) -> int | None:
    result = 0
    for shift in range(0, 70, 7):
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
    return None


def _is_onnx_file(path: Path) -> bool:
    """Does the file parse, at its top level, as a protobuf ONNX ModelProto?

    Walks the top-level fields without reading the (possibly large) graph: every field
    must be well formed and end inside the file, and ir_version (1) and graph (7) must be there.
    """
    size = path.stat().st_size
    if size < 4:
        return False
    seen: set[int] = set()
    with path.open("rb") as f:
        while f.tell() < size:
            key = _varint(f)
            if key is None:
                return False
            number, wire = key >> 3, key & 7
            if number == 0:
                return False
            if wire == 0:
                if _varint(f) is None:
                    return False
            elif wire == 2:
                length = _varint(f)
                if length is None or f.tell() + length > size:
                    return False
                f.seek(length, io.SEEK_CUR)
            elif wire in (1, 5):
                width = 8 if wire == 1 else 4
                if f.tell() + width > size:
                    return False
                f.seek(width, io.SEEK_CUR)
            else:
                return False
            # The known ModelProto fields must have their declared wire types.
            if number in (1, 5) and wire != 0:
                return False
            if number in (2, 3, 4, 6, 7, 8, 14, 20, 25, 26) and wire != 2:
                return False
            seen.add(number)
    return {1, 7} <= seen


def _sniff(path: Path) -> str | None:
    """The format told by the file's first bytes, or None."""
    with path.open("rb") as f:
        head = f.read(16)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if "config.json" in names or any(n.endswith(".weights.h5") for n in names):
            return "keras"
        return None
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= path.stat().st_size - 8:
            return "safetensors"
    if _is_onnx_file(path):
        return "onnx"
    return None


def detect_format(artifact_path: Path, declared: str | None = None) -> str:
    """The model's format, from its bytes first, then the declared format, then its suffix.

    ONNX is recognised by its bytes whatever was declared (running it is safe); a format
    declared as "onnx" is run too (onnxruntime then tells whether the bytes really are ONNX).
    """
    if artifact_path.is_dir():
        if (artifact_path / "saved_model.pb").exists():
            return "savedmodel"
        return _normalise(declared) if declared else "directory"
    sniffed = _sniff(artifact_path)
    if sniffed == "onnx":
        return "onnx"
    if declared:
        name = _normalise(declared)
        if name == "onnx" or sniffed is None:
            return name
    if sniffed:
        return sniffed
    return _SUFFIX_FORMATS.get(artifact_path.suffix.lower(), "unknown")


def _normalise(name: str) -> str:
    key = name.strip().lower().lstrip(".")
    return _FORMAT_ALIASES.get(key, key)


def _size_mb(path: Path) -> float:
    if path.is_dir():
        total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        total = path.stat().st_size
    return total / 1e6


# --- running the model -----------------------------------------------------------------------

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}
_SCORE_TYPES = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})


@dataclass
class _Runner:
    """One onnxruntime session fed a [rows, features] matrix, padded to a fixed batch if needed.

    Runs the first output and, when the model has one, a second [rows, classes] score output
    (a classifier that gives labels and probabilities, as scikit-learn converters make them).
    """

    session: Any
    input_name: str
    output_names: list[str]
    fixed_batch: int | None
    dtype: str

    def __call__(self, x: npt.NDArray[Any]) -> list[Any]:
        import numpy as np

        n = x.shape[0]
        if self.fixed_batch is None or n == self.fixed_batch:
            return list(self.session.run(self.output_names, {self.input_name: x}))
        # A fixed batch dimension: run in chunks of that size, padding the last one.
        parts: list[list[Any]] = []
        for start in range(0, n, self.fixed_batch):
            chunk = x[start : start + self.fixed_batch]
            short = self.fixed_batch - chunk.shape[0]
            if short:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            out = self.session.run(self.output_names, {self.input_name: chunk})
            parts.append([o[: self.fixed_batch - short] for o in out])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]


def _open_session(artifact_path: Path, n_features: int, dataset_path: Path) -> _Runner:
    try:
        import numpy  # noqa: F401  (onnxruntime needs it; fail with one clear message)
        import onnxruntime as ort
    except ImportError:
        raise MeasureError(INSTALL_HINT) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(artifact_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise MeasureError(f"{artifact_path}: onnxruntime cannot load the model: {exc}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise MeasureError(
            f"{artifact_path}: the model has {len(inputs)} inputs ({names}); "
            "the validator feeds one [rows, features] matrix"
        )
    spec = inputs[0]
    dtype = _ORT_DTYPES.get(spec.type)
    if dtype is None:
        raise MeasureError(
            f"{artifact_path}: input {spec.name!r} has type {spec.type}; "
            "the validator feeds numbers (float, double, int)"
        )
    shape = list(spec.shape) if spec.shape is not None else []
    if shape and len(shape) != 2:
        raise MeasureError(
            f"{artifact_path}: input {spec.name!r} has shape {shape}; "
            "the validator feeds a [rows, features] matrix"
        )
    fixed_batch: int | None = None
    if shape:
        if isinstance(shape[0], int) and shape[0] > 0:
            fixed_batch = shape[0]
        if isinstance(shape[1], int) and shape[1] != n_features:
            raise MeasureError(
                f"{dataset_path}: {n_features} feature columns, but the model "
                f"{artifact_path.name} expects {shape[1]} features (input {spec.name!r})"
            )
    outputs = session.get_outputs()
    output_names = [outputs[0].name]
    scores = next(
        (
            o.name
            for o in outputs[1:]
            if o.type in _SCORE_TYPES and o.shape is not None and len(o.shape) == 2
        ),
        None,
    )
    if scores is not None:
        output_names.append(scores)
    return _Runner(session, spec.name, output_names, fixed_batch, dtype)


@dataclass(frozen=True)
class _Outputs:
    """What one run of the model says about its rows.

    kind: "classifier" or "regressor". predicted: class numbers (float64), class names
    (object array of str) or regression values (float64). scores: [rows, classes] or None.
    """

    kind: str
    predicted: npt.NDArray[Any]
    scores: npt.NDArray[Any] | None

    @property
    def names(self) -> bool:
        return self.predicted.dtype.kind == "O"


def _read_outputs(outputs: list[Any], rows: int, artifact_path: Path) -> _Outputs:
    """Classifier or regressor, told by the first output: a label vector (numbers or names) or
    a score matrix [rows, classes] makes a classifier, one float per row a regressor."""
    import numpy as np

    first = outputs[0]
    if isinstance(first, list):  # e.g. a sequence of maps (sklearn-onnx ZipMap)
        raise MeasureError(
            f"{artifact_path}: the model's first output is a sequence, not a label vector "
            "or a score matrix"
        )
    arr = np.asarray(first)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape[:1] != (rows,) or arr.ndim not in (1, 2):
        raise MeasureError(
            f"{artifact_path}: the model's first output has shape {list(np.shape(first))}; "
            f"expected labels [{rows}], scores [{rows}, classes] or one value per row [{rows}]"
        )
    if arr.ndim == 2:
        predicted = np.argmax(arr, axis=1).astype(np.float64)
        return _Outputs("classifier", predicted, arr)
    if arr.dtype.kind == "f":
        return _Outputs("regressor", arr.astype(np.float64), None)
    scores = None
    if len(outputs) > 1:
        extra = np.asarray(outputs[1])
        if extra.ndim == 2 and extra.shape[0] == rows and extra.shape[1] >= 2:
            scores = extra
    if arr.dtype.kind in "iub":
        return _Outputs("classifier", arr.astype(np.float64), scores)
    names = np.asarray([_text(v) for v in arr.tolist()], dtype=object)
    return _Outputs("classifier", names, scores)


def _canonical(names: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Class names, with those that are finite numbers written as class_key writes them."""
    import numpy as np

    out = []
    for name in names.tolist():
        try:
            number = float(name)
        except ValueError:
            out.append(name)
            continue
        out.append(class_key(number) if math.isfinite(number) else name)
    return np.asarray(out, dtype=object)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


# --- one pass over the data set ---------------------------------------------------------------

# Rows per onnxruntime call for the quality metrics (bounds the model's working memory).
QUALITY_BATCH = 8192
# The first rows of the data set, kept to time batches on.
TIMING_ROWS = 10_000

_CLASSIFIER_METRICS = ("accuracy", "pass_rate", "precision_macro", "recall_macro", "f1_macro")
_REGRESSOR_METRICS = ("mae", "rmse", "r2")
_TIMING_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
_BATCH_METRICS = ("batch_latency_p95_ms", "throughput_rps")


@dataclass
class _Pass:
    """The quality figures gathered over the data set's rows, chunk by chunk."""

    artifact_path: Path
    dataset_path: Path
    kind: str = ""
    rows: int = 0
    tally: ClassTally = field(default_factory=ClassTally)
    regression: RegressionTally = field(default_factory=RegressionTally)
    scores: ScoreStore | None = None
    had_scores: bool | None = None

    def add(self, chunk: Chunk, out: _Outputs) -> None:
        import numpy as np

        if self.kind and out.kind != self.kind:
            raise MeasureError(
                f"{self.artifact_path}: the model's output changed kind between rows "
                f"({self.kind}, then {out.kind})"
            )
        self.kind = out.kind
        if out.names:
            # Class names against labels: a name that is a number is compared as a number
            # (1, 1.0 and 01 are one class), whichever reader read the labels.
            if chunk.numbers is not None:
                truth = np.asarray([class_key(v) for v in chunk.numbers.tolist()], dtype=object)
            else:
                assert chunk.text is not None
                truth = _canonical(chunk.text)
            true_ids = self.tally.add(_canonical(out.predicted), truth)
        else:
            bad = chunk.first_bad_label()
            if bad is not None and chunk.fast:
                raise NeedExactReader  # the csv-module reader names the line
            if bad is not None:
                wants = "class numbers" if out.kind == "classifier" else "numbers"
                raise MeasureError(
                    f"{self.dataset_path}: {chunk.where(bad)}: the label is not a number, "
                    f"but the model predicts {wants}"
                )
            assert chunk.numbers is not None
            if out.kind == "regressor":
                self.regression.add(out.predicted, chunk.numbers)
                self.rows += len(chunk)
                return
            true_ids = self.tally.add(out.predicted, chunk.numbers)
        if self.had_scores is None:
            self.had_scores = out.scores is not None
        if out.scores is not None and self.had_scores:
            if self.scores is None:
                self.scores = ScoreStore(int(out.scores.shape[1]))
            self.scores.add(out.scores, true_ids)
        self.rows += len(chunk)

    def metrics(self) -> tuple[dict[str, float], dict[str, str]]:
        """The figures, and why the others of the model's kind were not measured."""
        if self.kind == "regressor":
            note = "not measured: the model is a regressor (one number per row)"
            return self.regression.metrics(), {m: note for m in (*_CLASSIFIER_METRICS, "roc_auc")}
        metrics = self.tally.metrics()
        notes = {
            m: "not measured: the model is a classifier" for m in _REGRESSOR_METRICS
        }
        if self.scores is None:
            notes["roc_auc"] = "not measured: the model gives class labels, no scores"
        else:
            auc, why = roc_auc(self.scores, self.tally)
            if auc is None:
                notes["roc_auc"] = why
            else:
                metrics["roc_auc"] = auc
        return metrics, notes


def measure_model(
    artifact_path: Path,
    dataset_path: Path,
    label_column: str,
    *,
    model_format: str | None = None,
    batch_size: int = 64,
    max_rows: int | None = None,
    warmup: int = 3,
) -> Measurement:
    """Run the model on the data set and measure it.

    size_mb is measured for every format. ONNX models are also run: the quality metrics over
    every row of the data set (or the first `max_rows`), streamed in chunks; per-row latency
    over the first LATENCY_ROWS rows one at a time; batch latency and throughput over the
    first TIMING_ROWS rows in batches of `batch_size`. Other formats come back "not measured"
    with a reason. A bad data set raises MeasureError, which never quotes the file's content.
    """
    artifact_path = Path(artifact_path)
    dataset_path = Path(dataset_path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    if not artifact_path.exists():
        raise MeasureError(f"{artifact_path}: the model artifact does not exist")
    size_mb = _size_mb(artifact_path)
    fmt = detect_format(artifact_path, model_format)
    if fmt not in RUNNABLE_FORMATS:
        reason = _NOT_RUN_REASONS.get(
            fmt, f"{fmt} models are not run by the validator (only ONNX is run)"
        )
        return Measurement({"size_mb": size_mb}, 0, False, f"not measured: {reason}", fmt)
    args = (artifact_path, dataset_path, label_column, batch_size, max_rows, warmup, size_mb, fmt)
    try:
        try:
            return _measure(*args, exact=False)
        except NeedExactReader:
            return _measure(*args, exact=True)
    except DatasetError as exc:
        raise MeasureError(str(exc)) from None


def _measure(
    artifact_path: Path,
    dataset_path: Path,
    label_column: str,
    batch_size: int,
    max_rows: int | None,
    warmup: int,
    size_mb: float,
    fmt: str,
    *,
    exact: bool,
) -> Measurement:
    import numpy as np

    runner = _open_session(artifact_path, feature_count(dataset_path, label_column), dataset_path)

    def run(batch: npt.NDArray[Any]) -> list[Any]:
        try:
            return runner(batch)
        except MeasureError:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            raise MeasureError(
                f"{artifact_path}: onnxruntime failed on {dataset_path.name}: {exc}"
            ) from None

    quality = _Pass(artifact_path, dataset_path)
    sample: list[npt.NDArray[Any]] = []
    sampled = 0
    for chunk in read_chunks(dataset_path, label_column, exact=exact):
        if max_rows is not None and quality.rows + len(chunk) > max_rows:
            chunk = chunk.head(max_rows - quality.rows)
        x = chunk.x.astype(runner.dtype, copy=False)
        if sampled < TIMING_ROWS:
            sample.append(x[: TIMING_ROWS - sampled].copy())
            sampled += sample[-1].shape[0]
        parts = [
            _read_outputs(run(x[s : s + QUALITY_BATCH]), min(QUALITY_BATCH, len(chunk) - s), artifact_path)
            for s in range(0, len(chunk), QUALITY_BATCH)
        ]
        quality.add(chunk, _join(parts))
        if max_rows is not None and quality.rows >= max_rows:
            break
    metrics, notes = quality.metrics()
    timing = np.concatenate(sample)
    timed = _time(run, timing, batch_size, warmup)
    metrics.update(timed)
    metrics["size_mb"] = size_mb
    n, latency_rows = quality.rows, min(timing.shape[0], LATENCY_ROWS)
    rows_used = {name: n for name in metrics if name not in timed and name != "size_mb"}
    rows_used.update({name: latency_rows for name in _TIMING_METRICS})
    rows_used.update({name: int(timing.shape[0]) for name in _BATCH_METRICS})
    return Measurement(
        metrics,
        n,
        True,
        None,
        fmt,
        task=quality.kind,
        rows_used=rows_used,
        notes=notes,
        batch_size=batch_size,
    )


def _join(parts: list[_Outputs]) -> _Outputs:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    kinds = {p.kind for p in parts}
    if len(kinds) != 1 or len({p.names for p in parts}) != 1:
        raise MeasureError("the model's output changed kind between rows")
    scores = None
    if all(p.scores is not None for p in parts):
        scores = np.concatenate([p.scores for p in parts if p.scores is not None])
    return _Outputs(parts[0].kind, np.concatenate([p.predicted for p in parts]), scores)


def _time(
    run: Callable[[npt.NDArray[Any]], list[Any]],
    x: npt.NDArray[Any],
    batch_size: int,
    warmup: int,
) -> dict[str, float]:
    """Per-row latency on the first LATENCY_ROWS rows, then batches over all of `x`."""
    for _ in range(max(0, warmup)):
        run(x[:1])
        run(x[:batch_size])
    row_ms: list[float] = []
    for i in range(min(x.shape[0], LATENCY_ROWS)):
        row = x[i : i + 1]
        start = time.perf_counter_ns()
        run(row)
        row_ms.append((time.perf_counter_ns() - start) / 1e6)
    batch_ms: list[float] = []
    for s in range(0, x.shape[0], batch_size):
        batch = x[s : s + batch_size]
        start = time.perf_counter_ns()
        run(batch)
        batch_ms.append((time.perf_counter_ns() - start) / 1e6)
    total_s = sum(batch_ms) / 1e3
    return {
        "latency_p50_ms": percentile(row_ms, 50),
        "latency_p95_ms": percentile(row_ms, 95),
        "latency_p99_ms": percentile(row_ms, 99),
        "batch_latency_p95_ms": percentile(batch_ms, 95),
        "throughput_rps": x.shape[0] / max(total_s, 1e-9),
    }
