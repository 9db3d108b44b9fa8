"""Sample model files for the scanner tests: clean real-looking ones and malicious ones.

The malicious payloads are harmless: they would touch a marker file (``touch MARKER`` through
``os.system``, or ``open(MARKER, "w")``) if anything ever unpickled them. The tests assert the
marker never appears. Everything is written into a folder the test hands in (``tmp_path``).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any


class SystemCall:
    """Unpickling this runs ``os.system(cmd)``."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.cmd,))


class OpenFile:
    """Unpickling this runs ``builtins.open(path, "w")``, creating the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.path, "w"))


class Gadget:
    """A global no deny-list names (``pydoc.locate``, ``operator.attrgetter``, ...)."""

    def __init__(self, module: str, name: str, *args: Any) -> None:
        self.module = module
        self.name = name
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        import importlib

        return (getattr(importlib.import_module(self.module), self.name), self.args)


def touch_marker(marker: Path) -> SystemCall:
    return SystemCall(f"touch {marker}")


def evil_pickle(marker: Path, protocol: int = 4, *, via: str = "system") -> bytes:
    payload: object = touch_marker(marker) if via == "system" else OpenFile(str(marker))
    return pickle.dumps({"weights": [1.0, 2.0, 3.0], "payload": payload}, protocol=protocol)


def global_pickle(module: str, name: str, protocol: int = 2) -> bytes:
    """A pickle that imports ``module.name`` with GLOBAL (or STACK_GLOBAL on protocol >= 4)
    and calls it with no arguments; written by hand so the global need not exist here."""
    if protocol >= 4:
        mod = module.encode()
        nm = name.encode()
        body = (
            b"\x8c" + bytes([len(mod)]) + mod + b"\x94"
            + b"\x8c" + bytes([len(nm)]) + nm + b"\x94"
            + b"\x93\x94)R\x94."
        )  # fmt: skip
        return b"\x80" + bytes([protocol]) + body
    head = b"\x80" + bytes([protocol]) if protocol >= 2 else b""
    return head + b"c" + module.encode() + b"\n" + name.encode() + b"\n)R."


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------- safetensors by hand


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]], *, pad: bool = True,
                      header_override: dict[str, Any] | None = None) -> bytes:  # fmt: skip
    header: dict[str, Any] = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}  # fmt: skip
        data += raw
    if header_override is not None:
        header = header_override
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


# ----------------------------------------------------------------------- GGUF by hand


def _gguf_str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(*, chat_template: str | None = None, n_tensors_claim: int | None = None) -> bytes:
    kvs = [(_gguf_str("general.architecture"), 8, _gguf_str("llama")),
           (_gguf_str("general.alignment"), 4, struct.pack("<I", 32)),
           (_gguf_str("tokenizer.ggml.tokens"), 9,
            struct.pack("<IQ", 8, 3) + _gguf_str("a") + _gguf_str("b") + _gguf_str("c"))]  # fmt: skip
    if chat_template is not None:
        kvs.append((_gguf_str("tokenizer.chat_template"), 8, _gguf_str(chat_template)))
    tensors = [("tok_embd.weight", [4, 2], 0), ("out.weight", [4], 32)]  # F32
    n_t = len(tensors) if n_tensors_claim is None else n_tensors_claim
    out = b"GGUF" + struct.pack("<IQQ", 3, n_t, len(kvs))
    for key, vtype, value in kvs:
        out += key + struct.pack("<I", vtype) + value
    for name, dims, offset in tensors:
        out += _gguf_str(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, offset)
    out += b"\x00" * (-len(out) % 32)
    out += b"\x00" * 32 + b"\x00" * 16  # tensor 0 (8 floats), tensor 1 (4 floats)
    return out


# ----------------------------------------------------------------------- Keras .keras by hand


def keras_zip(layers: list[dict[str, Any]]) -> bytes:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": layers},
        "registered_name": None,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", empty_h5())
    return buf.getvalue()


def empty_h5() -> bytes:
    """A real, empty HDF5 file (what Keras writes for a model without weights)."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers")
    return buf.getvalue()


def dense_layer(name: str = "dense") -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": name, "units": 2}, "registered_name": None}  # fmt: skip


def lambda_layer(marker: Path) -> dict[str, Any]:
    import base64
    import marshal

    code = compile(f"open({str(marker)!r}, 'w')", "<lambda>", "eval")
    blob = base64.b64encode(marshal.dumps(code)).decode()
    return {"module": "keras.layers", "class_name": "Lambda",
            "config": {"name": "lambda", "function": {"class_name": "__lambda__",
                                                      "config": {"code": blob}}},
            "registered_name": None}  # fmt: skip


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
