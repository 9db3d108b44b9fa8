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


# ----------------------------------------------------------------------- bypass classes (issue 9)
# Each builder writes a file that its real loader executes (touching ``marker``) while an
# earlier scanner called it clean. tests/test_scan_bypass.py proves both halves.


def _system_ops(marker: Path) -> bytes:
    """Protocol-0 opcodes that run ``touch marker`` and leave its result on the stack."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR"


def tar_pickle_polyglot(marker: Path) -> bytes:
    """A legacy torch tar whose first header is also NONE + BINBYTES spanning the archive,
    closed by a STOP after it: a pickle of one bytes object, and a tar for torch.load."""
    import tarfile

    members = {
        "NBxxxx": b"",  # bytes 2..5 of its name become the BINBYTES length
        "storages": b"\x80\x02" + _system_ops(marker) + b"." + pickle.dumps([], protocol=2),
        "tensors": pickle.dumps(0, protocol=2),
        "pickle": pickle.dumps({"w": 1}, protocol=2),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = bytearray(buf.getvalue())
    raw[2:6] = struct.pack("<I", len(raw) - 6)
    # the tar checksum covers the name: recompute it the way tarfile writes it
    chk = 256 + sum(raw[:148]) + sum(raw[156:512])
    raw[148:156] = b"%06o\x00 " % chk
    return bytes(raw) + b"."


def zip_with_pickle_prefix(zip_bytes: bytes) -> bytes:
    """PROTO 4 + BINBYTES over the whole zip, whose comment is the closing STOP: a pickle of
    one bytes object, and (Python's zipfile tolerates a prefix) the same zip as before."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(zip_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            zf.writestr(info, src.read(info.filename))
        zf.comment = b"."
    body = out.getvalue()
    assert body.endswith(b".")
    return b"\x80\x04B" + struct.pack("<I", len(body) - 1) + body


def npy_object(obj: object) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([obj], dtype=object), allow_pickle=True)
    return buf.getvalue()


def npy_with_pickle(pickled: bytes) -> bytes:
    """An object .npy whose data is the given pickle (np.load reads it with pickle.load)."""
    raw = npy_object(None)
    hlen = struct.unpack_from("<H", raw, 8)[0]
    return raw[: 10 + hlen] + pickled


def keras_look_alike_with_assets(marker: Path) -> bytes:
    """A zip that looks like a .keras file at the top, with an object .npy under assets/."""
    return zip_of({"config.json": json.dumps({"class_name": "Sequential", "config": {}}).encode(),
                   "metadata.json": b'{"keras_version": "3.3.3"}',
                   "assets/x.npy": npy_object(touch_marker(marker))})  # fmt: skip


def _unicode(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _joblib_wrapper_state(dtype: str, shape: tuple[int, ...], align: bool = False) -> bytes:
    """The SETITEMS body of a NumpyArrayWrapper state (joblib >= 1.2 adds the alignment)."""
    dims = b"".join(b"K" + bytes([d]) for d in shape)
    return (
        b"}(" + _unicode("subclass") + b"cnumpy\nndarray\n"
        + _unicode("shape") + b"(" + dims + b"t"
        + _unicode("order") + _unicode("C")
        + _unicode("dtype") + b"cnumpy\ndtype\n" + _unicode(dtype) + b"\x89\x88\x87R"
        + _unicode("allow_mmap") + b"\x89"
        + (_unicode("numpy_array_alignment_bytes") + b"K\x10" if align else b"") + b"u"
    )  # fmt: skip


def joblib_wrapper_with_dtype_state(dtype: str, state: bytes) -> bytes:
    """A one-item array whose dtype carries the given pickled BUILD state (b"N": none, which
    makes a 'U5' item 20 bytes, so the 5 bytes after it are not enough: truncated)."""
    body = _joblib_wrapper_state(dtype, (1,)).replace(
        _unicode(dtype) + b"\x89\x88\x87R", _unicode(dtype) + b"\x89\x88\x87R" + state + b"b"
    )
    return (b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81" + body + b"b"
            + b"\x00" * 5 + b"N.")  # fmt: skip


def joblib_padding_hides_a_pickle(marker: Path) -> bytes:
    """joblib skips the alignment padding; pickle.load reads the padding-length byte (here
    an opcode that pushes a value, e.g. 93 = EMPTY_LIST) and the padding as opcodes: the same
    file is harmless data to one and a payload to the other."""
    ops = _system_ops(marker)
    pad = next(p for p in b")N]}\x88\x89\x8f" if p >= len(ops) + 1)
    filler = pad - len(ops)
    if filler % 2:
        ops = ops.replace(b"'\ntR", b" '\ntR")  # one more byte: a space the shell ignores
        filler -= 1
    padding = ops + b"N0" * (filler // 2)
    assert len(padding) == pad
    return (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
        + _joblib_wrapper_state("u1", (0,), align=True) + b"b" + bytes([pad]) + padding + b"."
    )  # fmt: skip


def joblib_reconstructor_wrapper(marker: Path) -> bytes:
    """A NumpyArrayWrapper built by copyreg._reconstructor: joblib reads 5 array bytes,
    a scanner that misses the wrapper reads them as BINBYTES hiding the payload."""
    payload = _system_ops(marker) + b"0"
    array = b"B" + struct.pack("<I", len(payload))
    return (
        b"\x80\x02ccopyreg\n_reconstructor\n"
        + b"cjoblib.numpy_pickle\nNumpyArrayWrapper\ncbuiltins\nobject\nN\x87R"
        + _joblib_wrapper_state("u1", (5,)) + b"b" + array + payload + b"."
    )  # fmt: skip


def joblib_itemsize_gap(marker: Path) -> bytes:
    """A 'U5' array: numpy (and joblib) read 20 bytes per item; a scanner that takes the 5
    for the item size reads the other 15 as opcodes, a BINBYTES over the payload."""
    payload = _system_ops(marker) + b"0"
    array = b"A\x00\x00\x00\x00B" + struct.pack("<I", 10 + len(payload)) + b"\x00" * 10
    assert len(array) == 20
    return (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
        + _joblib_wrapper_state("U5", (1,)) + b"b" + array + payload + b"."
    )  # fmt: skip


def joblib_legacy_sidecar(folder: Path, marker: Path) -> Path:
    """An old joblib pickle naming a side .npy file (an object array with the payload)."""
    name = b"model.pkl_01.npy"
    write(folder / name.decode(), npy_object(touch_marker(marker)))
    data = (b"\x80\x02cjoblib.numpy_pickle_compat\nNDArrayWrapper\n)\x81}("
            + _unicode("filename") + b"X" + struct.pack("<I", len(name)) + name
            + _unicode("subclass") + b"cnumpy\nndarray\n"
            + _unicode("allow_mmap") + b"\x89ub.")  # fmt: skip
    return write(folder / "model.pkl", data)


def sklearn_callback_client(port: int) -> bytes:
    """scikit-learn's callback transport re-exports multiprocessing.connection.Client:
    unpickling ``Client(("127.0.0.1", port))`` opens a TCP connection."""
    return (b"\x80\x02csklearn.callback._transport\nClient\n"
            + _unicode("127.0.0.1") + b"M" + struct.pack("<H", port) + b"\x86\x85R.")  # fmt: skip


def torch_functional_patch() -> bytes:
    """``torch.nn.functional`` reached as torch.nn.modules.activation.F (a module object), and
    BUILD on it: replaces ``torch.nn.functional.linear`` in the loading process."""
    return (b"\x80\x04" + b"\x8c\x1btorch.nn.modules.activation\x8c\x01F\x93"
            + b"}(" + _unicode("linear") + _unicode("patched") + b"ub.")  # fmt: skip


# ----------------------------------------------------------------------- differential fuzzing
# Mutants of real and crafted model files go to the scanner and, when it calls one clean, to
# the real loaders in a sandboxed child process. An audit hook there refuses (and reports)
# every process start, connection, library load and write into the work folder, so a payload
# is detected without running. A mutant a loader "executes" that the scanner passed is a bug.

FUZZ_CHILD = r"""
import json, os, resource, signal, sys, warnings
warnings.simplefilter("ignore")
work, listing = sys.argv[1], sys.argv[2]
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 24, 1 << 24))
import pickle, numpy as np, joblib
try:
    import torch
except ImportError:
    torch = None

events = []
BLOCK = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.kill",
         "subprocess.Popen", "socket.connect", "socket.bind", "ctypes.dlopen",
         "webbrowser.open", "pty.spawn")
IN_WORK = ("os.remove", "os.rename", "shutil.rmtree", "os.mkdir", "os.symlink")

class Refused(Exception):
    pass

armed = [False]

def hook(event, args):
    if not armed[0]:
        return
    hit = event.startswith(BLOCK)
    if event in IN_WORK:  # loaders clean up their own temporary folders: only ours count
        hit = bool(args) and isinstance(args[0], str) and args[0].startswith(work)
    if event == "open" and args and isinstance(args[0], str) and args[0].startswith(work):
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
        hit = any(c in mode for c in "wax+")
    if hit:
        events.append(event)
        raise Refused(event)

sys.addaudithook(hook)

def alarm(*_):
    raise TimeoutError

signal.signal(signal.SIGALRM, alarm)

def npz_all(p):
    with np.load(p, allow_pickle=True) as z:
        for k in getattr(z, "files", []):
            z[k]

LOADERS = {
    "pickle.load": lambda p: pickle.load(open(p, "rb")),
    "joblib.load": joblib.load,
    "np.load": lambda p: npz_all(p) if open(p, "rb").read(2) == b"PK" else np.load(p, allow_pickle=True),
}
if torch is not None:
    LOADERS["torch.load"] = lambda p: torch.load(p, weights_only=False)

for path in json.load(open(listing)):
    for name, load in LOADERS.items():
        del events[:]
        armed[0] = True
        signal.alarm(3)
        try:
            load(path)
        except BaseException:
            pass
        finally:
            signal.alarm(0)
            armed[0] = False
        if events:
            print(json.dumps({"file": path, "loader": name, "events": sorted(set(events))}), flush=True)
"""


def fuzz_seeds(folder: Path) -> list[bytes]:
    """Real model files and the crafted bypass samples, each with a payload or none."""
    import numpy as np

    marker = folder / "MARKER"
    seeds = [evil_pickle(marker, p) for p in (0, 2, 4)]
    seeds.append(pickle.dumps({"w": np.arange(6.0), "n": "x"}, protocol=4))
    seeds += [tar_pickle_polyglot(marker), joblib_reconstructor_wrapper(marker),
              joblib_itemsize_gap(marker), joblib_padding_hides_a_pickle(marker),
              keras_look_alike_with_assets(marker), npy_object(touch_marker(marker)),
              npy_with_pickle(joblib_padding_hides_a_pickle(marker))]  # fmt: skip
    seeds.append(zip_with_pickle_prefix(zip_of({"a.npy": npy_object(touch_marker(marker))})))
    try:
        import joblib

        buf = io.BytesIO()
        joblib.dump({"a": np.arange(5.0), "o": np.array([touch_marker(marker)], dtype=object)},
                    buf)  # fmt: skip
        seeds.append(buf.getvalue())
        buf = io.BytesIO()  # a benign one: its mutants are the ones the loaders mostly see
        joblib.dump({"a": np.arange(5.0), "s": np.array(["ab", "c"]), "n": 3}, buf)
        seeds.append(buf.getvalue())
    except ImportError:
        pass
    try:
        import torch

        buf = io.BytesIO()
        torch.save({"w": torch.ones(3), "x": touch_marker(marker)}, buf)
        seeds.append(buf.getvalue())
        buf = io.BytesIO()
        torch.save({"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
        seeds.append(buf.getvalue())
        buf = io.BytesIO()
        torch.save({"w": torch.ones(3), "b": torch.zeros(2)}, buf)
        seeds.append(buf.getvalue())
    except ImportError:
        pass
    return seeds


def mutate(data: bytes, rnd: Any, seeds: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        if not out:
            break
        j = rnd.randrange(len(out))
        action = rnd.random()
        if action < 0.35:
            out[j] = rnd.randrange(256)
        elif action < 0.5:
            del out[j]
        elif action < 0.65:
            out.insert(j, rnd.randrange(256))
        elif action < 0.8:  # an interesting byte: an opcode that changes the reading
            out[j] = rnd.choice(b"cRbB\x93\x8c\x94hqN.(tu}\x81\x80PK")
        else:  # splice a piece of another seed
            other = rnd.choice(seeds)
            k = rnd.randrange(len(other))
            out[j:j] = other[k : k + rnd.randint(1, 64)]
    return bytes(out)


def differential_fuzz(folder: Path, count: int, seed: int) -> tuple[int, int, list[dict[str, Any]]]:
    """(mutants, clean mutants, escapes): an escape is a clean mutant a loader executed."""
    import random
    import sys as _sys

    from bot.checks.scan import scan_file

    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = fuzz_seeds(folder)
    clean: list[str] = []
    for i in range(count):
        data = mutate(rnd.choice(seeds), rnd, seeds)
        path = folder / f"m{i:05d}.bin"
        path.write_bytes(data)
        if scan_file(str(path)).status == "clean":
            clean.append(str(path))
        else:
            path.unlink()
    escapes: list[dict[str, Any]] = []
    if clean:
        import subprocess

        listing = folder / "clean.json"
        listing.write_text(json.dumps(clean))
        proc = subprocess.run([_sys.executable, "-c", FUZZ_CHILD, str(folder), str(listing)],
                              capture_output=True, text=True, cwd=folder,
                              timeout=60 + 12 * len(clean), check=False)  # fmt: skip
        escapes = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert not (folder / "MARKER").exists()
    return count, len(clean), escapes
