"""Deployed models answer requests: the embedded default served by real MLServer processes.

End to end through the real CLI: the supervisor `aimodel serve` runs (one MLServer per
environment, bound to 127.0.0.1), real HTTP to MLServer's V2 API, predictions compared with
onnxruntime run on the stored artifact. Needs the serve extra (CI installs it).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from bot.serving import control, servers
from tests.conftest import ModelFiles, Run

pytestmark = [
    pytest.mark.skipif(not control.installed(), reason="needs the serve extra (pip install 'aimodel-gitops[serve]')"),
    pytest.mark.timeout(180),  # real MLServer processes: about 10 s a test on a loaded 2-core machine
]

ROOT = Path(__file__).resolve().parent.parent
ROWS = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.5, 0.25, 3, 1]], dtype=np.float32)


def _wait(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, parts.path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def _infer(url: str, rows: np.ndarray) -> tuple[int, Any]:
    return _http("POST", url, {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.flatten().tolist()}]})


def _outputs(body: Any) -> dict[str, np.ndarray]:
    return {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in body["outputs"]}


def _stored(home: Path, model: Path) -> Path:
    return home / "artifacts" / "sha256" / hashlib.sha256(model.read_bytes()).hexdigest()


def _onnxruntime(path: Path, rows: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"x": rows}), strict=True))


def _deploy(aimodel: Run, env: str = "dev", expect: int = 0) -> str:
    number = str(aimodel("deploy", "fraud", "--env", env, "--as", "dev", "--json").json["pr"])
    return aimodel("pr", "merge", number, "--as", "dev", expect=expect).out


def _merge_update(aimodel: Run, artifact: Path, expect: int = 0) -> str:
    """Register the new version, then deploy it to dev (an update alone runs it nowhere)."""
    number = str(aimodel("update", "fraud", "--artifact", str(artifact), "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")
    return _deploy(aimodel, expect=expect)


@pytest.fixture
def supervisor(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    """The model servers' supervisor, the process `aimodel serve` starts beside the web process."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the supervisor and MLServer import this checkout's bot
    log = (tmp_path / "supervisor.log").open("wb")
    proc = subprocess.Popen(control.supervisor_command(), env={**os.environ, "AIMODEL_HOME": str(home)}, stderr=log)
    try:
        _wait("the supervisor", lambda: servers.supervisor_running(home))
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def test_a_deployed_model_answers_as_onnxruntime_does_and_an_update_replaces_it(
    aimodel: Run, home: Path, model_files: ModelFiles, supervisor: subprocess.Popen[bytes]
) -> None:
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")
    assert servers.read(home, "dev") is None  # no model in dev yet: no server for it
    out = _deploy(aimodel)
    assert "dev" in out

    record = servers.read(home, "dev")
    assert record is not None and record.host == "127.0.0.1"
    listed = aimodel("list", "--json").json[0]["environments"]["dev"]
    endpoint = f"http://127.0.0.1:{record.port}/v2/models/fraud/infer"
    assert listed == {"version": "1.0.0", "state": "running", "answers": True, "endpoint": endpoint}
    assert f"dev  fraud  1.0.0    yes      {endpoint}" in aimodel("list").out

    # the application's release says where its model answers (updated together with it)
    release = json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())
    assert release["endpoints"] == {"fraud": f"{record.url}/v2/models/fraud/versions/1.0.0/infer"}
    status, body = _infer(release["endpoints"]["fraud"], ROWS)
    assert status == 200, body
    assert body["model_version"] == "1.0.0"
    served, direct = _outputs(body), _onnxruntime(_stored(home, model_files.onnx), ROWS)
    assert served.keys() == direct.keys() == {"scores"}
    np.testing.assert_array_equal(served["scores"], direct["scores"])
    as_fp64 = _http("POST", endpoint, {"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP64", "data": ROWS.flatten().tolist()}]})
    assert as_fp64[0] == 200 and np.array_equal(_outputs(as_fp64[1])["scores"], direct["scores"])  # JSON numbers: cast to the model's type
    wrong = _http("POST", endpoint, {"inputs": [{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    assert wrong == (400, {"error": "unknown input 'y'; the model takes x"})

    # update -> merged -> deployed to dev: the new version answers, the old one is unloaded
    _merge_update(aimodel, model_files.onnx_v2)
    status, body = _infer(endpoint, ROWS)
    assert status == 200 and body["model_version"] == "1.0.1"
    np.testing.assert_array_equal(_outputs(body)["probabilities"], _onnxruntime(_stored(home, model_files.onnx_v2), ROWS)["probabilities"])
    assert _http("GET", f"{record.url}/v2/models/fraud/versions/1.0.0/ready")[0] != 200
    assert _infer(f"{record.url}/v2/models/fraud/versions/1.0.0/infer", ROWS)[0] == 404
    assert sorted(p.relative_to(home / "serving" / "dev").as_posix() for p in (home / "serving" / "dev").rglob("*.json")) == [
        "fraud/1.0.1/model-settings.json"
    ]
    listed = aimodel("list", "--json").json[0]["environments"]["dev"]
    assert listed["version"] == "1.0.1" and listed["answers"] is True

    detail = aimodel("status", "fraud").out
    assert f"dev      1.0.1 answers at {endpoint}" in detail
    assert f"serving dev: MLServer at {record.url}, 1 model version(s) answering" in aimodel("status").out

    # rollback: the previous release answers again (its files were kept; MLServer loads it back)
    number = str(aimodel("rollback", "payments", "--env", "dev", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")
    status, body = _infer(endpoint, ROWS)
    assert status == 200 and body["model_version"] == "1.0.0"
    np.testing.assert_array_equal(_outputs(body)["scores"], direct["scores"])
    assert _infer(f"{record.url}/v2/models/fraud/versions/1.0.1/infer", ROWS)[0] == 404  # the rolled-back version is unloaded
    release = json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())
    assert release["models"] == {"fraud": "1.0.0"} and release["endpoints"]["fraud"].endswith("/versions/1.0.0/infer")

    # destroyed: unloaded, and an environment with no models left has no server
    number = str(aimodel("destroy", "fraud", "--with-apps", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")
    try:
        gone: int | None = _infer(endpoint, ROWS)[0]
    except OSError:  # the server has already stopped
        gone = None
    assert gone in (404, None)
    _wait("the dev model server to stop", lambda: servers.read(home, "dev") is None and not servers.alive(record.pid))


def _broken_onnx(path: Path) -> Path:
    """A model the scanner passes and onnxruntime cannot load (an operator no runtime has)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mystery", ["x"], ["scores"], domain="com.example")], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_a_version_that_cannot_load_leaves_the_previous_one_answering(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path, supervisor: subprocess.Popen[bytes]
) -> None:
    # no SLA: validate has nothing to run, so the broken model passes every check and merges
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")
    _deploy(aimodel)
    record = servers.read(home, "dev")
    assert record is not None

    out = _merge_update(aimodel, _broken_onnx(tmp_path / "files" / "broken.onnx"), expect=1)
    assert "REFUSED fraud" in out and "MLServer could not load fraud 1.0.1: onnxruntime cannot load" in out
    assert "Mystery" in out and str(home) not in out  # the reason, without the server's paths
    status, body = _infer(f"{record.url}/v2/models/fraud/infer", ROWS)
    assert status == 200 and body["model_version"] == "1.0.0"
    assert json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())["models"] == {"fraud": "1.0.0"}
    listed = aimodel("list", "--json").json[0]["environments"]["dev"]
    assert listed["version"] == "1.0.0" and listed["state"] == "failed" and listed["answers"] is True
    assert "Mystery" in listed["reason"]
    assert not (home / "serving" / "dev" / "fraud" / "1.0.1").exists()  # refused: MLServer's repository forgets it


def test_serve_runs_a_model_server_per_environment_and_stops_it(
    aimodel: Run, home: Path, model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # deployed while serving is off: files only, and `list` says so
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")
    _deploy(aimodel)
    assert "Serving is off: `aimodel serve` is not running" in aimodel("list").out
    assert "answers" not in aimodel("list", "--json").json[0]["environments"]["dev"]

    from bot.serving.supervisor import free_port

    port = free_port("127.0.0.1")
    monkeypatch.setenv("AIMODEL_SERVING_PORTS", f"dev={port}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", "0", "--no-worker"],
                             env={**os.environ, "AIMODEL_HOME": str(home)}, stderr=log, cwd=tmp_path)
    try:
        record = _wait("the dev model server", lambda: servers.read(home, "dev"))
        assert (record.host, record.port) == ("127.0.0.1", port)  # the configured port, on loopback
        endpoint = f"{record.url}/v2/models/fraud/infer"
        status, body = _infer(endpoint, ROWS)  # what was deployed before serve started answers
        assert status == 200 and body["model_version"] == "1.0.0"
        # another process's `list` (in this one, a command would join serve's metrics directory)
        listed = subprocess.run([sys.executable, "-m", "bot.cli", "list", "--json"], env={**os.environ, "AIMODEL_HOME": str(home)},
                                capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True)
        assert json.loads(listed.stdout)[0]["environments"]["dev"]["endpoint"] == endpoint

        os.kill(record.pid, signal.SIGKILL)  # a model server that dies is started again, its models loaded
        again = _wait("the dev model server again", lambda: (r := servers.read(home, "dev")) is not None and r.pid != record.pid and r)
        assert again.port == port
        status, body = _infer(endpoint, ROWS)
        assert status == 200 and body["model_version"] == "1.0.0"
        record = again
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()
    assert not servers.alive(record.pid)  # the model server stopped with serve
    assert servers.read(home, "dev") is None and not servers.supervisor_running(home)


def test_the_model_server_listens_on_the_configs_port_and_follows_a_change_of_it(
    aimodel: Run, home: Path, created: str, supervisor: subprocess.Popen[bytes]
) -> None:
    from bot.serving.supervisor import free_port
    from tests.test_serving_layout import set_port

    first, second = free_port("127.0.0.1"), free_port("127.0.0.1")
    set_port(home, "dev", first)
    _deploy(aimodel)
    record = servers.read(home, "dev")
    assert record is not None and (record.host, record.port) == ("127.0.0.1", first)
    assert aimodel("list", "--json").json[0]["environments"]["dev"]["endpoint"] == f"http://127.0.0.1:{first}/v2/models/fraud/infer"

    set_port(home, "dev", second)  # merged and fetched: the server moves, its models loaded again
    moved = _wait("the dev model server on its new port", lambda: (r := servers.read(home, "dev")) is not None and r.port == second and r)
    status, body = _infer(f"{moved.url}/v2/models/fraud/infer", ROWS)
    assert status == 200 and body["model_version"] == "1.0.0"
    assert not servers.alive(record.pid)  # the server on the old port stopped
