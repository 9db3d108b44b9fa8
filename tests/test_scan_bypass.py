"""The scanner's bypass classes (issue 9): one crafted file per class.

Each test proves both halves: ``aimodel scan`` flags the file (and running the scan never
touches the marker), and the file's real loader, in a subprocess, does run the payload (the
marker appears). A sample the loader does not execute would prove nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import scan_samples as s

ROOT = Path(__file__).resolve().parent.parent

_LOADER = r"""
import os, sys, warnings
warnings.simplefilter("ignore")
kind, path = sys.argv[1], sys.argv[2]
if kind == "torch":
    import torch
    torch.load(path, weights_only=False)
elif kind == "joblib":
    import joblib
    joblib.load(path)
elif kind == "npz":
    import numpy as np
    np.load(path, allow_pickle=True)[sys.argv[3]]
elif kind == "npy":
    import numpy as np
    np.load(path, allow_pickle=True)
elif kind == "keras":
    import keras
    keras.saving.load_model(path, safe_mode=False)
elif kind == "pickle":
    import pickle
    with open(path, "rb") as f:
        pickle.load(f)
elif kind == "pickle+torch.nn.functional":
    import pickle, torch.nn.functional as F
    before = F.linear
    with open(path, "rb") as f:
        pickle.load(f)
    print("replaced" if F.linear is not before else "intact")
"""


def needs_keras() -> None:
    import importlib.util

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras with the torch backend writes and loads the Keras samples")


def keras_lambda_model(path: Path, marker: Path) -> None:
    """A real Keras model (.keras or .h5 by the name) with a Lambda that touches the marker."""
    script = (
        "import sys, keras\n"
        "fn = eval(sys.argv[2])\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(fn)])\n"
        "m.save(sys.argv[1])\n"
    )
    touch = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONWARNINGS="ignore")
    subprocess.run([sys.executable, "-c", script, str(path), touch], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    marker.unlink(missing_ok=True)  # building the model ran the lambda once


def load_with(kind: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the real loader on ``path`` in a fresh process (it may fail after the payload ran)."""
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-c", _LOADER, kind, str(path), *extra],
                          capture_output=True, text=True, env=env, cwd=path.parent,
                          timeout=300, check=False)  # fmt: skip


def aimodel_scan(path: Path) -> dict[str, Any]:
    """``aimodel scan --json PATH`` through the real CLI; exit 1 = not clean."""
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "scan", "--json", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["ok"] is False
    return report


def findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["name"], f["severity"]) for fr in report["files"] for f in fr["findings"]]


def scanned_then_loaded(path: Path, marker: Path, kind: str, *extra: str) -> dict[str, Any]:
    report = aimodel_scan(path)
    assert not marker.exists(), "the scan ran the payload"
    proc = load_with(kind, path, *extra)
    assert marker.exists(), f"{kind} did not run the sample: {proc.stderr[-2000:]}"
    return report


# ---------------------------------------------------------------------- 1. polyglots


def test_tar_pickle_polyglot_is_judged_as_both(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.pt", s.tar_pickle_polyglot(marker))
    report = scanned_then_loaded(path, marker, "torch")
    names = findings(report)
    assert ("polyglot", "critical") in names
    assert ("posix.system", "critical") in names or ("os.system", "critical") in names
    assert report["files"][0]["format"].startswith("pickle+tar") or "tar" in report["files"][0]["format"]


def test_zip_with_a_pickle_prefix_is_judged_as_both(tmp_path: Path) -> None:
    needs_keras()
    marker = tmp_path / "MARKER"
    made = tmp_path / "made.keras"
    keras_lambda_model(made, marker)
    path = s.write(tmp_path / "model.keras", s.zip_with_pickle_prefix(made.read_bytes()))
    report = scanned_then_loaded(path, marker, "keras")
    names = findings(report)
    assert ("polyglot", "critical") in names
    assert any("Lambda" in n and sev == "critical" for n, sev in names)


@pytest.mark.parametrize("spelling", ["%06o\x00 ", "%06o\x00h", " %o \x00\x00", "+%o\x00",
                                      "0o%o\x00", "%o\x00\xff\xff", "base256"])
def test_the_tar_test_reads_the_checksum_as_tarfile_does(spelling: str) -> None:
    """Found by the long fuzz run: tarfile ignores what follows the checksum's NUL, so a
    header with a mutated byte there was a tar to torch.load and not to the scanner."""
    import io
    import struct
    import tarfile

    from bot.checks.scanners.formats import tar_at_start

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("storages")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    header = bytearray(buf.getvalue()[:512])
    header[148:156] = b" " * 8
    chk = 256 + sum(header[:148]) + sum(header[156:512])
    if spelling == "base256":
        field = b"\x80" + struct.pack(">Q", chk)[1:]
    else:
        field = spelling.encode("latin-1").replace(b"%06o", b"%06o" % chk).replace(b"%o", b"%o" % chk)
    header[148:156] = field[:8].ljust(8, b"\x00")
    # the sum covers the field's own bytes as spaces; spellings with other bytes there change
    # the sum, so recompute with the final field in place the way tarfile does
    block = bytes(header)
    expected = True
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        expected = False
    assert tar_at_start(block) == expected


def test_hdf5_behind_a_pickle_is_judged_as_both(tmp_path: Path) -> None:
    """HDF5 finds its superblock at 512, 1024, ... (a user block): a pickle whose BINBYTES
    covers a Keras .h5 is a pickle to one reader and a Lambda model to keras.load_model."""
    needs_keras()
    marker = tmp_path / "MARKER"
    made = tmp_path / "made.h5"
    keras_lambda_model(made, marker)
    body = b"\x00" * (512 - 7) + made.read_bytes()
    path = s.write(tmp_path / "model.h5", b"\x80\x04B" + len(body).to_bytes(4, "little") + body + b".")
    report = scanned_then_loaded(path, marker, "keras")
    names = findings(report)
    assert ("polyglot", "critical") in names
    assert ("model_config:Lambda", "critical") in names


# ---------------------------------------------------------------------- 2. container members


def test_every_member_is_scanned_whatever_the_container_looks_like(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.npz", s.keras_look_alike_with_assets(marker))
    report = scanned_then_loaded(path, marker, "npz", "assets/x")
    [(fr)] = report["files"]
    assert any(f["path"].endswith("!assets/x.npy") and f["severity"] == "critical"
               for f in fr["findings"])  # fmt: skip


# ---------------------------------------------------------------------- 3. joblib arrays


def test_joblib_wrapper_built_by_copyreg_is_read_as_joblib_reads_it(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.joblib", s.joblib_reconstructor_wrapper(marker))
    report = scanned_then_loaded(path, marker, "joblib")
    assert ("posix.system", "critical") in findings(report) or ("os.system", "critical") in findings(report)


def test_joblib_item_size_follows_numpy(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.joblib", s.joblib_itemsize_gap(marker))
    report = scanned_then_loaded(path, marker, "joblib")
    assert ("posix.system", "critical") in findings(report) or ("os.system", "critical") in findings(report)


def test_a_joblib_file_is_also_read_as_pickle_load_reads_it(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.pkl", s.joblib_padding_hides_a_pickle(marker))
    report = scanned_then_loaded(path, marker, "pickle")
    assert ("posix.system", "critical") in findings(report) or ("os.system", "critical") in findings(report)


def test_an_object_npy_is_read_as_np_load_reads_it(tmp_path: Path) -> None:
    """np.load unpickles an object array with pickle.load: joblib's padding is opcodes there."""
    marker = tmp_path / "MARKER"
    path = s.write(tmp_path / "model.npy", s.npy_with_pickle(s.joblib_padding_hides_a_pickle(marker)))
    report = scanned_then_loaded(path, marker, "npy")
    assert ("posix.system", "critical") in findings(report) or ("os.system", "critical") in findings(report)


def test_hostile_dtype_states_are_not_handed_to_numpy(tmp_path: Path) -> None:
    """The item size follows numpy's rules without calling numpy's dtype __setstate__ (which
    crashed the scanner on a fuzzed state): impossible states are "cannot verify"."""
    for i, state in enumerate([b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffK\x04K\x08t",
                               b"(K\x03X\x01\x00\x00\x00<NNNK\x07K\x04K\x08t", b"N"]):
        data = s.joblib_wrapper_with_dtype_state("U5", state)
        path = s.write(tmp_path / f"s{i}.joblib", data)
        proc = subprocess.run([sys.executable, "-m", "bot.checks.scan", "--json", str(path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
        assert json.loads(proc.stdout)["files"][0]["status"] == "blocked"


# ---------------------------------------------------------------------- 4. old joblib side files


def test_old_joblib_side_file_is_followed(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = s.joblib_legacy_sidecar(tmp_path / "model", marker)
    report = scanned_then_loaded(path, marker, "joblib")
    [fr] = report["files"]
    assert [f["path"] for f in fr["findings"]] == [str(path.parent / "model.pkl_01.npy")]
    assert fr["findings"][0]["severity"] == "critical"


# ---------------------------------------------------------------------- 5. Keras HDF5


def test_keras_h5_config_is_decoded_not_grepped(tmp_path: Path) -> None:
    needs_keras()
    h5py = pytest.importorskip("h5py")
    marker = tmp_path / "MARKER"
    keras_lambda_model(tmp_path / "model.h5", marker)
    path = tmp_path / "escaped.h5"  # a fresh file: HDF5 keeps the old attribute's bytes around
    with h5py.File(tmp_path / "model.h5", "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            src.copy(key, dst)
        for key, value in src.attrs.items():
            if key == "model_config":
                text = value.decode() if isinstance(value, bytes) else str(value)
                assert '"class_name": "Lambda"' in text
                value = text.replace('"Lambda"', '"\\u004cambda"')
            dst.attrs[key] = value
    assert b'"Lambda"' not in path.read_bytes()
    report = scanned_then_loaded(path, marker, "keras")
    assert ("model_config:Lambda", "critical") in findings(report)


def test_a_broken_hdf5_file_is_blocked(tmp_path: Path) -> None:
    """libhdf5 reads the file in a child process: a file it cannot read blocks, the scan goes on."""
    from bot.checks.scan import scan_paths

    good = tmp_path / "good.h5"
    good.write_bytes(s.empty_h5())
    cut = s.write(tmp_path / "cut.h5", good.read_bytes()[:700])
    report = scan_paths([str(good), str(cut)])
    assert [(f.path, f.status) for f in report.files] == [(str(cut), "blocked"),
                                                          (str(good), "clean")]  # fmt: skip
    assert "HDF5" in (report.files[0].error or "")


# ---------------------------------------------------------------------- 6. exact allow-list


def test_a_reexported_network_client_is_not_allowed(tmp_path: Path) -> None:
    pytest.importorskip("sklearn.callback", reason="scikit-learn >= 1.9 has the callback transport")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        path = s.write(tmp_path / "model.pkl", s.sklearn_callback_client(port))
        report = aimodel_scan(path)
        with pytest.raises(TimeoutError):
            listener.accept()  # the scan opened no connection
        assert ("sklearn.callback._transport.Client", "critical") in findings(report)
        listener.settimeout(60)
        proc = subprocess.Popen([sys.executable, "-c", _LOADER, "pickle", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            conn, _ = listener.accept()  # pickle.load connects
            conn.close()
        finally:
            proc.communicate(timeout=60)


def test_build_on_a_module_object_is_a_finding(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = s.write(tmp_path / "model.pkl", s.torch_functional_patch())
    report = aimodel_scan(path)
    names = findings(report)
    assert ("torch.nn.modules.activation.F", "critical") in names
    assert ("BUILD", "critical") in names
    proc = load_with("pickle+torch.nn.functional", path)
    assert proc.stdout.strip() == "replaced", proc.stderr[-2000:]


# ---------------------------------------------------------------------- 7. severity

# Published pickle gadgets (picklescan / modelscan / fickling advisories): each imports
# something that runs code, touches files or opens connections.
GADGETS = [
    "os.system", "posix.system", "nt.system", "os.popen", "os.execv", "subprocess.Popen",
    "subprocess.run", "subprocess.check_output", "builtins.eval", "builtins.exec",
    "builtins.compile", "builtins.open", "builtins.__import__", "builtins.getattr",
    "builtins.setattr", "runpy._run_code", "runpy.run_path", "webbrowser.open",
    "socket.create_connection", "shutil.rmtree", "shutil.copyfile", "pty.spawn",
    "pickle.loads", "_pickle.loads", "marshal.loads", "ctypes.CDLL", "code.interact",
    "code.InteractiveInterpreter", "pdb.run", "timeit.timeit", "bdb.Bdb", "trace.Trace",
    "cProfile.run", "profile.run", "pydoc.pipepager", "pydoc.locate", "operator.attrgetter",
    "operator.methodcaller", "functools.partial", "importlib.import_module",
    "asyncio.create_subprocess_shell", "http.client.HTTPConnection",
    "urllib.request.urlopen", "ftplib.FTP", "smtplib.SMTP", "xmlrpc.client.ServerProxy",
    "tempfile.mkstemp", "glob.glob", "pathlib.Path", "io.FileIO", "codecs.open",
    "linecache.getline", "fileinput.input", "shelve.open", "sqlite3.connect",
    "zipfile.ZipFile", "tarfile.open", "numpy.load", "numpy.testing._private.utils.runstring",
    "torch.load", "torch.hub.load", "torch.utils.cpp_extension.load_inline",
    "torch.storage._load_from_bytes", "keras.utils.get_file", "pandas.read_pickle",
    "sklearn.datasets.fetch_openml", "dill.loads", "_posixsubprocess.fork_exec",
    "multiprocessing.connection.Client", "threading.Thread", "types.MethodType",
    "idlelib.pyshell.ModifiedInterpreter", "lib2to3.pgen2.pgen.generate_grammar",
    "logging.config.listen", "uuid._get_command_stdout", "platform.popen",
    "doctest.debug_script", "ensurepip._run_pip", "venv.create", "imaplib.IMAP4",
]  # fmt: skip


@pytest.mark.parametrize("gadget", GADGETS)
def test_every_published_gadget_is_critical(tmp_path: Path, gadget: str) -> None:
    from bot.checks.scan import scan_file

    module, _, name = gadget.rpartition(".")
    fr = scan_file(str(s.write(tmp_path / "g.pkl", s.global_pickle(module, name, 2))))
    assert [(f.name, f.severity) for f in fr.findings] == [(gadget, "critical")]


# ---------------------------------------------------------------------- through a pull request


@pytest.mark.parametrize("sample", ["tar_polyglot", "copyreg_wrapper"])
def test_a_bypass_sample_is_blocked_in_a_pull_request_before_sign(
    aimodel: Any, home: Path, model_files: Any, tmp_path: Path, sample: str
) -> None:
    marker = tmp_path / "PWNED"
    if sample == "tar_polyglot":
        artifact = s.write(tmp_path / "upload" / "model.pt", s.tar_pickle_polyglot(marker))
    else:
        artifact = s.write(tmp_path / "upload" / "model.joblib",
                           s.joblib_reconstructor_wrapper(marker))  # fmt: skip
    number = aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions",
                     "--artifact", str(artifact), "--dataset-uri", str(model_files.data),
                     "--label-column", "label", "--as", "ada", "--json").json["pr"]  # fmt: skip
    checks = aimodel("pr", "show", str(number), "--json").json["checks"]
    assert checks["scan"]["state"] == "failure", checks["scan"]
    assert "system" in checks["scan"]["summary"] or "polyglot" in checks["scan"]["summary"]
    assert checks["sign"]["state"] == "skipped"
    refused = aimodel("pr", "merge", str(number), "--as", "ada", expect=1)
    assert "check scan failed" in refused.err
    assert not marker.exists()
