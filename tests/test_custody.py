"""The registry keeps the bytes: once registered, a model or data set no longer depends on
the file the person pointed at. End to end through the real CLI on the embedded default."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings
from tests.conftest import ModelFiles, Run
from tests.model_samples import write_csv

ROOT = Path(__file__).resolve().parent.parent
CHECKS_GREEN = {"manifest": "success", "scan": "success", "validate": "success", "sign": "success"}


def _checks(aimodel: Run, number: int) -> dict[str, str]:
    return {n: c["state"] for n, c in aimodel("pr", "show", str(number), "--json").json["checks"].items()}


def _main_file(home: Path, path: str, ref: str = "main") -> dict[str, object]:
    text = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=home / "repo.git", capture_output=True, check=True, text=True).stdout
    data: dict[str, object] = yaml.safe_load(text)
    return data


def _objects(home: Path) -> list[Path]:
    """The stored objects (named by their digest), not the signatures and attestations beside them."""
    return sorted(p for p in (home / "artifacts" / "sha256").iterdir() if len(p.name) == 64)


def _create(aimodel: Run, model: Path, data: str, sla: str = "accuracy>=0.9") -> str:
    """Register fraud; returns the pull request's branch."""
    return str(aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model),
                       "--dataset-uri", data, "--label-column", "label", "--SLA", sla, "--as", "ada", "--json").json["branch"])


def _deploy(aimodel: Run, env: str) -> None:
    """eve asks, a DevOps Engineer approves and merges (what prod needs; harmless elsewhere)."""
    number = str(aimodel("deploy", "fraud", "--env", env, "--as", "eve", "--json").json["pr"])
    aimodel("pr", "approve", number, "--as", "dev")
    aimodel("pr", "merge", number, "--as", "dev")


def test_the_manifest_names_the_stored_bytes_and_the_source(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    art = _main_file(home, "models/fraud/model.yaml")["spec"]["versions"][-1]["artifact"]  # type: ignore[index]
    assert art == {"uri": f"store:sha256/{digest}", "sha256": digest, "format": "onnx",
                   "size": model_files.onnx.stat().st_size, "source": model_files.onnx.as_uri()}
    data_digest = hashlib.sha256(model_files.data.read_bytes()).hexdigest()
    spec = _main_file(home, "datasets/transactions.yaml")["spec"]
    assert spec["uri"] == f"store:sha256/{data_digest}" and spec["sha256"] == data_digest  # type: ignore[index]
    assert spec["source"] == model_files.data.as_uri()  # type: ignore[index]
    assert (home / "artifacts" / "sha256" / digest).read_bytes() == model_files.onnx.read_bytes()
    assert not list((home / "artifacts" / "incoming").iterdir())  # no half object left behind


def test_deleting_the_sources_changes_nothing(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    original = model_files.onnx.read_bytes()
    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    model_files.onnx.unlink()
    model_files.data.unlink()
    # A new version re-runs every check, on the stored bytes: the sources are gone.
    number = aimodel("update", "fraud", "--version", "1.0.1", "--as", "eve", "--json").json["pr"]
    assert _checks(aimodel, number) == CHECKS_GREEN
    aimodel("pr", "merge", str(number), "--as", "eve")
    for env in ("dev", "test", "prod"):
        _deploy(aimodel, env)
        assert (home / "deploy" / env / "fraud" / "1.0.1" / "model.onnx").read_bytes() == original
    listed = aimodel("list", "--json").json[0]["environments"]
    assert listed == {e: {"version": "1.0.1", "state": "running"} for e in ("dev", "test", "prod")}


def test_overwriting_the_sources_changes_nothing(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    original = model_files.onnx.read_bytes()
    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    model_files.onnx.write_bytes(model_files.onnx_v2.read_bytes())
    # Every row now wrong: an unpinned data set would turn the passing SLA into a failing one.
    write_csv(model_files.data, rows=100, right=0)
    number = aimodel("update", "fraud", "--version", "1.0.1", "--as", "eve", "--json").json["pr"]
    pr = aimodel("pr", "show", str(number), "--json").json
    assert {n: c["state"] for n, c in pr["checks"].items()} == CHECKS_GREEN
    assert "0.95" in pr["checks"]["validate"]["details"]  # measured on the pinned rows
    aimodel("pr", "merge", str(number), "--as", "eve")
    _deploy(aimodel, "dev")
    assert (home / "deploy" / "dev" / "fraud" / "1.0.1" / "model.onnx").read_bytes() == original


def test_the_same_bytes_are_stored_once(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    copy = tmp_path / "elsewhere" / "same.onnx"
    copy.parent.mkdir()
    copy.write_bytes(model_files.onnx.read_bytes())
    aimodel("create", "fraud2", "--app", "payments", "--dataset", "transactions", "--artifact", str(copy), "--as", "ada")
    assert len(_objects(home)) == 2  # the model and the data set, each once
    art = _main_file(home, "models/fraud/model.yaml")["spec"]["versions"][-1]["artifact"]  # type: ignore[index]
    assert (home / "artifacts" / str(art["uri"]).removeprefix("store:")).is_file()  # type: ignore[index]


def _start_worker(home: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=cwd,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # the worker says it serves once it holds its lock
    assert "serving the queue" in line, line
    return proc


def test_a_relative_data_set_path_is_read_where_it_was_typed(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "worker-folder"
    elsewhere.mkdir()
    worker = _start_worker(home, elsewhere)
    try:
        monkeypatch.chdir(model_files.data.parent)  # the person types a path relative to their folder
        branch = _create(aimodel, model_files.onnx, model_files.data.name)
        deadline = time.monotonic() + 90
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = _checks(aimodel, 1)
            if len(states) == 4 and "pending" not in states.values():
                break
            time.sleep(0.3)
        assert states == CHECKS_GREEN
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        if worker.stderr:
            worker.stderr.close()
    spec = _main_file(home, "datasets/transactions.yaml", branch)["spec"]
    assert spec["source"] == model_files.data.as_uri()  # type: ignore[index]


def test_a_tampered_stored_object_is_refused_by_deploy_and_checks(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    deploy = aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"]
    # a deploy registers no version: the version's checks ran when it was registered
    assert _checks(aimodel, deploy) == {"manifest": "success", "scan": "skipped", "validate": "skipped", "sign": "skipped"}
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    stored = home / "artifacts" / "sha256" / digest
    os.chmod(stored, 0o644)  # objects are kept read-only; a deliberate hand gets past that
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    expected = f"the stored object sha256/{digest} does not match its digest"

    merged = aimodel("pr", "merge", str(deploy), "--as", "dev", expect=1)
    assert f"dev: REFUSED fraud: {expected}" in merged.out
    state = json.loads((home / "deploy" / "dev" / "_state.json").read_text())["models"]["fraud"]
    assert state["state"] == "failed" and expected in state["reason"]
    assert not (home / "deploy" / "dev" / "fraud" / "1.0.0").exists()
    assert aimodel("list", "--json").json[0]["environments"]["dev"]["state"] == "failed"

    number = aimodel("update", "fraud", "--version", "1.0.1", "--as", "eve", "--json").json["pr"]
    checks = aimodel("pr", "show", str(number), "--json").json["checks"]
    assert checks["scan"]["state"] == "failure" and expected in checks["scan"]["summary"]
    assert checks["sign"]["state"] == "skipped"


def test_a_remote_store_without_its_backend_names_the_extra() -> None:
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here: the missing-backend error cannot happen")
    with pytest.raises(ConfigError) as caught:
        load_settings({"AIMODEL_HOME": "/tmp/unused", "AIMODEL_ARTIFACT_STORE": "s3://team-models/registry"})
    assert "pip install 'aimodel-gitops[remote]'" in str(caught.value) and "s3fs" in str(caught.value)


def test_an_older_manifest_with_a_file_uri_still_deploys_from_its_source(
    aimodel: Run, home: Path, model_files: ModelFiles
) -> None:
    """Manifests written before the store name the file itself: read through the sources policy."""
    from bot import lifecycle
    from bot.app import Context
    from bot.deploy.reconcile import reconcile

    _create(aimodel, model_files.onnx, str(model_files.data))
    aimodel("pr", "merge", "1", "--as", "ada")
    for stored in _objects(home):
        stored.chmod(0o644)
        stored.unlink()  # the store is not consulted for such a manifest
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        base = ctx.workspace.head_of()
        doc = yaml.safe_load(ctx.workspace.read_file(base, "models/fraud/model.yaml") or b"")
        art = doc["spec"]["versions"][-1]["artifact"]
        doc["spec"]["versions"][-1]["artifact"] = {k: v for k, v in art.items() if k != "source"} | {"uri": model_files.onnx.as_uri()}
        app = yaml.safe_load(ctx.workspace.read_file(base, "apps/payments.yaml") or b"")
        app["spec"]["environments"] = {"dev": {"fraud": "1.0.0"}}
        files = {"models/fraud/model.yaml": yaml.safe_dump(doc, sort_keys=False).encode(),
                 "apps/payments.yaml": yaml.safe_dump(app, sort_keys=False).encode()}
        commit = ctx.workspace.commit_change(base, files, "older form")
        ctx.workspace.push(commit, "main", expect=base)
        lifecycle.deploy(ctx, commit, None, lambda: reconcile(ctx))
    deployed = home / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx"
    assert deployed.read_bytes() == model_files.onnx.read_bytes()
    assert json.loads(deployed.with_name("metadata.json").read_text())["source"] == model_files.onnx.as_uri()


def test_a_store_that_cannot_be_written_refuses_with_a_clear_message(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    monkeypatch.setenv("AIMODEL_ARTIFACT_STORE", str(blocked))
    result = aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
                     "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada", expect=1)
    assert f"cannot keep artifact {model_files.onnx.as_uri()} in the artifact store" in result.err
    assert "Traceback" not in result.text
