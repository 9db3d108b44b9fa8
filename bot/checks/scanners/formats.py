"""Format detection and the per-format parsers (all byte-level, all streaming)."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from typing import IO, Any

from ..scan_report import Finding
from .pickle_vm import TORCH_LEGACY_MAGIC, PickleContext, torch_storage_bytes, walk_pickle
from .source import CannotVerify, LazyRe, Source, Truncated

NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
GGUF_MAGIC = b"GGUF"
SMALL_ZIP = 8 << 20  # archives up to this size are read into memory once
MAX_JSON = 64 << 20  # a safetensors header or keras config larger than this is not read
_PICKLE0_STARTS = frozenset(b"(]})cIJKLMNFGSVXUTP\x80")


def _finding(
    ctx: PickleContext, name: str, severity: str, message: str, offset: int | None
) -> None:
    ctx.findings.append(Finding(ctx.path, offset, ctx.fmt, name, severity, message))


# --------------------------------------------------------------------------- detection


def sniff(head: bytes) -> str:
    """The format the first bytes announce (``"unknown"`` if none)."""
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= struct.unpack_from("<Q", head)[0] <= MAX_JSON:
        return "safetensors"
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):  # LZMA "alone" (joblib's compress="lzma")
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head[:1] and head[0] in (0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0xA2):
        return "onnx?"
    if head[:1] and head[0] in _PICKLE0_STARTS:
        return "pickle0?"
    return "unknown"


def guess_type(head: bytes) -> str:
    """What an unrecognised file looks like, in words. Never the bytes themselves: a person
    may point the scanner at a secret (a key, /etc/shadow) and read the report."""
    if not head:
        return "empty"
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    if head.startswith((b"MZ", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")):
        return "an executable"
    if head.startswith(b"#!"):
        return "a script"
    if head.startswith(b"-----BEGIN"):
        return "PEM text (a key or certificate)"
    if head.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "a document or image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return "JSON or other text"
    return "text" if text.isprintable() or "\n" in text else "binary data"


def tar_at_start(head: bytes) -> bool:
    """tarfile's own test of a first header (``TarInfo.frombuf``): 512 bytes, not all zeros,
    and the checksum field, read as ``tarfile.nti`` reads it, equal to the unsigned or signed
    byte sum. The same reading as tarfile's, or a file it opens would pass as something else."""
    if len(head) < 512:
        return False
    block = head[:512]
    field = block[148:156]
    if block.count(0) == 512:
        return False
    chksum = _tar_number(field)
    if chksum is None:
        return False
    unsigned = 256 + sum(block) - sum(field)
    high = len(block.translate(None, _LOW)) - len(field.translate(None, _LOW))
    return chksum in (unsigned, unsigned - 256 * high)


def _tar_number(field: bytes) -> int | None:
    """``tarfile.nti``: base-256 after a 0o200/0o377 byte, else octal text up to the first NUL
    (``int(text.strip() or "0", 8)``: whitespace, a sign, underscores and "0o" included)."""
    if field[0] in (0o200, 0o377):
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[0] == 0o377 else n
    text = field.split(b"\x00", 1)[0]
    if text.translate(None, _OCTAL_TEXT):
        return None  # a byte int(text, 8) refuses: no exception on the common path
    try:
        return int(text.decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        return None


_LOW = bytes(range(128))
_OCTAL_TEXT = b"01234567_+-oO \t\n\r\x0b\x0c"
EOCD = b"PK\x05\x06"
ZIP_TAIL = 22 + 0xFFFF  # an end record with the longest comment: Python's zipfile looks here
HDF5_OFFSETS = tuple(512 << i for i in range(40))  # where HDF5 looks for its superblock


# --------------------------------------------------------------------------- pickle


def scan_pickle_stream(src: Source, ctx: PickleContext, *, first_only: bool = False) -> str:
    """Every pickle in the stream (concatenated ones too); the legacy torch layout as well."""
    first = walk_pickle(src, ctx)
    if first == TORCH_LEGACY_MAGIC and type(first) is int:
        ctx.fmt = "torch-legacy"
        walk_pickle(src, ctx)  # protocol version
        walk_pickle(src, ctx)  # sys info
        ctx.persids = {}
        walk_pickle(src, ctx)  # the model
        walk_pickle(src, ctx)  # storage keys
        expected = torch_storage_bytes(ctx.persids)
        rest = src.remaining()
        if expected is None:
            raise CannotVerify("legacy torch file with storages of unknown element size")
        if rest is not None and rest != expected:
            raise CannotVerify(
                f"legacy torch file: {rest} bytes follow the pickles, the storages need {expected}"
            )
        if rest is None:
            src.skip(expected)
            if not src.at_eof():
                raise CannotVerify("legacy torch file: data after the storages")
        return ctx.fmt
    if first_only:
        return ctx.fmt
    while not src.at_eof():
        walk_pickle(src, ctx)
    return ctx.fmt


# --------------------------------------------------------------------------- numpy .npy


_DESCR = LazyRe(r"^[<>|=]?([a-zA-Z?])(\d*)(?:\[[a-zA-Z0-9]+\])?$")


def _descr_info(descr: Any) -> tuple[int, bool]:
    """(itemsize, hasobject) of an .npy header ``descr``."""
    if isinstance(descr, str):
        m = _DESCR.match(descr)
        if m is None:
            raise CannotVerify(f"npy dtype {descr!r} not understood")
        kind, digits = m.group(1), m.group(2)
        if kind == "O":
            return 8, True
        if kind in "?b" and not digits:
            return 1, False
        if not digits:
            raise CannotVerify(f"npy dtype {descr!r} without a size")
        n = int(digits)
        return (n * 4 if kind == "U" else n), False
    if isinstance(descr, list):
        total = 0
        obj = False
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                raise CannotVerify("npy structured dtype not understood")
            size, o = _descr_info(field[1])
            count = 1
            if len(field) == 3:
                shape = field[2]
                for x in shape if isinstance(shape, tuple) else (shape,):
                    if not isinstance(x, int) or x < 0:
                        raise CannotVerify("npy sub-array shape not understood")
                    count *= x
            total += size * count
            obj = obj or o
        return total, obj
    raise CannotVerify("npy dtype not understood")


# The header numpy writes: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
_NPY_HEADER = LazyRe(
    r"\{'descr': '([^'\\]*)', 'fortran_order': (True|False), 'shape': \(([0-9, ]*)\), \}\s*"
)


def _npy_header(text: str) -> Any:
    m = _NPY_HEADER.fullmatch(text)
    if m is not None:  # the common case, without the cost of ast
        dims = [d.strip() for d in m.group(3).split(",")]
        if dims and dims[-1] == "":
            dims.pop()
        if all(d.isdigit() for d in dims):
            return {"descr": m.group(1), "fortran_order": m.group(2) == "True",
                    "shape": tuple(int(d) for d in dims)}  # fmt: skip
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise CannotVerify(f"npy header is not a Python literal: {exc}") from exc


def scan_npy(src: Source, ctx: PickleContext) -> str:
    ctx.fmt = "npy"
    magic = src.read(8)
    if not magic.startswith(NPY_MAGIC):
        raise CannotVerify("not an npy file")
    major = magic[6]
    if major == 1:
        hlen = struct.unpack("<H", src.read(2))[0]
    elif major in (2, 3):
        hlen = struct.unpack("<I", src.read(4))[0]
    else:
        raise CannotVerify(f"npy format version {major} not supported")
    if hlen > 1 << 20:
        raise CannotVerify("npy header too large")
    raw = src.read(hlen)
    header = _npy_header(raw.decode("utf-8" if major == 3 else "latin-1"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise CannotVerify("npy header keys are not descr/fortran_order/shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise CannotVerify("npy shape not understood")
    itemsize, hasobject = _descr_info(header["descr"])
    if hasobject:
        ctx.fmt = "npy-object"
        ctx.plain = True  # np.load reads it with pickle.load: no joblib array records
        scan_pickle_stream(src, ctx, first_only=True)
        if not src.at_eof():
            raise CannotVerify("data after the pickled object array")
        return ctx.fmt
    count = 1
    for x in shape:
        count *= x
    need = count * itemsize
    rest = src.remaining()
    if rest is not None and rest != need:
        raise CannotVerify(f"npy data is {rest} bytes, the header says {need}")
    if rest is None:
        src.skip(need)
        if not src.at_eof():
            raise CannotVerify("data after the npy array")
    return ctx.fmt


# --------------------------------------------------------------------------- safetensors

_ST_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64,
    "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise CannotVerify(f"duplicate key {k!r} in JSON header")
        out[k] = v
    return out


def scan_safetensors(src: Source, ctx: PickleContext) -> str:
    ctx.fmt = "safetensors"
    n = struct.unpack("<Q", src.read(8))[0]
    rest = src.remaining()
    if n > MAX_JSON or (rest is not None and n > rest):
        raise CannotVerify(f"safetensors header length {n} is larger than the file allows")
    raw = src.read(n)
    import json

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dupes)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CannotVerify(f"safetensors header is not valid JSON: {exc}") from exc
    if not raw.startswith(b"{") or not isinstance(header, dict):
        raise CannotVerify("safetensors header is not a JSON object")
    data_size = src.remaining()
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CannotVerify("safetensors __metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise CannotVerify(f"tensor {name!r}: entry must have dtype, shape, data_offsets")
        bits = _ST_BITS.get(info["dtype"])
        if bits is None:
            raise CannotVerify(f"tensor {name!r}: unknown dtype {info['dtype']!r}")
        shape = info["shape"]
        offs = info["data_offsets"]
        if not isinstance(shape, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape
        ):
            raise CannotVerify(f"tensor {name!r}: bad shape")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in offs)
            or not 0 <= offs[0] <= offs[1]
        ):
            raise CannotVerify(f"tensor {name!r}: bad data_offsets")
        count = 1
        for x in shape:
            count *= x
        if (count * bits + 7) // 8 != offs[1] - offs[0]:
            raise CannotVerify(f"tensor {name!r}: {offs[1] - offs[0]} bytes for shape {shape}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            what = "overlaps the previous one" if begin < cursor else "leaves a gap before it"
            raise CannotVerify(f"tensor {name!r} {what} (offset {begin}, expected {cursor})")
        cursor = end
    if data_size is not None and cursor != data_size:
        raise CannotVerify(f"tensors cover {cursor} bytes, the data section has {data_size}")
    if data_size is None:
        src.skip(cursor)
        if not src.at_eof():
            raise CannotVerify("data after the last tensor")
    return ctx.fmt


# --------------------------------------------------------------------------- GGUF

_GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# ggml type -> (block bytes, block elements)
_GGML = {
    0: (4, 1), 1: (2, 1), 2: (18, 32), 3: (20, 32), 6: (22, 32), 7: (24, 32), 8: (34, 32),
    9: (36, 32), 10: (84, 256), 11: (110, 256), 12: (144, 256), 13: (176, 256),
    14: (210, 256), 15: (292, 256), 16: (66, 256), 17: (74, 256), 18: (98, 256),
    19: (50, 256), 20: (18, 32), 21: (110, 256), 22: (82, 256), 23: (136, 256), 24: (1, 1),
    25: (2, 1), 26: (4, 1), 27: (8, 1), 28: (8, 1), 29: (56, 256), 30: (2, 1),
}  # fmt: skip
_JINJA_RISK = LazyRe(
    r"__(class|globals|builtins|subclasses|init|mro|base|import)__|\b(os|subprocess)\.|popen|cycler|joiner|lipsum"
)


def scan_gguf(src: Source, ctx: PickleContext) -> str:
    ctx.fmt = "gguf"
    size = src.remaining() or 0
    if src.read(4) != GGUF_MAGIC:
        raise CannotVerify("not a GGUF file")
    version = struct.unpack("<I", src.read(4))[0]
    if version not in (1, 2, 3):
        raise CannotVerify(f"GGUF version {version} not supported")
    if version == 1:
        n_tensors, n_kv = struct.unpack("<II", src.read(8))
    else:
        n_tensors, n_kv = struct.unpack("<QQ", src.read(16))
    if n_kv * 13 > size or n_tensors * 24 > size:
        raise CannotVerify(f"GGUF counts ({n_tensors} tensors, {n_kv} keys) too large for the file")
    u64 = "<I" if version == 1 else "<Q"
    ulen = 4 if version == 1 else 8

    def read_str(limit: int = 1 << 20, keep: bool = True) -> str:
        n = struct.unpack(u64, src.read(ulen))[0]
        if n > size:
            raise CannotVerify("GGUF string longer than the file")
        if not keep or n > limit:
            src.skip(n)
            return ""
        return src.read(n).decode("utf-8", "replace")

    def read_value(vtype: int, keep: bool) -> Any:
        if vtype in _GGUF_SCALAR:
            raw = src.read(_GGUF_SCALAR[vtype])
            if vtype in (4, 5, 10, 11):
                return int.from_bytes(raw, "little", signed=vtype in (5, 11))
            if vtype in (0, 1, 2, 3):
                return int.from_bytes(raw, "little", signed=vtype in (1, 3))
            return None
        if vtype == 8:
            return read_str(limit=1 << 20, keep=keep)
        if vtype == 9:
            etype = struct.unpack("<I", src.read(4))[0]
            count = struct.unpack(u64, src.read(ulen))[0]
            if count > size:
                raise CannotVerify("GGUF array longer than the file")
            if etype in _GGUF_SCALAR:
                src.skip(count * _GGUF_SCALAR[etype])
            else:
                for _ in range(count):
                    read_value(etype, False)
            return None
        raise CannotVerify(f"GGUF value type {vtype} unknown")

    alignment = 32
    for _ in range(n_kv):
        key = read_str(limit=1 << 16)
        vtype = struct.unpack("<I", src.read(4))[0]
        value = read_value(vtype, keep=True)
        if key == "general.alignment" and isinstance(value, int):
            if value <= 0 or value & (value - 1):
                raise CannotVerify("GGUF alignment is not a power of two")
            alignment = value
        if key.startswith("tokenizer.chat_template") and isinstance(value, str):
            m = _JINJA_RISK.search(value)
            if m is not None:
                _finding(
                    ctx,
                    key,
                    "high",
                    f"chat template reaches Python internals ({m.group(0)!r}): a Jinja "
                    "sandbox escape runs code when the template is rendered",
                    None,
                )
    tensors: list[tuple[int, int | None]] = []
    for _ in range(n_tensors):
        read_str(limit=1 << 16)
        n_dims = struct.unpack("<I", src.read(4))[0]
        if n_dims > 8:
            raise CannotVerify("GGUF tensor with more than 8 dimensions")
        dims = struct.unpack(f"<{n_dims}{'I' if version == 1 else 'Q'}", src.read(n_dims * ulen))
        ttype, offset = struct.unpack("<IQ", src.read(12))
        count = 1
        for x in dims:
            count *= x
        blk = _GGML.get(ttype)
        nbytes = None if blk is None else (count + blk[1] - 1) // blk[1] * blk[0]
        tensors.append((offset, nbytes))
    here = src.tell() - src.base
    data_start = (here + alignment - 1) // alignment * alignment
    data_size = size - data_start
    for offset, nbytes in tensors:
        if (
            offset % alignment
            or offset > data_size
            or (nbytes is not None and offset + nbytes > data_size)
        ):
            raise CannotVerify(f"GGUF tensor at data offset {offset} lies outside the file")
    return ctx.fmt


# --------------------------------------------------------------------------- HDF5 (Keras .h5)

# HDF5 is parsed by a C library (libhdf5, through h5py) that a crafted file can crash: it runs
# in a child process, so a crash blocks the file instead of killing the scanner (or the worker).
_H5_CHILD = r"""
import json, sys
import h5py
path, limit = sys.argv[1], int(sys.argv[2])
out = {}
try:
    with h5py.File(path, "r") as h5:
        for k in ("model_config", "training_config"):
            if k not in h5.attrs:
                continue
            if h5.attrs.get_id(k).get_storage_size() > limit:
                out[k] = {"error": "too large"}
                continue
            v = h5.attrs[k]
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            out[k] = {"text": v} if isinstance(v, str) else {"error": "not text"}
except Exception as exc:
    out = {"unreadable": type(exc).__name__}
sys.stdout.write(json.dumps(out))
"""
H5_TIMEOUT = 120


def _h5_attributes(f: IO[bytes]) -> dict[str, Any]:
    """The Keras attributes of an HDF5 file, read by h5py in a child process."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    path = getattr(f, "name", None)
    temp = None
    if not (isinstance(path, str) and isinstance(f, io.BufferedReader) and os.path.isfile(path)):
        # an archive member or a remote file: the child reads a private copy
        fd, temp = tempfile.mkstemp(prefix="aimodel-scan-", suffix=".h5")
        with os.fdopen(fd, "wb") as out:
            f.seek(0)
            while chunk := f.read(1 << 20):
                out.write(chunk)
        path = temp
    try:
        proc = subprocess.run([sys.executable, "-c", _H5_CHILD, path, str(MAX_JSON)],
                              capture_output=True, timeout=H5_TIMEOUT, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise CannotVerify(f"HDF5 reader gave no answer in {H5_TIMEOUT} s") from exc
    finally:
        if temp is not None:
            os.unlink(temp)
    if proc.returncode != 0:
        if b"No module named 'h5py'" in proc.stderr:
            raise CannotVerify("HDF5 file: h5py is needed to read its attributes")
        raise CannotVerify(f"HDF5 reader stopped on this file (exit {proc.returncode})")
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        raise CannotVerify("HDF5 reader gave no readable answer") from exc
    return result


def scan_hdf5(f: IO[bytes], ctx: PickleContext) -> str:
    """Read the model config the way Keras does: h5py opens the file (wherever HDF5 finds the
    superblock), the ``model_config`` and ``training_config`` attributes are decoded as JSON,
    and the decoded layers are judged (escapes such as ``\\u004cambda`` decode first)."""
    ctx.fmt = "hdf5"
    import json

    attrs = _h5_attributes(f)
    if "unreadable" in attrs:
        raise CannotVerify(f"HDF5 file unreadable ({attrs['unreadable']})")
    for key in ("model_config", "training_config"):
        entry = attrs.get(key)
        if entry is None:
            continue
        if "error" in entry:
            raise CannotVerify(f"HDF5 attribute {key}: {entry['error']}")
        try:
            config = json.loads(entry["text"])
        except ValueError as exc:
            raise CannotVerify(f"HDF5 attribute {key} is not JSON") from exc
        _keras_walk(config, ctx, key)
    return ctx.fmt


# --------------------------------------------------------------------------- ONNX (protobuf)


def _varint(src: Source) -> int:
    shift = 0
    result = 0
    while True:
        b = src.read(1)[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise CannotVerify("protobuf varint too long")


# message schemas: field number -> schema of the sub-message (or a marker string)
_TENSOR: dict[int, Any] = {}
_GRAPH: dict[int, Any] = {}
_ATTR: dict[int, Any] = {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH}
_NODE: dict[int, Any] = {5: _ATTR}
_SPARSE: dict[int, Any] = {1: _TENSOR, 2: _TENSOR}
_ATTR.update({22: _SPARSE, 23: _SPARSE})
_TENSOR.update({13: "external"})
_GRAPH.update({1: _NODE, 5: _TENSOR, 15: _SPARSE})
_FUNCTION: dict[int, Any] = {7: _NODE}
_TRAINING: dict[int, Any] = {1: _GRAPH, 2: _GRAPH}
_MODEL: dict[int, Any] = {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION}


def _bad_location(loc: str) -> str | None:
    if not loc:
        return "empty location"
    if "\x00" in loc:
        return "NUL byte in location"
    norm = loc.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or norm.startswith("~"):
        return "absolute path"
    if "://" in norm:
        return "URL"
    if ".." in norm.split("/"):
        return "'..' escapes the model folder"
    return None


def _parse_external(src: Source, end: int, ctx: PickleContext) -> None:
    """A StringStringEntryProto: key 1, value 2."""
    start = src.tell()
    key = value = None
    while src.tell() < end:
        tag = _varint(src)
        field, wt = tag >> 3, tag & 7
        if wt != 2:
            _skip_field(src, wt)
            continue
        n = _varint(src)
        if n > 1 << 16:
            raise CannotVerify("ONNX external_data entry too long")
        text = src.read(n).decode("utf-8", "replace")
        if field == 1:
            key = text
        elif field == 2:
            value = text
    if src.tell() != end:
        raise CannotVerify("ONNX message overruns its length")
    if key == "location" and value is not None:
        why = _bad_location(value)
        if why is not None:
            _finding(
                ctx,
                "external_data.location",
                "critical",
                f"tensor data location {value!r} is outside the model folder ({why})",
                start,
            )


def _skip_field(src: Source, wt: int) -> None:
    if wt == 0:
        _varint(src)
    elif wt == 1:
        src.skip(8)
    elif wt == 5:
        src.skip(4)
    elif wt == 2:
        src.skip(_varint(src))
    else:
        raise CannotVerify(f"protobuf wire type {wt} not supported")


def _parse_message(
    src: Source, end: int, schema: dict[int, Any], ctx: PickleContext, depth: int
) -> set[int]:
    if depth > 64:
        raise CannotVerify("ONNX graph nesting too deep")
    seen: set[int] = set()
    while src.tell() < end:
        tag = _varint(src)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise CannotVerify("protobuf field number 0")
        seen.add(field)
        sub = schema.get(field)
        if sub is None or wt != 2:
            _skip_field(src, wt)
            continue
        n = _varint(src)
        sub_end = src.tell() + n
        if sub_end > end:
            raise CannotVerify("ONNX message overruns its parent")
        if sub == "external":
            _parse_external(src, sub_end, ctx)
        else:
            _parse_message(src, sub_end, sub, ctx, depth + 1)
    if src.tell() != end:
        raise CannotVerify("ONNX message overruns its length")
    return seen


def scan_onnx(src: Source, ctx: PickleContext) -> str:
    ctx.fmt = "onnx"
    rest = src.remaining()
    if rest is None:
        raise CannotVerify("ONNX needs a known file size")
    seen = _parse_message(src, src.tell() + rest, _MODEL, ctx, 0)
    if 7 not in seen:
        raise CannotVerify("protobuf without an ONNX graph")
    return ctx.fmt


# --------------------------------------------------------------------------- zip archives

_TORCH_META = LazyRe(
    r"(^|/)(version|byteorder|\.format_version|\.storage_alignment|\.data/version"
    r"|\.data/serialization_id|data/\d+|constants/\d+)$"
)
_KERAS_SAFE_MODULES = ("keras", "keras.src", "tensorflow.keras", "tf_keras")


def _keras_walk(node: Any, ctx: PickleContext, where: str) -> None:
    if isinstance(node, dict):
        cls = node.get("class_name")
        if cls in ("Lambda", "__lambda__"):
            _finding(ctx, f"{where}:{cls}", "critical",
                     "Keras Lambda layer: serialized Python code runs when the model loads",
                     None)  # fmt: skip
        elif cls == "TFOpLambda":
            _finding(ctx, f"{where}:TFOpLambda", "medium",
                     "TFOpLambda layer calls TensorFlow functions by name", None)  # fmt: skip
        module = node.get("module")
        if (
            isinstance(cls, str)
            and isinstance(module, str)
            and not (
                module in _KERAS_SAFE_MODULES
                or module.startswith(tuple(m + "." for m in _KERAS_SAFE_MODULES))
            )
        ):
            _finding(ctx, f"{module}.{cls}", "high",
                     "custom object: loading the model imports code from this module", None)  # fmt: skip
        reg = node.get("registered_name")
        if isinstance(reg, str) and ">" in reg:
            _finding(ctx, reg, "high", "custom registered object needs its own code to load", None)
        for k, v in node.items():
            if (
                k in ("function", "code")
                and isinstance(v, str | list)
                and cls in ("Lambda", "__lambda__")
            ):
                continue
            _keras_walk(v, ctx, where)
    elif isinstance(node, list):
        for v in node:
            _keras_walk(v, ctx, where)


class _Window:
    """A read-only, seekable view of ``length`` bytes at ``start`` of a seekable stream."""

    def __init__(self, f: IO[bytes], start: int, length: int) -> None:
        self.f = f
        self.start = start
        self.length = length
        self.pos = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        rest = self.length - self.pos
        if rest <= 0:
            return b""
        n = rest if n is None or n < 0 else min(n, rest)
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        self.pos += len(data)
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> _Window:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


# name, size, flag bits, opener, and the first 16 bytes (read only when asked)
_ZipEntry = tuple[str, int, int, Callable[[], Any], Callable[[], bytes]]


def _fast_zip_entries(f: IO[bytes], size: int, blob: bytes | None = None) -> list[_ZipEntry] | None:
    """The members of a plain zip whose members are all stored (torch checkpoints, np.savez),
    read straight from the central directory. None: let :mod:`zipfile` handle the archive
    (comments, zip64, compression, prefixes...)."""
    if size < 22:
        return None
    f.seek(size - 22)
    eocd = f.read(22)
    if len(eocd) != 22 or eocd[:4] != b"PK\x05\x06":
        return None
    disk, cd_disk, n_disk, n_total, cd_size, cd_off, comment = struct.unpack_from("<4H2LH", eocd, 4)
    if disk or cd_disk or n_disk != n_total or comment or n_total == 0xFFFF or cd_size > 1 << 26:
        return None
    gap = size - 22 - (cd_off + cd_size)
    if gap == 76:  # a zip64 end record and locator (torch writes them); must agree with EOCD
        f.seek(cd_off + cd_size)
        z64 = f.read(76)
        if z64[:4] != b"PK\x06\x06" or z64[56:60] != b"PK\x06\x07":
            return None
        n64, cd_size64, cd_off64 = struct.unpack_from("<QQQ", z64, 32)
        if (n64, cd_size64, cd_off64) != (n_total, cd_size, cd_off):
            return None
    elif gap != 0:
        return None
    f.seek(cd_off)
    cd = f.read(cd_size)
    if len(cd) != cd_size:
        return None
    entries: list[_ZipEntry] = []
    p = 0
    for _ in range(n_total):
        if cd[p : p + 4] != b"PK\x01\x02":
            return None
        (_vm, _vn, flags, method, _t, _d, _crc, csize, usize, nlen, xlen, clen, _ds, _ia, _ea,
         loff) = struct.unpack_from("<6H3L5H2L", cd, p + 4)  # fmt: skip
        raw = cd[p + 46 : p + 46 + nlen]
        p += 46 + nlen + xlen + clen
        if method != 0 or csize != usize or 0xFFFFFFFF in (csize, usize, loff) or flags & 0x1:
            return None
        if loff + 30 + nlen + csize > cd_off:
            return None
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        if name.endswith("/"):
            continue

        def opener(loff: int = loff, raw: bytes = raw, length: int = csize) -> _Window:
            # the local header is read only for members that are opened
            f.seek(loff)
            lh = f.read(30)
            if len(lh) != 30 or lh[:4] != b"PK\x03\x04":
                raise CannotVerify(f"zip member {raw!r}: bad local header")
            lnlen, lxlen = struct.unpack_from("<HH", lh, 26)
            if f.read(lnlen) != raw:
                raise CannotVerify(f"zip member {raw!r}: local and central names differ")
            start = loff + 30 + lnlen + lxlen
            if start + length > cd_off:
                raise CannotVerify(f"zip member {raw!r} overlaps the central directory")
            return _Window(f, start, length)

        def head(loff: int = loff, length: int = csize) -> bytes:
            if blob is not None:
                lnlen, lxlen = struct.unpack_from("<HH", blob, loff + 26)
                start = loff + 30 + lnlen + lxlen
                return blob[start : start + min(16, length)]
            f.seek(loff + 26)
            lnlen, lxlen = struct.unpack("<HH", f.read(4))
            f.seek(loff + 30 + lnlen + lxlen)
            return f.read(min(16, length))

        entries.append((name, usize, flags, opener, head))
    if p != cd_size:
        return None
    return entries


def scan_zip(
    f: IO[bytes], ctx: PickleContext, scan_member: Callable[..., str], size: int | None = None
) -> str:
    blob: bytes | None = None
    if size is not None and size <= SMALL_ZIP:
        import io

        f.seek(0)
        blob = f.read(size + 1)
        f = io.BytesIO(blob)  # a small archive is read once, members from memory
    entries = _fast_zip_entries(f, size, blob) if size is not None else None
    if entries is not None:
        return _scan_zip_entries(entries, ctx, scan_member)
    import zipfile

    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CannotVerify(f"zip directory unreadable: {exc}") from exc
    with zf:

        def opener(info: zipfile.ZipInfo) -> Callable[[], Any]:
            return lambda: zf.open(info)

        def header(info: zipfile.ZipInfo) -> Callable[[], bytes]:
            def read() -> bytes:
                with zf.open(info) as fh:
                    return fh.read(16)

            return read

        entries = [
            (i.filename, i.file_size, i.flag_bits, opener(i), header(i))
            for i in zf.infolist()
            if not i.is_dir()
        ]
        return _scan_zip_entries(entries, ctx, scan_member)


def _scan_zip_entries(
    entries: list[_ZipEntry], ctx: PickleContext, scan_member: Callable[..., str]
) -> str:
    names = [e[0] for e in entries]
    if not names:
        raise CannotVerify("empty zip archive")
    base_path = ctx.path
    if any(n == "config.json" for n in names) and (
        "metadata.json" in names or any(n.endswith(".weights.h5") for n in names)
    ):
        kind = "keras"
    elif any(n.endswith(".pkl") for n in names):
        kind = "torch"
    elif all(n.endswith(".npy") for n in names):
        kind = "npz"
    else:
        kind = "zip"
    ctx.fmt = kind
    for name, file_size, flag_bits, opener, head in entries:
        if flag_bits & 0x1:
            raise CannotVerify(f"encrypted zip member {name!r}")
        # Every member is read by its own bytes: the container's look only decides whether
        # bytes of no known format may sit there as plain data (tensor storage, assets).
        data = False
        if kind == "torch":
            if "/code/" in "/" + name and name.endswith(".py"):
                _finding(ctx, name, "medium",
                         "TorchScript archive carries code that runs when the model loads",
                         None)  # fmt: skip
                continue
            data = bool(_TORCH_META.search(name)) or name.endswith(".debug_pkl")
        if kind == "keras":
            if name == "config.json":
                if file_size > MAX_JSON:
                    raise CannotVerify("keras config.json too large")
                import json

                with opener() as fh:
                    raw = fh.read(MAX_JSON + 1)
                try:
                    config = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise CannotVerify(f"keras config.json is not JSON: {exc}") from exc
                _keras_walk(config, ctx, f"{base_path}!config.json")
                continue
            data = name == "metadata.json" or name.startswith("assets/")
        if data and sniff(head()) in ("unknown", "onnx?", "pickle0?"):
            continue  # bytes of no format a loader reads by content: plain data
        with opener() as mf:
            scan_member(mf, file_size, f"{base_path}!{name}", ctx, in_archive=kind, data=data)
    return kind


# --------------------------------------------------------------------------- tar archives


def scan_tar(
    f: IO[bytes], ctx: PickleContext, scan_member: Callable[..., str], size: int
) -> str:
    """Every member of a tar archive, by its own bytes. The legacy torch layout (torch.load
    reads an uncompressed tar before trying a pickle) is read as torch reads it: ``storages``
    and ``tensors`` hold pickles between raw records."""
    import tarfile

    ctx.fmt = "tar"
    f.seek(0)
    try:
        window: Any = _Window(f, 0, size)
        tf = tarfile.open(fileobj=window, mode="r:")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise CannotVerify(f"tar archive unreadable ({type(exc).__name__})") from exc
    base_path = ctx.path
    names: set[str] = set()
    errors: list[CannotVerify] = []
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            raise CannotVerify(f"tar archive unreadable ({type(exc).__name__})") from exc
        if not members:
            raise CannotVerify("empty tar archive")
        for m in members:
            names.add(m.name)
        torch = {"storages", "tensors", "pickle"} <= names
        if torch:
            ctx.fmt = "torch-tar"
        for m in members:
            where = f"{base_path}!{m.name}"
            if m.isdir():
                continue
            if not m.isfile():
                # links and devices: extracting them reads or writes outside the archive
                ctx.findings.append(Finding(where, None, ctx.fmt, "tar link member", "critical",
                                            "a link or special file in the archive: "
                                            "extracting it reaches outside the archive"))  # fmt: skip
                continue
            if m.size == 0:
                continue  # nothing to load
            fh = tf.extractfile(m)
            if fh is None:
                raise CannotVerify("tar member unreadable")
            try:
                with fh:
                    if torch and m.name in ("storages", "tensors"):
                        child = PickleContext(where, "torch-tar", ctx.allow, ctx.findings,
                                              ctx.refs)  # fmt: skip
                        child.plain = True
                        _scan_torch_tar_records(Source(fh, size=m.size), child, m.name)
                    else:
                        scan_member(fh, m.size, where, ctx, in_archive="torch" if torch else "tar")
            except CannotVerify as exc:  # go on: the other members' findings still count
                errors.append(exc)
    if errors:
        raise errors[0]
    return ctx.fmt


def _int_of(v: object, what: str) -> int:
    if type(v) is not int or v < 0:
        raise CannotVerify(f"legacy torch archive: {what} is not a count")
    return v


def _scan_torch_tar_records(src: Source, ctx: PickleContext, name: str) -> None:
    from .pickle_vm import _STORAGE_SIZES, Global

    count = _int_of(walk_pickle(src, ctx), f"{name} count")
    for _ in range(count):
        args = walk_pickle(src, ctx)
        if name == "storages":
            if type(args) is not tuple or len(args) != 3 or type(args[2]) is not Global:
                raise CannotVerify("legacy torch archive: storage record not understood")
            elsize = _STORAGE_SIZES.get(args[2].name)
            if elsize is None:
                raise CannotVerify("legacy torch archive: storage of unknown element size")
            numel = struct.unpack("<q", src.read(8))[0]
            if numel < 0:
                raise CannotVerify("legacy torch archive: negative storage size")
            src.skip(numel * elsize)
        else:
            ndim = struct.unpack("<i", src.read(4))[0]
            if not 0 <= ndim <= 64:
                raise CannotVerify("legacy torch archive: tensor rank out of range")
            src.skip(4 + 16 * ndim + 8)
    if name == "storages":
        walk_pickle(src, ctx)  # the storage views
    if not src.at_eof():
        raise CannotVerify(f"legacy torch archive: data after the {name} records")


# --------------------------------------------------------------------------- compressed streams


def open_decompressed(kind: str, f: IO[bytes]) -> IO[bytes]:
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(f, "rb")
    if kind in ("xz", "lzma"):
        import lzma

        return lzma.LZMAFile(f, "rb", format=lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)
    if kind == "zlib":
        return _ZlibReader(f)  # type: ignore[return-value]
    raise CannotVerify(f"compression {kind} not supported")


class _ZlibReader:
    """A minimal read-only stream over a raw zlib stream (joblib's .z files)."""

    def __init__(self, f: IO[bytes]) -> None:
        import zlib

        self._f = f
        self._d = zlib.decompressobj()
        self._out = b""
        self._eof = False

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._out) < n) and not self._eof:
            data = self._d.unconsumed_tail
            if not data:
                data = self._f.read(1 << 16)
                if not data:
                    if not self._d.eof:
                        raise Truncated("zlib stream truncated")
                    self._eof = True
                    break
            self._out += self._d.decompress(data, 1 << 22)
            if self._d.eof:
                self._eof = True
        if n < 0:
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:n], self._out[n:]
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> _ZlibReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
