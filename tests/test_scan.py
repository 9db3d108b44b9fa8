"""The model-file scanner: every format, clean and malicious, never unpickling anything."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.checks import artifacts
from bot.checks.scan import FileReport, ScanReport, run_scan_command, scan_file, scan_paths
from bot.checks.scanners.pickle_vm import PickleContext, walk_pickle
from bot.checks.scanners.policy import AllowList
from bot.checks.scanners.source import Source
from tests import scan_samples as s

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    m = tmp_path / "MARKER"
    yield m
    assert not m.exists(), "the scanner ran the payload"


def one(path: Path, **kw: object) -> FileReport:
    report = scan_paths([str(path)], **kw)  # type: ignore[arg-type]
    assert len(report.files) == 1
    return report.files[0]


def global_offsets(data: bytes) -> list[int]:
    return [pos for op, _, pos in pickletools.genops(data)
            if op.name in ("GLOBAL", "STACK_GLOBAL", "INST") and pos is not None]  # fmt: skip


# ------------------------------------------------------------------------------ pickle


@pytest.mark.parametrize("protocol", range(6))
def test_malicious_pickle_every_protocol(tmp_path: Path, marker: Path, protocol: int) -> None:
    data = s.evil_pickle(marker, protocol)
    fr = one(s.write(tmp_path / "model.bin", data))
    assert fr.status == "findings"
    assert fr.format == "pickle"
    [f] = fr.findings
    assert f.name in ("posix.system", "os.system", "nt.system")
    assert f.severity == "critical"
    assert f.offset in global_offsets(data)
    assert f.path.endswith("model.bin")


@pytest.mark.parametrize("protocol", range(6))
def test_clean_pickle_every_protocol(tmp_path: Path, protocol: int) -> None:
    from collections import OrderedDict

    obj = OrderedDict(w=np.arange(6.0).reshape(2, 3), b=[1, 2.5, "x", None, True],
                      s={1, 2}, t=(b"raw", bytearray(b"y")), big=10**30)  # fmt: skip
    fr = one(s.write(tmp_path / "p.pkl", pickle.dumps(obj, protocol=protocol)))
    assert (fr.status, fr.error) == ("clean", None)


def test_builtins_open_is_a_finding(tmp_path: Path, marker: Path) -> None:
    fr = one(s.write(tmp_path / "m.pkl", s.evil_pickle(marker, 2, via="open")))
    # builtins.open pickles under its __module__, io
    assert [(f.name, f.severity) for f in fr.findings] == [("io.open", "critical")]
    fr = one(s.write(tmp_path / "b.pkl", s.global_pickle("builtins", "open")))
    assert [(f.name, f.severity) for f in fr.findings] == [("builtins.open", "critical")]


@pytest.mark.parametrize(
    ("module", "name"),
    [("pydoc", "locate"), ("operator", "attrgetter"), ("functools", "partial"),
     ("builtins", "getattr"), ("mypkg.sub", "Model"), ("numpy", "load"),
     ("torch.storage", "_load_from_bytes"), ("sklearn.datasets._base", "urlretrieve"),
     ("sklearn.base", "os.system"), ("torch._utils", "_rebuild_tensor_v2.__globals__")],
)  # fmt: skip
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_globals_off_the_allow_list_are_findings(tmp_path: Path, module: str, name: str,
                                                 protocol: int) -> None:  # fmt: skip
    data = s.global_pickle(module, name, protocol)
    fr = one(s.write(tmp_path / "g.pkl", data))
    assert fr.status == "findings", fr
    assert [f.name for f in fr.findings] == [f"{module}.{name}"]
    assert fr.findings[0].offset == global_offsets(data)[0]
    assert fr.findings[0].severity in ("critical", "high")


def test_unknown_module_is_high_known_bad_is_critical(tmp_path: Path) -> None:
    high = one(s.write(tmp_path / "a.pkl", s.global_pickle("mypkg", "Thing")))
    crit = one(s.write(tmp_path / "b.pkl", s.global_pickle("subprocess", "Popen")))
    assert high.findings[0].severity == "high"
    assert crit.findings[0].severity == "critical"


def test_allow_extends_the_built_in_list(tmp_path: Path) -> None:
    p = s.write(tmp_path / "a.pkl", s.global_pickle("mypkg.models", "Net", 4))
    assert one(p).status == "findings"
    assert one(p, allow=["mypkg.models.Net"]).status == "clean"
    assert one(p, allow=["mypkg.*"]).status == "clean"
    assert one(p, allow=["otherpkg.*"]).status == "findings"


def test_truncated_pickles_are_blocked(tmp_path: Path) -> None:
    data = pickle.dumps({"w": list(range(1000)), "name": "x" * 300}, protocol=4)
    for cut in (1, 2, 10, len(data) // 2, len(data) - 1):
        fr = one(s.write(tmp_path / f"t{cut}.pkl", data[:cut]))
        assert fr.status == "blocked", (cut, fr)
        assert fr.error is not None and fr.error.startswith("cannot verify:")


def test_concatenated_pickles_all_scanned(tmp_path: Path, marker: Path) -> None:
    clean = pickle.dumps({"a": 1}, protocol=2)
    evil = s.evil_pickle(marker, 4)
    fr = one(s.write(tmp_path / "c.pkl", clean + clean + evil))
    assert fr.status == "findings"
    assert fr.findings[0].offset == 2 * len(clean) + global_offsets(evil)[0]


def test_trailing_garbage_after_pickle_is_blocked(tmp_path: Path) -> None:
    fr = one(s.write(tmp_path / "g.pkl", pickle.dumps([1, 2], protocol=4) + b"\xff\xfe"))
    assert fr.status == "blocked"


def test_unresolvable_stack_global_is_blocked(tmp_path: Path) -> None:
    # module and name come from a huge string and a float: nothing the scanner can name
    data = b"\x80\x04G" + b"\x00" * 8 + b"\x8c\x03sys\x93."
    fr = one(s.write(tmp_path / "u.pkl", data))
    assert fr.status == "blocked"


def test_memo_resolution_for_stack_global(tmp_path: Path) -> None:
    # module/name pushed once, memoized, fetched back with BINGET for a second import
    data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94h\x00h\x01\x93\x86\x94."
    fr = one(s.write(tmp_path / "m.pkl", data))
    assert [f.offset for f in fr.findings] == [16, 22]
    assert {f.name for f in fr.findings} == {"os.system"}


def test_ext_opcodes_are_findings(tmp_path: Path) -> None:
    fr = one(s.write(tmp_path / "e.pkl", b"\x80\x02\x82\x01)R."))
    assert fr.status == "findings"
    assert fr.findings[0].name == "EXT 1"
    assert fr.findings[0].offset == 2


def test_big_payloads_are_skipped_not_read() -> None:
    payload = pickle.dumps([b"\x00" * (40 << 20), "x" * (5 << 20)], protocol=4)

    class Counting(io.BytesIO):
        total = 0

        def read(self, n: int | None = -1) -> bytes:
            out = super().read(n)
            Counting.total += len(out)
            return out

    f = Counting(payload)
    src = Source(f, size=len(payload))
    walk_pickle(src, PickleContext("x", "pickle", AllowList()))
    assert src.at_eof()
    assert Counting.total < 4 << 20


def test_long_float_list_uses_little_memory(tmp_path: Path) -> None:
    p = s.write(tmp_path / "floats.pkl", pickle.dumps([float(i) for i in range(300_000)]))
    assert one(p).status == "clean"


# ------------------------------------------------------------------------------ sklearn / joblib


def test_sklearn_models_pickled_are_clean(tmp_path: Path) -> None:
    sk = pytest.importorskip("sklearn", reason="scikit-learn is a test dependency")
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert sk
    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    models = [LogisticRegression(), RandomForestClassifier(n_estimators=2, random_state=0),
              GradientBoostingClassifier(n_estimators=2), KNeighborsClassifier(algorithm="kd_tree"),
              make_pipeline(StandardScaler(), LogisticRegression())]  # fmt: skip
    for i, m in enumerate(models):
        m.fit(x, y)
        for proto in (2, 5):
            fr = one(s.write(tmp_path / f"m{i}_{proto}.pkl", pickle.dumps(m, protocol=proto)))
            assert fr.status == "clean", fr


def test_joblib_dumps_are_clean_and_array_bytes_skipped(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib", reason="joblib is a test dependency")
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(1).random((60, 4))
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, x[:, 1] > 0.5)
    joblib.dump(rf, tmp_path / "rf.joblib")
    arrays = {"f": np.arange(1000.0), "i8": np.ones((7, 3), dtype=np.int8),
              "s": np.array(["ab", "c"]), "obj": np.array([1, "x", None], dtype=object),
              "st": np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8")]),
              "dt": np.array(["2020-01-01"], dtype="datetime64[ns]"), "e": np.empty((0, 3))}  # fmt: skip
    joblib.dump(arrays, tmp_path / "arrays.joblib")
    joblib.dump(arrays, tmp_path / "arrays.joblib.z", compress=3)
    joblib.dump(arrays, tmp_path / "arrays.joblib.gz", compress=("gzip", 3))
    joblib.dump(arrays, tmp_path / "arrays.joblib.xz", compress=("xz", 1))
    for name in ("rf.joblib", "arrays.joblib", "arrays.joblib.z", "arrays.joblib.gz",
                 "arrays.joblib.xz"):  # fmt: skip
        fr = one(tmp_path / name)
        assert fr.status == "clean", fr
        assert fr.format.startswith("joblib"), fr


def test_joblib_payload_after_an_array_is_found(tmp_path: Path, marker: Path) -> None:
    joblib = pytest.importorskip("joblib", reason="joblib is a test dependency")
    joblib.dump([np.arange(100.0), np.array([s.touch_marker(marker)], dtype=object),
                 s.OpenFile(str(marker))], tmp_path / "evil.joblib")  # fmt: skip
    fr = one(tmp_path / "evil.joblib")
    assert fr.status == "findings"
    assert sorted(f.name for f in fr.findings) == ["io.open", "posix.system"]
    # each offset points at an import opcode in the file
    raw = (tmp_path / "evil.joblib").read_bytes()
    assert all(raw[f.offset] in (0x93, 0x63) for f in fr.findings if f.offset is not None)


def test_joblib_truncated_array_is_blocked(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib", reason="joblib is a test dependency")
    joblib.dump({"a": np.arange(10000.0)}, tmp_path / "a.joblib")
    raw = (tmp_path / "a.joblib").read_bytes()
    fr = one(s.write(tmp_path / "b.joblib", raw[: len(raw) // 2]))
    assert fr.status == "blocked"


# ------------------------------------------------------------------------------ numpy


def test_npy_and_npz(tmp_path: Path, marker: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 2))))
    np.save(tmp_path / "u.npy", np.array(["x", "yz"]))
    np.save(tmp_path / "r.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8", (2,))]))
    np.save(tmp_path / "o.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "z.npz", a=np.arange(3), b=np.ones((2, 2)))
    np.savez_compressed(tmp_path / "zc.npz", a=np.arange(300))
    for name in ("a.npy", "f.npy", "u.npy", "r.npy", "o.npy", "z.npz", "zc.npz"):
        fr = one(tmp_path / name)
        assert fr.status == "clean", fr
    np.save(tmp_path / "evil.npy", np.array([s.touch_marker(marker)], dtype=object),
            allow_pickle=True)  # fmt: skip
    np.savez(tmp_path / "evil.npz", ok=np.arange(3),
             bad=np.array([s.OpenFile(str(marker))], dtype=object))  # fmt: skip
    fr = one(tmp_path / "evil.npy")
    assert fr.format == "npy-object"
    assert [f.name for f in fr.findings] == ["posix.system"]
    fz = one(tmp_path / "evil.npz")
    assert fz.format == "npz"
    assert [f.name for f in fz.findings] == ["io.open"]
    assert fz.findings[0].path.endswith("evil.npz!bad.npy")


def test_npy_size_mismatch_is_blocked(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(100.0))
    raw = (tmp_path / "a.npy").read_bytes()
    assert one(s.write(tmp_path / "short.npy", raw[:-8])).status == "blocked"
    assert one(s.write(tmp_path / "long.npy", raw + b"\x00" * 8)).status == "blocked"


# ------------------------------------------------------------------------------ safetensors


def test_safetensors_real_and_hand_made(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.ones((3, 4), dtype=np.float32), "b": np.zeros(2, dtype=np.int64),
               "h": np.ones(5, dtype=np.float16)}, str(tmp_path / "m.safetensors"),
              metadata={"format": "np"})  # fmt: skip
    assert one(tmp_path / "m.safetensors").status == "clean"
    good = {"a": ("F32", [2], b"\x00" * 8), "b": ("U8", [3], b"\x01\x02\x03")}
    assert one(s.write(tmp_path / "g.st", s.safetensors_bytes(good))).status == "clean"


@pytest.mark.parametrize(
    "case",
    ["bad_json", "overlap", "gap", "unknown_dtype", "too_long_header", "truncated",
     "wrong_size", "trailing", "not_object"],
)  # fmt: skip
def test_safetensors_defects_are_blocked(tmp_path: Path, case: str) -> None:
    good = {"a": ("F32", [2], b"\x00" * 8), "b": ("U8", [3], b"\x01\x02\x03")}
    data = s.safetensors_bytes(good)
    if case == "bad_json":
        data = data[:8] + b"{" + data[9:20] + b"]]]" + data[23:]
    elif case == "overlap":
        data = s.safetensors_bytes(good, header_override={
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "U8", "shape": [3], "data_offsets": [5, 8]}})  # fmt: skip
    elif case == "gap":
        data = s.safetensors_bytes(good, header_override={
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "U8", "shape": [2], "data_offsets": [9, 11]}})  # fmt: skip
    elif case == "unknown_dtype":
        data = s.safetensors_bytes({"a": ("F128", [1], b"\x00" * 16)})
    elif case == "too_long_header":
        data = (10**6).to_bytes(8, "little") + data[8:]
    elif case == "truncated":
        data = data[:-2]
    elif case == "wrong_size":
        data = s.safetensors_bytes({"a": ("F32", [3], b"\x00" * 8)})
    elif case == "trailing":
        data = data + b"\x00" * 4
    elif case == "not_object":
        data = s.safetensors_bytes({}, header_override=[1])  # type: ignore[arg-type]
    fr = one(s.write(tmp_path / "x.safetensors", data))
    assert fr.status == "blocked", fr


# ------------------------------------------------------------------------------ torch


def test_torch_zip_and_legacy(tmp_path: Path, marker: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to write real checkpoints")
    sd = {"w": torch.ones(3, 4), "b": torch.zeros(2, dtype=torch.int64),
          "h": torch.ones(5, dtype=torch.float16), "p": torch.nn.Parameter(torch.ones(2)),
          "lin": torch.nn.Linear(2, 3).state_dict()}  # fmt: skip
    torch.save(sd, tmp_path / "new.pt")
    torch.save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    assert one(tmp_path / "new.pt").status == "clean"
    assert one(tmp_path / "new.pt").format == "torch"
    legacy = one(tmp_path / "old.pt")
    assert (legacy.status, legacy.format) == ("clean", "torch-legacy")
    assert one(tmp_path / "module.pt").status == "clean"

    torch.save({"w": torch.ones(2), "x": s.touch_marker(marker)}, tmp_path / "evil.pt")
    torch.save({"w": torch.ones(2), "x": s.OpenFile(str(marker))}, tmp_path / "evil_old.pt",
               _use_new_zipfile_serialization=False)  # fmt: skip
    fr = one(tmp_path / "evil.pt")
    assert fr.status == "findings" and fr.findings[0].name == "posix.system"
    assert "!" in fr.findings[0].path and fr.findings[0].path.endswith("data.pkl")
    fo = one(tmp_path / "evil_old.pt")
    assert (fo.status, fo.format) == ("findings", "torch-legacy")
    assert fo.findings[0].name == "io.open"

    raw = (tmp_path / "old.pt").read_bytes()
    assert one(s.write(tmp_path / "old_tail.pt", raw + b"\x00" * 8)).status == "blocked"
    assert one(s.write(tmp_path / "old_cut.pt", raw[:-4])).status == "blocked"
    zraw = (tmp_path / "new.pt").read_bytes()
    assert one(s.write(tmp_path / "new_cut.pt", zraw[: len(zraw) // 2])).status == "blocked"


def test_torch_zip_with_unknown_member_is_blocked(tmp_path: Path) -> None:
    data = s.zip_of({"archive/data.pkl": pickle.dumps({"a": 1}, protocol=2),
                     "archive/version": b"3\n", "archive/extra/blob.bin": b"\x01\x02\x03"})  # fmt: skip
    fr = one(s.write(tmp_path / "m.pt", data))
    assert fr.status == "blocked"


# ------------------------------------------------------------------------------ ONNX


def test_onnx_external_data_locations(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    def model(location: str | None) -> bytes:
        init = helper.make_tensor("W", TensorProto.FLOAT, [2], [1.0, 2.0])
        if location is not None:
            init.ClearField("float_data")
            init.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", "0"), ("length", "8")):
                e = init.external_data.add()
                e.key, e.value = k, v
        node = helper.make_node("Add", ["X", "W"], ["Y"])
        graph = helper.make_graph([node], "g",
                                  [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
                                  [init])  # fmt: skip
        return bytes(helper.make_model(graph).SerializeToString())

    assert onnx
    assert one(s.write(tmp_path / "a.onnx", model(None))).status == "clean"
    fr = one(s.write(tmp_path / "b.onnx", model("weights.bin")))
    assert (fr.status, fr.format) == ("clean", "onnx")
    for bad in ("../../etc/passwd", "/etc/passwd", "sub/../../x", "C:\\\\x"):
        fr = one(s.write(tmp_path / "c.onnx", model(bad)))
        assert fr.status == "findings", bad
        assert fr.findings[0].name == "external_data.location"
    raw = model(None)
    assert one(s.write(tmp_path / "d.onnx", raw[:-3])).status == "blocked"


def test_real_onnx_sample_models_are_clean(tmp_path: Path) -> None:
    from tests import model_samples

    for name in ("logistic_regression", "two_input_model"):
        fn = getattr(model_samples, name, None)
        if fn is None:
            continue
        out = fn(tmp_path / f"{name}.onnx")
        fr = one(out)
        assert (fr.status, fr.format) == ("clean", "onnx"), fr


# ------------------------------------------------------------------------------ Keras


def test_keras_zip(tmp_path: Path, marker: Path) -> None:
    clean = one(s.write(tmp_path / "ok.keras", s.keras_zip([s.dense_layer()])))
    assert (clean.status, clean.format) == ("clean", "keras")
    bad = one(
        s.write(tmp_path / "bad.keras", s.keras_zip([s.dense_layer(), s.lambda_layer(marker)]))
    )
    assert bad.status == "findings"
    assert any(f.severity == "critical" and "Lambda" in f.name for f in bad.findings)
    custom = dict(s.dense_layer(), module="my_layers", class_name="Evil")
    fr = one(s.write(tmp_path / "custom.keras", s.keras_zip([custom])))
    assert [f.name for f in fr.findings] == ["my_layers.Evil"]


def test_keras_h5(tmp_path: Path, marker: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py writes real HDF5 files")
    for name, layers in (("ok.h5", [s.dense_layer()]), ("bad.h5", [s.lambda_layer(marker)])):
        with h5py.File(tmp_path / name, "w") as f:
            f.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                                  "config": {"layers": layers}})  # fmt: skip
            f.create_dataset("w", data=np.ones((4, 4)))
    assert one(tmp_path / "ok.h5").status == "clean"
    bad = one(tmp_path / "bad.h5")
    assert bad.format == "hdf5"
    assert "model_config:Lambda" in [f.name for f in bad.findings]
    assert all(f.severity == "critical" for f in bad.findings)


# ------------------------------------------------------------------------------ GGUF


def test_gguf(tmp_path: Path) -> None:
    fr = one(s.write(tmp_path / "m.gguf", s.gguf_bytes(chat_template="{{ messages }}")))
    assert (fr.status, fr.format) == ("clean", "gguf"), fr
    bad = s.gguf_bytes(chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert one(s.write(tmp_path / "t.gguf", bad)).status == "findings"
    assert (
        one(s.write(tmp_path / "n.gguf", s.gguf_bytes(n_tensors_claim=10**12))).status == "blocked"
    )
    raw = s.gguf_bytes()
    assert one(s.write(tmp_path / "cut.gguf", raw[:-20])).status == "blocked"
    assert (
        one(s.write(tmp_path / "v.gguf", raw[:4] + b"\x09\x00\x00\x00" + raw[8:])).status
        == "blocked"
    )


# ------------------------------------------------------------------------------ unknown, folders


@pytest.mark.parametrize("data", [b"hello world\n", b"\x00\x01\x02\x03" * 10, b"", b"{}",
                                  b"Reduce me"])  # fmt: skip
def test_unknown_files_are_blocked_never_clean(tmp_path: Path, data: bytes) -> None:
    fr = one(s.write(tmp_path / "model.pkl", data))
    assert fr.status == "blocked"
    assert fr.error is not None and fr.error.startswith("cannot verify:")


@pytest.mark.parametrize("mode", ["auto", "fork", "process", "spawn", "thread", "serial"])
def test_folder_parallel_one_bad_file_does_not_abort(
    tmp_path: Path, marker: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode != "auto":
        monkeypatch.setenv("AIMODEL_SCAN_PARALLEL", mode)
    (tmp_path / "d").mkdir()
    for i in range(20):
        np.save(tmp_path / "d" / f"a{i}.npy", np.arange(i))
    s.write(tmp_path / "d" / "sub" / "evil.pkl", s.evil_pickle(marker))
    s.write(tmp_path / "d" / "sub" / "junk.bin", b"junk")
    for jobs in (1, 2):
        report = scan_paths([str(tmp_path / "d")], jobs=jobs)
        assert len(report.files) == 22
        assert [f.status for f in report.files].count("clean") == 20
        assert {f.status for f in report.files} == {"clean", "findings", "blocked"}
        assert [f.path for f in report.files] == sorted(f.path for f in report.files)


def test_expected_sha256(tmp_path: Path) -> None:
    p = tmp_path / "a.npy"
    np.save(p, np.arange(3))
    digest = artifacts.sha256_of(str(p))
    assert one(p, expected_sha256=digest).status == "clean"
    assert one(p, expected_sha256="0" * 64).status == "blocked"


# ------------------------------------------------------------------------------ output, CLI


def test_run_scan_command_outputs_and_exit_codes(tmp_path: Path, marker: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    np.save(tmp_path / "ok.npy", np.arange(3))
    s.write(tmp_path / "bad" / "evil.pkl", s.evil_pickle(marker))
    assert run_scan_command([str(tmp_path / "ok.npy")], as_json=False, sarif=False) == 0
    out = capsys.readouterr()
    assert "ok.npy" in out.out and "clean" in out.out
    assert out.err == ""  # no progress bar when stderr is not a terminal
    assert run_scan_command([str(tmp_path / "bad")], as_json=True, sarif=False) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["files"][0]["findings"][0]["name"] == "posix.system"
    assert run_scan_command([str(tmp_path)], as_json=False, sarif=True) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    res = sarif["runs"][0]["results"]
    assert res[0]["level"] == "error"
    assert res[0]["locations"][0]["physicalLocation"]["region"]["byteOffset"] > 0
    assert run_scan_command([str(tmp_path / "nope")], as_json=False, sarif=False) == 2


def test_module_entry_point(tmp_path: Path, marker: Path) -> None:
    s.write(tmp_path / "evil.pkl", s.evil_pickle(marker))
    proc = subprocess.run([sys.executable, "-m", "bot.checks.scan", "--json", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["status"] == "findings"


def test_scan_import_is_light() -> None:
    code = ("import sys; before = set(sys.modules); import bot.checks.scan; "
            "heavy = {'numpy', 'torch', 'fsspec', 'slack_sdk', 'slack_bolt', 'github', 'flask', "
            "'huey', 'gunicorn', 'zipfile', 'json', 'concurrent.futures'}; "
            "print(sorted(heavy & (set(sys.modules) - before)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_report_types() -> None:
    r = ScanReport(())
    assert r.ok and r.to_json()["summary"]["files"] == 0
    assert r.to_sarif()["runs"][0]["results"] == []


# ------------------------------------------------------------------------------ artifacts


def test_artifacts_digest_and_uris(tmp_path: Path) -> None:
    import hashlib

    data = b"x" * (3 << 20) + b"tail"
    p = s.write(tmp_path / "blob.bin", data)
    want = hashlib.sha256(data).hexdigest()
    assert artifacts.sha256_of(str(p)) == want
    assert artifacts.sha256_of(p.as_uri()) == want
    assert artifacts.verify_digest(str(p), "sha256:" + want.upper()) == want
    with pytest.raises(artifacts.DigestMismatch):
        artifacts.verify_digest(str(p), "0" * 64)
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://m/blob.bin", "wb") as f:
        f.write(data)
    assert artifacts.sha256_of("memory://m/blob.bin") == want
    [listed] = artifacts.walk_files("memory://m")
    assert listed.startswith("memory://") and listed.endswith("m/blob.bin")
    assert artifacts.sha256_of(listed) == want
    assert scan_file(listed).status == "blocked"  # not a model: never clean
    buf = io.BytesIO()
    np.save(buf, np.arange(10.0))
    with fsspec.open("memory://m/sub/w.npy", "wb") as f:
        f.write(buf.getvalue())
    report = scan_paths(["memory://m/sub"])
    assert [(r.format, r.status) for r in report.files] == [("npy", "clean")]


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from bot.checks import scan as scan_mod

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(scan_mod._Progress, "DELAY", 0.05)
    tty, pipe = Terminal(), io.StringIO()
    bar = scan_mod._Progress(4, True, stream=tty).start()
    piped = scan_mod._Progress(4, True, stream=pipe).start()  # started alongside, same delay
    bar.update(2)
    piped.update(2)
    deadline = time.monotonic() + 10
    while "2/4 files" not in tty.getvalue():  # the terminal's bar has drawn: the delay is over
        assert time.monotonic() < deadline, "the bar never drew on the terminal"
        time.sleep(0.01)
    bar.close()
    piped.close()
    assert tty.getvalue().endswith("\r")  # the line is cleared at the end
    assert pipe.getvalue() == ""  # the same delay passed, and a pipe got nothing
    quick = Terminal()
    monkeypatch.setattr(scan_mod._Progress, "DELAY", 5.0)
    bar = scan_mod._Progress(4, True, stream=quick).start()
    bar.close()
    assert quick.getvalue() == ""  # work under the delay shows nothing


def test_sarif_locations_for_archive_members(tmp_path: Path, marker: Path) -> None:
    np.savez(tmp_path / "evil.npz", bad=np.array([s.touch_marker(marker)], dtype=object))
    sarif = scan_paths([str(tmp_path / "evil.npz")]).to_sarif()
    [res] = sarif["runs"][0]["results"]
    loc = res["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"].endswith("evil.npz")
    assert "region" not in loc["physicalLocation"]
    assert loc["logicalLocations"][0]["name"] == "bad.npy"


def test_peak_memory_of_a_big_numpy_pickle(tmp_path: Path) -> None:
    big = tmp_path / "arrays.pkl"
    with open(big, "wb") as f:
        pickle.dump({f"w{i}": np.ones(1 << 20) for i in range(24)}, f, protocol=4)  # 192 MiB
    # a small runner starts the scan: a child forked from pytest would count pytest's pages
    runner = ("import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-m', "
              "'bot.checks.scan', sys.argv[1]], stdout=subprocess.DEVNULL); "
              "_, st, u = os.wait4(p.pid, 0); print(os.waitstatus_to_exitcode(st), u.ru_maxrss)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", runner, str(big)], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.split()  # fmt: skip
    assert out[0] == "0"
    assert int(out[1]) / 1024 < 100, f"peak RSS {int(out[1]) / 1024:.0f} MiB"


def test_zip_reader_fast_path_and_fallback_agree(tmp_path: Path, marker: Path) -> None:
    import zipfile

    evil = s.evil_pickle(marker, 2)
    members = {"archive/data.pkl": evil, "archive/version": b"3\n"}
    plain = s.write(tmp_path / "plain.pt", s.zip_of(members))
    with zipfile.ZipFile(tmp_path / "commented.pt", "w") as zf:  # comment: zipfile path
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = b"hello"
    with zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    for p in (plain, tmp_path / "commented.pt", tmp_path / "deflated.pt"):
        fr = one(p)
        assert (fr.status, fr.format) == ("findings", "torch"), p
        assert fr.findings[0].offset == global_offsets(evil)[0]
    raw = bytearray(plain.read_bytes())
    i = raw.index(b"archive/data.pkl")  # the local header's name, not the central one
    raw[i : i + 7] = b"ARCHIVE"
    assert one(s.write(tmp_path / "mismatch.pt", bytes(raw))).status == "blocked"


def test_compressed_pickles_are_opened(tmp_path: Path, marker: Path) -> None:
    import bz2
    import gzip
    import lzma
    import zlib

    evil = s.evil_pickle(marker, 4)
    for name, packed in (("g.pkl.gz", gzip.compress(evil)), ("b.pkl.bz2", bz2.compress(evil)),
                         ("x.pkl.xz", lzma.compress(evil)), ("z.pkl.z", zlib.compress(evil))):  # fmt: skip
        fr = one(s.write(tmp_path / name, packed))
        assert fr.status == "findings", name
        assert fr.findings[0].name == "posix.system"
    cut = gzip.compress(evil)[:-12]
    assert one(s.write(tmp_path / "cut.gz", cut)).status == "blocked"


def test_real_torchscript_archive_is_reported_as_code(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch writes TorchScript archives")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "ts.pt"))
    fr = one(tmp_path / "ts.pt")
    assert (fr.status, fr.format) == ("findings", "torch")
    assert {f.severity for f in fr.findings} == {"medium"}
    assert one(tmp_path / "ts.pt", allow=["__torch__.*"]).findings[0].name.endswith(".py")


def test_torchscript_code_is_a_finding(tmp_path: Path) -> None:
    data = s.zip_of({"m/data.pkl": pickle.dumps({"a": 1}, protocol=2), "m/version": b"3\n",
                     "m/code/__torch__/net.py": b"def forward(self, x):\n  return x\n"})  # fmt: skip
    fr = one(s.write(tmp_path / "ts.pt", data))
    assert fr.status == "findings"
    assert fr.findings[0].severity == "medium"


def test_legacy_torch_payload_in_any_of_its_pickles(tmp_path: Path, marker: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to write real checkpoints")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    raw = (tmp_path / "old.pt").read_bytes()
    # the same file with a payload pickle appended after the storages is not a valid layout
    fr = one(s.write(tmp_path / "tail.pt", raw + s.evil_pickle(marker, 2)))
    assert fr.status == "blocked"


def test_huge_memo_stays_bounded_and_fails_closed_only_when_needed(tmp_path: Path) -> None:
    from bot.checks.scanners import pickle_vm

    words = [f"w{i}" for i in range(pickle_vm.MAX_MEMO + 5000)]
    p = s.write(tmp_path / "vocab.pkl", pickle.dumps(words, protocol=4))
    assert one(p).status == "clean"  # many memoized strings: still scanned, not blocked
    limit = pickle_vm.MAX_MEMO
    # a module string pushed fresh after the limit still resolves
    body = bytearray(b"\x80\x04")
    for _ in range(limit + 10):
        body += b"\x8c\x01x\x94"
    body += b"\x8c\x02os\x94\x8c\x06system\x94\x93."
    assert one(s.write(tmp_path / "late_fresh.pkl", bytes(body))).status == "findings"
    # one memoized past the limit and fetched back cannot be named: blocked, never clean
    late = bytearray(b"\x80\x04")
    for _ in range(limit + 10):
        late += b"\x8c\x01x\x94"
    late += b"\x8c\x02os\x94j" + (limit + 10).to_bytes(4, "little") + b"\x8c\x06system\x93."
    fr = one(s.write(tmp_path / "late_get.pkl", bytes(late)))
    assert fr.status == "blocked"


def test_old_joblib_side_files_are_followed_and_stay_beside_the_model(tmp_path: Path,
                                                                     marker: Path) -> None:  # fmt: skip
    def wrapper(filename: str) -> bytes:
        name = filename.encode()
        return (b"\x80\x02cjoblib.numpy_pickle_compat\nNDArrayWrapper\n)\x81}(U\x08filename"
                + b"U" + bytes([len(name)]) + name + b"ub.")  # fmt: skip

    np.save(tmp_path / "ok.pkl_01.npy", np.arange(3.0))
    assert one(s.write(tmp_path / "ok.pkl", wrapper("ok.pkl_01.npy"))).status == "clean"
    # the side file is scanned by its own bytes: an object array's pickle runs under np.load
    np.save(tmp_path / "evil.pkl_01.npy", np.array([s.touch_marker(marker)], dtype=object),
            allow_pickle=True)  # fmt: skip
    fr = one(s.write(tmp_path / "evil.pkl", wrapper("evil.pkl_01.npy")))
    assert fr.status == "findings"
    assert [(f.name, f.path) for f in fr.findings] == [
        ("posix.system", str(tmp_path / "evil.pkl_01.npy"))]
    missing = one(s.write(tmp_path / "gone.pkl", wrapper("gone.pkl_01.npy")))
    assert missing.status == "blocked" and "side file" in (missing.error or "")
    (tmp_path / "link.npy").symlink_to("/etc/hostname")
    for bad in ("../../etc/x.npy", "/tmp/x.npy", "link.npy"):
        fr = one(s.write(tmp_path / "bad.pkl", wrapper(bad)))
        assert fr.status == "findings", bad
        assert fr.findings[0].name == "joblib.NDArrayWrapper.filename"
        assert fr.findings[0].severity == "critical"


def test_scipy_sparse_matrices_are_plain_data(tmp_path: Path) -> None:
    sp = pytest.importorskip("scipy.sparse", reason="scipy comes with scikit-learn")
    data = pickle.dumps({"m": sp.csr_matrix(np.eye(3)), "a": sp.coo_array(np.eye(2))}, protocol=4)
    assert one(s.write(tmp_path / "sparse.pkl", data)).status == "clean"
    assert one(s.write(tmp_path / "f.pkl", s.global_pickle("scipy.sparse", "load_npz"))).findings


def test_mutated_pickles_never_crash_and_never_hide_an_import(tmp_path: Path) -> None:
    """Differential fuzzing against pickletools: flip, drop and insert bytes in real pickles;
    the scanner must give a verdict every time, and whenever pickletools can read a mutant
    that imports a global off the allow-list, that mutant must not be clean."""
    import random

    from bot.checks.scanners.policy import AllowList

    allow = AllowList()
    rnd = random.Random(1234)
    seeds = [
        pickle.dumps({"w": np.arange(4.0), "n": "x", "t": (1, 2)}, protocol=p) for p in range(6)
    ]
    seeds += [s.global_pickle("mypkg", "Thing", p) for p in (0, 2, 4)]
    path = tmp_path / "m.pkl"
    for i in range(600):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            j = rnd.randrange(len(data))
            action = rnd.random()
            if action < 0.5:
                data[j] = rnd.randrange(256)
            elif action < 0.75:
                del data[j]
            else:
                data.insert(j, rnd.randrange(256))
        path.write_bytes(bytes(data))
        fr = scan_file(str(path))
        assert fr.status in ("clean", "findings", "blocked"), i
        try:
            ops = list(pickletools.genops(bytes(data)))
        except Exception:
            continue
        end = ops[-1][2] + 1 if ops and ops[-1][0].name == "STOP" and ops[-1][2] is not None else -1
        if end != len(data):
            continue
        imports = [str(arg).partition(" ") for op, arg, _ in ops if op.name in ("GLOBAL", "INST")]
        bad = [f"{m}.{n}" for m, _, n in imports if not allow.allowed(m, n)]
        if fr.status == "clean":
            assert not bad, (i, bytes(data), bad)
            assert not any(op.name.startswith("EXT") for op, _, _ in ops), (i, bytes(data))


def test_real_gguf_written_by_gguf_py(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf", reason="llama.cpp's gguf-py writes real GGUF files")
    path = tmp_path / "real.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    w.add_tensor("tok_embd.weight", np.ones((4, 8), dtype=np.float32))
    w.add_tensor("out.weight", np.ones((3,), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert (one(path).status, one(path).format) == ("clean", "gguf")
    raw = path.read_bytes()
    # the last tensor is 6 bytes plus 26 bytes of alignment padding: cut into its data
    assert one(s.write(tmp_path / "cut.gguf", raw[:-30])).status == "blocked"


def test_real_keras_models(tmp_path: Path) -> None:
    """Keras 3 (torch backend) writes .keras and legacy .h5 files, with and without a Lambda."""
    import importlib.util
    import os

    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is a test dependency (with the torch backend)")
    script = (
        "import sys, keras\n"
        "d = sys.argv[1]\n"
        "ok = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "lam = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])\n"
        "for name, m in (('ok', ok), ('lam', lam)):\n"
        "    m.save(f'{d}/{name}.keras')\n"
        "    m.save(f'{d}/{name}.h5')\n"
    )
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONWARNINGS="ignore")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True,
                   capture_output=True, timeout=240)  # fmt: skip
    for name in ("ok.keras", "ok.h5"):
        assert one(tmp_path / name).status == "clean", name
    for name in ("lam.keras", "lam.h5"):
        fr = one(tmp_path / name)
        assert fr.status == "findings", name
        assert any("Lambda" in f.name and f.severity == "critical" for f in fr.findings)
