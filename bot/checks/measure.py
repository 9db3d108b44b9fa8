"""Measure a model on its data set: accuracy, latency, throughput and size, measured, not declared.

ONNX models are run with onnxruntime (CPU, one intra-op thread, so latency is stable) on the
data set tied to the model: a CSV file (header row; the label column named by the Dataset
manifest; every other column a float feature, in order) or a Parquet file (needs pyarrow).
The model's first output is either a label vector ([rows] or [rows, 1]; numbers or
strings, compared with the label column) or a score matrix ([rows, classes]: probabilities
or logits, whose argmax is the class number). accuracy = pass_rate = share of rows right.
Formats that cannot be run safely (pickle, joblib, torch, keras, ...) are "not measured":
only their size is. onnxruntime, numpy and pyarrow are imported lazily, inside
`measure_model`, so importing this module (and starting the CLI) stays fast.
"""

from __future__ import annotations

import csv
import io
import math
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "LATENCY_ROWS",
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
    """What was measured. `metrics` keys come from `bot.sla.METRICS`.

    `measured` is False when the model's format cannot be run safely; then `metrics` holds
    only `size_mb` and `reason` says why.
    """

    metrics: dict[str, float]
    rows: int
    measured: bool
    reason: str | None
    model_format: str = field(default="", compare=False)


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


# --- the data set ----------------------------------------------------------------------------


@dataclass
class _Table:
    features: list[str]
    rows: list[list[float]]
    labels: list[object]


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def _read_csv(path: Path, label_column: str, max_rows: int | None) -> _Table:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise MeasureError(f"{path}: cannot read the data set: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)
            if header is None:
                raise MeasureError(f"{path}: the data set is empty (no header row)")
            names = [cell.strip() for cell in header]
            if label_column not in names:
                raise MeasureError(
                    f"{path}:{reader.line_num}: no label column {label_column!r} in the header; "
                    f"columns are: {', '.join(names)}"
                )
            if names.count(label_column) > 1:
                raise MeasureError(
                    f"{path}:{reader.line_num}: the label column {label_column!r} appears twice"
                )
            label_at = names.index(label_column)
            features = [n for i, n in enumerate(names) if i != label_at]
            if not features:
                raise MeasureError(f"{path}: no feature columns besides the label {label_column!r}")
            rows: list[list[float]] = []
            labels: list[object] = []
            for record in reader:
                if max_rows is not None and len(rows) >= max_rows:
                    break
                if not record or not any(cell.strip() for cell in record):
                    continue
                line = reader.line_num
                if len(record) != len(names):
                    raise MeasureError(
                        f"{path}:{line}: {len(record)} cells, but the header has {len(names)} columns"
                    )
                values: list[float] = []
                for i, cell in enumerate(record):
                    if i == label_at:
                        continue
                    values.append(_float_cell(cell, path, line, names[i]))
                rows.append(values)
                labels.append(record[label_at].strip())
        except csv.Error as exc:
            raise MeasureError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise MeasureError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if not rows:
        raise MeasureError(f"{path}: the data set has no rows (only a header)")
    return _Table(features, rows, labels)


def _float_cell(cell: str, path: Path, line: int, column: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        shown = repr(text) if text else "an empty cell"
        raise MeasureError(
            f"{path}:{line}: column {column!r}: {shown} is not a number "
            "(every column but the label must be a number)"
        ) from None
    if not math.isfinite(value):
        raise MeasureError(f"{path}:{line}: column {column!r}: {text!r} is not a finite number")
    return value


def _read_parquet(path: Path, label_column: str, max_rows: int | None) -> _Table:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MeasureError(
            f"{path}: reading Parquet data sets needs pyarrow; pip install 'aimodel-gitops[parquet]'"
        ) from None
    try:
        parquet = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise MeasureError(f"{path}: not a readable Parquet file: {exc}") from None
    schema = parquet.schema_arrow
    names = list(schema.names)
    if label_column not in names:
        raise MeasureError(
            f"{path}: no label column {label_column!r}; columns are: {', '.join(names)}"
        )
    features = [n for n in names if n != label_column]
    if not features:
        raise MeasureError(f"{path}: no feature columns besides the label {label_column!r}")
    for name in features:
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise MeasureError(
                f"{path}: column {name!r} is {kind}, not a number "
                "(every column but the label must be a number)"
            )
    rows: list[list[float]] = []
    labels: list[object] = []
    for batch in parquet.iter_batches(batch_size=4096):
        columns = {name: batch.column(name).to_pylist() for name in names}
        for i in range(batch.num_rows):
            if max_rows is not None and len(rows) >= max_rows:
                break
            row_number = len(rows) + 1
            values: list[float] = []
            for name in features:
                cell = columns[name][i]
                if cell is None or not math.isfinite(float(cell)):
                    raise MeasureError(
                        f"{path}: row {row_number}: column {name!r} is {cell!r}, not a number"
                    )
                values.append(float(cell))
            label = columns[label_column][i]
            if label is None:
                raise MeasureError(f"{path}: row {row_number}: the label {label_column!r} is empty")
            rows.append(values)
            labels.append(label)
        if max_rows is not None and len(rows) >= max_rows:
            break
    if not rows:
        raise MeasureError(f"{path}: the data set has no rows")
    return _Table(features, rows, labels)


def _read_dataset(path: Path, label_column: str, max_rows: int | None) -> _Table:
    if not path.is_file():
        raise MeasureError(f"{path}: the data set file does not exist")
    if _is_parquet(path):
        return _read_parquet(path, label_column, max_rows)
    return _read_csv(path, label_column, max_rows)


# --- running the model -----------------------------------------------------------------------

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}


@dataclass
class _Runner:
    """One onnxruntime session fed a [rows, features] matrix, padded to a fixed batch if needed."""

    session: Any
    input_name: str
    output_name: str
    fixed_batch: int | None
    dtype: str

    def __call__(self, x: npt.NDArray[Any]) -> Any:
        import numpy as np

        n = x.shape[0]
        if self.fixed_batch is None or n == self.fixed_batch:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        # A fixed batch dimension: run in chunks of that size, padding the last one.
        outputs = []
        for start in range(0, n, self.fixed_batch):
            chunk = x[start : start + self.fixed_batch]
            short = self.fixed_batch - chunk.shape[0]
            if short:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            out = self.session.run([self.output_name], {self.input_name: chunk})[0]
            outputs.append(out[: self.fixed_batch - short])
        return np.concatenate(outputs)


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
    output = session.get_outputs()[0]
    return _Runner(session, spec.name, output.name, fixed_batch, dtype)


def _predictions(output: Any, rows: int, artifact_path: Path) -> list[object]:
    """Labels from the model's first output: a label vector, or scores to take the argmax of."""
    import numpy as np

    if isinstance(output, list):  # e.g. a sequence of maps (sklearn-onnx ZipMap)
        raise MeasureError(
            f"{artifact_path}: the model's first output is a sequence, not a label vector "
            "or a score matrix"
        )
    arr = np.asarray(output)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = np.argmax(arr, axis=1)
    if arr.ndim != 1 or arr.shape[0] != rows:
        raise MeasureError(
            f"{artifact_path}: the model's first output has shape {list(np.shape(output))}; "
            f"expected a label vector [{rows}] or scores [{rows}, classes]"
        )
    values: list[object] = arr.tolist()
    return values


def _same(predicted: object, label: object) -> bool:
    if isinstance(predicted, bytes):
        predicted = predicted.decode("utf-8", "replace")
    if isinstance(predicted, str) or (isinstance(label, str) and not _numeric(label)):
        return str(predicted).strip() == str(label).strip()
    if isinstance(predicted, int | float) and _numeric(label):
        return float(predicted) == float(label)  # type: ignore[arg-type]
    return predicted == label


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _check_labels(predicted: list[object], labels: list[object], dataset_path: Path) -> None:
    """A numeric prediction against labels that are not numbers cannot be compared."""
    if predicted and not isinstance(predicted[0], str | bytes):
        bad = next((i for i, lab in enumerate(labels) if not _numeric(lab)), None)
        if bad is not None:
            raise MeasureError(
                f"{dataset_path}: row {bad + 1}: label {labels[bad]!r} is not a number, "
                "but the model predicts class numbers"
            )


def _batches(x: npt.NDArray[Any], size: int) -> Iterator[npt.NDArray[Any]]:
    for start in range(0, x.shape[0], size):
        yield x[start : start + size]


def measure_model(
    artifact_path: Path,
    dataset_path: Path,
    label_column: str,
    *,
    model_format: str | None = None,
    batch_size: int = 64,
    max_rows: int | None = 10_000,
    warmup: int = 3,
) -> Measurement:
    """Run the model on the data set and measure it.

    size_mb is measured for every format. ONNX models are also run: accuracy (= pass_rate)
    over the first `max_rows` rows, per-row latency over up to LATENCY_ROWS rows one at a
    time, batch latency and throughput over batches of `batch_size`. Other formats come
    back "not measured" with a reason. A bad data set raises MeasureError.
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

    table = _read_dataset(dataset_path, label_column, max_rows)
    runner = _open_session(artifact_path, len(table.features), dataset_path)
    import numpy as np

    x = np.asarray(table.rows, dtype=runner.dtype)
    n = x.shape[0]

    def run(batch: npt.NDArray[Any]) -> Any:
        try:
            return runner(batch)
        except MeasureError:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            raise MeasureError(
                f"{artifact_path}: onnxruntime failed on {dataset_path.name}: {exc}"
            ) from None

    for _ in range(max(0, warmup)):
        run(x[:1])
        run(x[:batch_size])

    # Per row, one at a time.
    row_ms: list[float] = []
    for i in range(min(n, LATENCY_ROWS)):
        row = x[i : i + 1]
        start = time.perf_counter_ns()
        run(row)
        row_ms.append((time.perf_counter_ns() - start) / 1e6)

    # In batches: predictions for accuracy, batch latency, throughput.
    outputs: list[Any] = []
    batch_ms: list[float] = []
    for batch in _batches(x, batch_size):
        start = time.perf_counter_ns()
        outputs.append(run(batch))
        batch_ms.append((time.perf_counter_ns() - start) / 1e6)
    output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
    predicted = _predictions(output, n, artifact_path)
    _check_labels(predicted, table.labels, dataset_path)
    right = sum(1 for p, lab in zip(predicted, table.labels, strict=True) if _same(p, lab))
    accuracy = right / n
    total_s = sum(batch_ms) / 1e3
    metrics = {
        "accuracy": accuracy,
        "pass_rate": accuracy,
        "latency_p50_ms": percentile(row_ms, 50),
        "latency_p95_ms": percentile(row_ms, 95),
        "latency_p99_ms": percentile(row_ms, 99),
        "batch_latency_p95_ms": percentile(batch_ms, 95),
        "throughput_rps": n / max(total_s, 1e-9),
        "size_mb": size_mb,
    }
    return Measurement(metrics, n, True, None, fmt)
