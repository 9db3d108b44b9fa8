"""Read a data set in chunks of rows: bounded memory, whatever the number of rows.

A CSV data set has a header row; the label column is named by the Dataset manifest and every
other column is a number, fed to the model in order. A Parquet file (needs pyarrow) holds the
same columns. Chunks come as a float64 feature matrix and the labels beside it.

Three CSV readers give the same rows: pyarrow's streaming reader (multi-threaded C++, when
pyarrow is installed), else numpy's number parser on blocks made only of numbers, commas and
line breaks, and Python's csv module, the reference. Any block a fast reader rejects or cannot
read exactly as the csv module would (an empty cell, a ragged row, a quote, a non-finite
number, for numpy any text label) makes it stop with `NeedExactReader`; the caller then
starts over with the csv-module reader, which either reads the row or names it in the error.
So a fast path only ever speeds up files that are read the same way by all.

Errors never quote the file: they name the line or row and the column (by name only when it
is a short identifier), see bot.messages.dataset.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.messages import dataset as say

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Chunk", "DatasetError", "NeedExactReader", "is_parquet", "read_chunks"]

# Rows per chunk on the csv-module path, and bytes per block on pyarrow's and numpy's.
CHUNK_ROWS = 65_536
ARROW_BLOCK_BYTES = 1 << 22
NUMPY_BLOCK_BYTES = 1 << 22
# The bytes numpy's reader accepts: decimal numbers, commas, spaces and line breaks.
_NUMERIC_BYTES = b"0123456789.eE+-, \t\r\n"


class DatasetError(ValueError):
    """The data set cannot be read; the message names the file, line or row, never content."""


class NeedExactReader(Exception):
    """The fast reader met something it does not read exactly like the csv module."""


@dataclass(frozen=True)
class Chunk:
    """Rows first_row.. of the data set (1-based data rows, the header not counted).

    numbers: the labels as float64 when every label of the chunk is a finite number, else None.
    text: the labels as stripped text; None when they are all numbers and the reader did not
    need the text (pyarrow's CSV reader, a Parquet numeric column).
    lines: for CSV read by the csv module, the file line of each row (errors name lines, as
    an editor shows them). fast: read by pyarrow's CSV reader, which knows no line numbers; a
    caller that finds an error in such a chunk raises NeedExactReader to have it named.
    """

    x: npt.NDArray[Any]
    numbers: npt.NDArray[Any] | None
    text: npt.NDArray[Any] | None
    first_row: int
    lines: npt.NDArray[Any] | None = None
    fast: bool = False

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, n: int) -> Chunk:
        """The chunk's first n rows."""
        return Chunk(
            self.x[:n],
            None if self.numbers is None else self.numbers[:n],
            None if self.text is None else self.text[:n],
            self.first_row,
            None if self.lines is None else self.lines[:n],
            self.fast,
        )

    def where(self, i: int) -> str:
        """'line 7' (CSV) or 'row 6' (Parquet) for the chunk's i-th row."""
        if self.lines is not None:
            return f"line {int(self.lines[i])}"
        return f"row {self.first_row + i}"

    def first_bad_label(self) -> int | None:
        """Index of the first label that is not a finite number (None: all are)."""
        if self.numbers is not None:
            return None
        assert self.text is not None
        for i, label in enumerate(self.text):
            try:
                value = float(label)
            except ValueError:
                return i
            if not math.isfinite(value):
                return i
        return None


@dataclass(frozen=True)
class Header:
    names: list[str]
    label_at: int
    lines: int  # physical lines up to and including the header

    @property
    def features(self) -> list[str]:
        return [n for i, n in enumerate(self.names) if i != self.label_at]


def is_parquet(path: Path) -> bool:
    """Is the data set Parquet (by name or by its magic bytes)? Raises DatasetError when the
    file cannot be read at all."""
    if not path.is_file():
        raise DatasetError(f"{path}: the data set file does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PAR1"
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the data set: {exc.strerror or 'error'}") from None


def read_chunks(path: Path, label_column: str, *, exact: bool = False) -> Iterator[Chunk]:
    """The data set's rows in chunks. `exact` forces the csv-module reader for CSV."""
    if is_parquet(path):
        return _parquet_chunks(path, label_column)
    header = _read_header(path, label_column)
    if exact:
        return _csv_chunks(path, header)
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return _numpy_chunks(path, header)
    return _arrow_chunks(path, header)


def feature_count(path: Path, label_column: str) -> int:
    """How many feature columns the data set has (reads the header or the schema only)."""
    if is_parquet(path):
        return len(_parquet_features(_parquet_file(path), path, label_column))
    return len(_read_header(path, label_column).features)


# --- CSV --------------------------------------------------------------------------------------


def _open_text(path: Path) -> Any:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the data set: {exc.strerror or 'error'}") from None


def _read_header(path: Path, label_column: str) -> Header:
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)
        except csv.Error:
            raise DatasetError(f"{path}:{reader.line_num}: the header is not valid CSV") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text: {exc.reason}") from None
        if header is None:
            raise DatasetError(f"{path}: the data set is empty (no header row)")
        names = [cell.strip() for cell in header]
        line = reader.line_num
    if label_column not in names:
        raise DatasetError(
            f"{path}:{line}: no label column {label_column!r} in the header; "
            f"the header has {say.columns(names)}"
        )
    if names.count(label_column) > 1:
        raise DatasetError(f"{path}:{line}: the label column {label_column!r} appears twice")
    label_at = names.index(label_column)
    if len(names) < 2:
        raise DatasetError(f"{path}: no feature columns besides the label {label_column!r}")
    return Header(names, label_at, line)


def _csv_chunks(path: Path, header: Header) -> Iterator[Chunk]:
    import numpy as np

    names, label_at = header.names, header.label_at
    width = len(names)
    feature_at = [i for i in range(width) if i != label_at]
    row_number = 1
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            # Skip the header and any blank lines before it (whole records, as csv reads them).
            while reader.line_num < header.lines:
                next(reader)
            while True:
                x = np.empty((CHUNK_ROWS, width - 1), dtype=np.float64)
                labels: list[str] = []
                lines: list[int] = []
                for record in reader:
                    if not record or not any(cell.strip() for cell in record):
                        continue
                    line = reader.line_num
                    if len(record) != width:
                        raise DatasetError(
                            f"{path}:{line}: {len(record)} cells, but the header has {width} columns"
                        )
                    row = x[len(labels)]
                    for j, i in enumerate(feature_at):
                        row[j] = _float_cell(record[i], path, line, names[i], i)
                    labels.append(record[label_at].strip())
                    lines.append(line)
                    if len(labels) == CHUNK_ROWS:
                        break
                if not labels:
                    break
                text = np.asarray(labels, dtype=object)
                yield Chunk(
                    x[: len(labels)],
                    _numbers_of(text),
                    text,
                    row_number,
                    np.asarray(lines, dtype=np.int64),
                )
                row_number += len(labels)
        except csv.Error:
            raise DatasetError(f"{path}:{reader.line_num}: not valid CSV") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if row_number == 1:
        raise DatasetError(f"{path}: the data set has no rows (only a header)")


def _float_cell(cell: str, path: Path, line: int, name: str, index: int) -> float:
    text = cell.strip()
    where = say.column(name, index)
    if not text:
        raise DatasetError(f"{path}:{line}: {where}: an empty cell is not a number")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"{path}:{line}: {where}: not a number (every column but the label must be a number)"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(f"{path}:{line}: {where}: not a finite number")
    return value


def _numbers_of(text: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    import numpy as np

    try:
        numbers = text.astype(np.float64)
    except ValueError:
        return None
    return numbers if bool(np.isfinite(numbers).all()) else None


def _arrow_chunks(path: Path, header: Header) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(len(header.names))]
    label = names[header.label_at]
    features = [n for i, n in enumerate(names) if i != header.label_at]
    types = {n: pa.float64() for n in features}
    types[label] = pa.string()
    # A Python file, not the path: arrow then reads as the batches are taken, instead of
    # buffering blocks ahead of a consumer that runs a model on each.
    with path.open("rb") as raw:
        try:
            reader = pacsv.open_csv(
                raw,
                read_options=pacsv.ReadOptions(
                    skip_rows=header.lines, column_names=names, block_size=ARROW_BLOCK_BYTES
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except (pa.ArrowException, OSError):
            raise NeedExactReader from None
        with reader:
            yield from _arrow_batches(reader, features, label)


def _arrow_batches(reader: Any, features: list[str], label: str) -> Iterator[Chunk]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    row_number = 1
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowException, OSError):
            # Arrow's messages quote the offending cell: never shown, the exact reader
            # names the line instead.
            raise NeedExactReader from None
        if batch.num_rows == 0:
            continue
        x = np.column_stack(
            [batch.column(n).to_numpy(zero_copy_only=False) for n in features]
        ).astype(np.float64, copy=False)
        if not bool(np.isfinite(x).all()):
            raise NeedExactReader
        text_arrow = pc.utf8_trim_whitespace(batch.column(label))
        try:
            numbers = pc.cast(text_arrow, pa.float64()).to_numpy(zero_copy_only=False)
            if not bool(np.isfinite(numbers).all()):
                numbers = None
        except pa.ArrowException:
            numbers = None
        text = None  # numbers are enough; a Python str per row is slow and big
        if numbers is None:
            text = text_arrow.to_numpy(zero_copy_only=False)
            numbers = _numbers_of(text)  # Python's float() reads a few more spellings
        yield Chunk(x, numbers, text, row_number, fast=True)
        row_number += batch.num_rows
    if row_number == 1:
        raise NeedExactReader  # the exact reader says why there are no rows


def _numpy_chunks(path: Path, header: Header) -> Iterator[Chunk]:
    import warnings

    import numpy as np

    allowed = np.zeros(256, dtype=bool)
    allowed[np.frombuffer(_NUMERIC_BYTES, dtype=np.uint8)] = True
    width = len(header.names)
    row_number = 1
    with path.open("rb") as raw:
        for _ in range(header.lines):
            raw.readline()
        while True:
            block = raw.read(NUMPY_BLOCK_BYTES)
            if not block:
                break
            if not block.endswith(b"\n"):
                block += raw.readline()
                if not block.endswith(b"\n"):
                    block += b"\n"  # the last line of a file without a final line break
            data = np.frombuffer(block, dtype=np.uint8)
            if not bool(allowed[data].all()):
                raise NeedExactReader
            # Every line holds exactly width - 1 commas (blank and ragged lines go exact).
            ends = np.flatnonzero(data == 10)
            commas = np.searchsorted(np.flatnonzero(data == 44), ends)
            if not bool((np.diff(commas, prepend=0) == width - 1).all()):
                raise NeedExactReader
            try:
                with warnings.catch_warnings():
                    # numpy stops quietly at text it cannot read, with a warning: an error here.
                    warnings.simplefilter("error")
                    # (fromstring's text mode, unlike its binary one, is not deprecated)
                    values = np.fromstring(block.replace(b"\n", b","), dtype=np.float64, sep=",")
            except (ValueError, DeprecationWarning):
                raise NeedExactReader from None
            rows = int(ends.shape[0])
            if values.shape[0] != rows * width:
                raise NeedExactReader
            table = values.reshape(rows, width)
            if not bool(np.isfinite(table).all()):
                raise NeedExactReader
            x = np.delete(table, header.label_at, axis=1)
            yield Chunk(x, table[:, header.label_at].copy(), None, row_number, fast=True)
            row_number += rows
    if row_number == 1:
        raise NeedExactReader  # the exact reader says why there are no rows


# --- Parquet ----------------------------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            f"{path}: reading Parquet data sets needs pyarrow; pip install 'aimodel-gitops[parquet]'"
        ) from None
    try:
        return pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException):
        raise DatasetError(f"{path}: not a readable Parquet file") from None


def _parquet_features(parquet: Any, path: Path, label_column: str) -> list[str]:
    """The feature columns, after checking the label column is there and the rest are numbers."""
    import pyarrow as pa

    schema = parquet.schema_arrow
    names = list(schema.names)
    if label_column not in names:
        raise DatasetError(
            f"{path}: no label column {label_column!r}; the file has {say.columns(names)}"
        )
    features = [n for n in names if n != label_column]
    if not features:
        raise DatasetError(f"{path}: no feature columns besides the label {label_column!r}")
    for name in features:
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            where = say.column(name, names.index(name))
            raise DatasetError(
                f"{path}: {where} is {kind}, not a number "
                "(every column but the label must be a number)"
            )
    return features


def _parquet_chunks(path: Path, label_column: str) -> Iterator[Chunk]:
    import numpy as np
    import pyarrow as pa

    parquet = _parquet_file(path)
    features = _parquet_features(parquet, path, label_column)
    schema = parquet.schema_arrow
    names = list(schema.names)
    label_kind = schema.field(label_column).type
    numeric_label = (
        pa.types.is_integer(label_kind)
        or pa.types.is_floating(label_kind)
        or pa.types.is_boolean(label_kind)
    )
    row_number = 1
    try:
        batches = parquet.iter_batches(batch_size=CHUNK_ROWS)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            x = np.empty((batch.num_rows, len(features)), dtype=np.float64)
            for j, name in enumerate(features):
                column = batch.column(name)
                if column.null_count:
                    bad = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                    where = say.column(name, names.index(name))
                    raise DatasetError(f"{path}: row {row_number + bad}: {where} is empty (null)")
                x[:, j] = column.to_numpy(zero_copy_only=False).astype(np.float64)
            finite = np.isfinite(x)
            if not bool(finite.all()):
                bad_row, bad_col = (int(v) for v in np.argwhere(~finite)[0])
                where = say.column(features[bad_col], names.index(features[bad_col]))
                raise DatasetError(
                    f"{path}: row {row_number + bad_row}: {where} is not a finite number"
                )
            labels = batch.column(label_column)
            if labels.null_count:
                bad = int(np.flatnonzero(labels.is_null().to_numpy(zero_copy_only=False))[0])
                raise DatasetError(
                    f"{path}: row {row_number + bad}: the label {label_column!r} is empty"
                )
            if numeric_label:
                numbers = labels.to_numpy(zero_copy_only=False).astype(np.float64)
                if not bool(np.isfinite(numbers).all()):
                    bad = int(np.flatnonzero(~np.isfinite(numbers))[0])
                    raise DatasetError(
                        f"{path}: row {row_number + bad}: the label is not a finite number"
                    )
                yield Chunk(x, numbers, None, row_number)
            else:
                text = np.asarray(
                    [str(v).strip() for v in labels.to_pylist()], dtype=object
                )
                yield Chunk(x, _numbers_of(text), text, row_number)
            row_number += batch.num_rows
    except pa.ArrowException:
        raise DatasetError(f"{path}: not a readable Parquet file") from None
    if row_number == 1:
        raise DatasetError(f"{path}: the data set has no rows")
