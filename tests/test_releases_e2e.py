"""Releases end to end through the real CLI on the embedded default (local forge, local
target): records with the pull request, author and approvers; a refused apply that leaves
the previous release live, is told, retried and applied by `aimodel sync` once the stored
object is restored; drift found by the worker's periodic task and repaired by `sync`; a
process killed in the middle of a copy."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.app import Context
from bot.config import load_settings
from bot.deploy.records import ModelPin, ReleaseLog
from bot.forges.local import LocalForge
from bot.gitops import Actor
from tests.conftest import ModelFiles, Run
from tests.file_face import recorded

ROOT = Path(__file__).resolve().parent.parent
FACES = "handlers.faces,tests.file_face"


@pytest.fixture(autouse=True)
def _file_face(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_FACES", FACES)


def _create(aimodel: Run, model: Path, data: Path) -> None:
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model),
            "--dataset-uri", str(data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")


def _deploy(aimodel: Run, env: str, expect: int = 0, before_merge: Callable[[], object] = lambda: None) -> int:
    """eve asks, a DevOps Engineer approves and merges (what prod needs; harmless elsewhere)."""
    number = int(aimodel("deploy", "fraud", "--env", env, "--as", "eve", "--json").json["pr"])
    aimodel("pr", "approve", str(number), "--as", "dev")
    before_merge()  # after the checks passed
    aimodel("pr", "merge", str(number), "--as", "dev", expect=expect)
    return number


def _main_commit(home: Path) -> str:
    return subprocess.run(["git", "rev-parse", "main"], cwd=home / "repo.git", capture_output=True, text=True, check=True).stdout.strip()


def _release(home: Path, env: str) -> dict[str, object] | None:
    path = home / "deploy" / env / "_releases" / "payments.json"
    return json.loads(path.read_text()) if path.exists() else None


def _tamper(home: Path, digest: str) -> tuple[Path, bytes]:
    stored = home / "artifacts" / "sha256" / digest
    original = stored.read_bytes()
    stored.chmod(0o644)  # objects are kept read-only; a deliberate hand gets past that
    stored.write_bytes(original[: len(original) // 2] + bytes([original[len(original) // 2] ^ 1]) + original[len(original) // 2 + 1:])
    return stored, original


def _wait_for(what: str, probe: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_deploy_writes_a_release_record_with_its_pr_author_and_approvers(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    _create(aimodel, model_files.onnx, model_files.data)
    number = _deploy(aimodel, "dev")
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    record = ReleaseLog(home / "releases").get("dev-payments-1")
    assert record is not None
    assert (record.env, record.app, record.pr, record.author, record.approvers, record.result) == ("dev", "payments", number, "eve", ("dev",), "ok")
    assert record.models == {"fraud": ModelPin("1.0.0", digest)} and record.commit == _main_commit(home)
    assert 0 < record.started <= record.finished
    folder = home / "deploy" / "dev" / "fraud" / "1.0.0"
    assert (folder / "model.onnx").read_bytes() == model_files.onnx.read_bytes()
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["file"], meta["sha256"], meta["format"], meta["release"], meta["commit"]) == ("model.onnx", digest, "onnx", "dev-payments-1", record.commit)
    assert _release(home, "dev") == {**(_release(home, "dev") or {}), "models": {"fraud": "1.0.0"}, "release": "dev-payments-1"}
    summary = aimodel("pr", "show", str(number), "--json").json["meta"]["deploy"]["summary"]
    assert "dev: deployed fraud@1.0.0; released payments; records dev-payments-1" in summary


def test_a_tampered_object_is_refused_told_and_applied_by_sync_once_restored(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    _create(aimodel, model_files.onnx, model_files.data)
    _deploy(aimodel, "dev")
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    stored, original = home / "artifacts" / "sha256" / digest, (home / "artifacts" / "sha256" / digest).read_bytes()
    reason = f"the stored object sha256/{digest} does not match its digest"

    number = _deploy(aimodel, "test", expect=1, before_merge=lambda: _tamper(home, digest))
    assert _release(home, "test") is None and _release(home, "dev") is not None  # what ran keeps running, nothing half
    assert not (home / "deploy" / "test" / "fraud").exists() and not (home / "deploy" / "test" / ".staging").exists()
    failed = ReleaseLog(home / "releases").get("test-payments-1")
    assert failed is not None and failed.result == "failed" and reason in failed.reason and failed.pr == number
    told = [n for n in recorded(home) if n["kind"] == "deploy_failed" and n["pr"] == number]
    assert len(told) == 1 and reason in told[0]["text"] and "aimodel sync --env test" in told[0]["text"]
    listed = aimodel("list").out
    assert f"fraud in test: 1.0.0: {reason}" in listed and "(retry: `aimodel sync --env test`)" in listed
    status = aimodel("status").out
    assert f"test: apply failed: fraud 1.0.0: {reason}" in status
    assert reason in aimodel("status", "--json").json["deployments"]["test"]["failed"][0]
    # deploy never answers "nothing to do" while the environment does not run what it should
    again = aimodel("deploy", "fraud", "--env", "test", "--as", "dev", expect=1).err
    assert "fraud 1.0.0 is already what test should run, but test runs fraud 1.0.0 (failed: 1.0.0: " in again
    assert "`aimodel sync --env test` applies it again" in again and "Nothing to do" not in again

    assert "Refused" in aimodel("sync", "--env", "test", "--as", "ada", expect=1).err  # a Data Scientist may not deploy
    assert "There is no environment 'nowhere'" in aimodel("sync", "--env", "nowhere", "--as", "dev", expect=1).err
    still = aimodel("sync", "--env", "test", "--as", "dev", expect=1)  # not restored yet: refused again, says so
    assert f"REFUSED fraud: {reason}" in still.out and "test: payments 1.0.0 (fraud 1.0.0) is not released" in still.out

    stored.write_bytes(original)
    synced = aimodel("sync", "--env", "test", "--as", "dev")
    assert "test: deployed fraud@1.0.0; released payments; records test-payments-3" in synced.out
    assert (_release(home, "test") or {})["models"] == {"fraud": "1.0.0"}
    assert aimodel("list", "--json").json[0]["environments"]["test"] == {"version": "1.0.0", "state": "running"}
    assert "deployments: as desired" in aimodel("status").out
    record = ReleaseLog(home / "releases").get("test-payments-3")
    assert record is not None and record.ok and record.author == "dev" and record.pr is None


def test_a_failed_apply_is_retried_by_the_sweep_until_it_applies_or_gives_up(
    aimodel: Run, home: Path, model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMODEL_DEPLOY_RETRY_DELAY", "0")
    monkeypatch.setenv("AIMODEL_DEPLOY_ATTEMPTS", "3")
    _create(aimodel, model_files.onnx, model_files.data)
    _deploy(aimodel, "dev")
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    stored, original = home / "artifacts" / "sha256" / digest, (home / "artifacts" / "sha256" / digest).read_bytes()
    number = _deploy(aimodel, "test", expect=1, before_merge=lambda: _tamper(home, digest))

    def deploy_record() -> dict[str, object]:
        meta = aimodel("pr", "show", str(number), "--json").json["meta"]  # drains the queue, sweeping first
        return meta["deploy"]  # type: ignore[no-any-return]

    second = deploy_record()  # still tampered: attempt 2 fails, told to nobody (not the first, not the last)
    assert (second["ok"], second["attempts"]) == (False, 2)
    assert len([n for n in recorded(home) if n["kind"] == "deploy_failed" and n["pr"] == number]) == 1
    stored.write_bytes(original)
    third = deploy_record()
    assert (third["ok"], third["attempts"]) == (True, 3)
    assert (_release(home, "test") or {})["models"] == {"fraud": "1.0.0"}
    deployed = [n for n in recorded(home) if n["kind"] == "deployed" and n["pr"] == number]
    assert len(deployed) == 1 and "Applied on attempt 3." in deployed[0]["text"]
    assert deploy_record()["attempts"] == 3  # applied: the sweep leaves it


def test_retries_stop_after_the_last_attempt_which_is_told(
    aimodel: Run, home: Path, model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMODEL_DEPLOY_RETRY_DELAY", "0")
    monkeypatch.setenv("AIMODEL_DEPLOY_ATTEMPTS", "2")
    _create(aimodel, model_files.onnx, model_files.data)
    _deploy(aimodel, "dev")
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    number = _deploy(aimodel, "test", expect=1, before_merge=lambda: _tamper(home, digest))
    for _ in range(2):  # each `pr show` drains, sweeping first: the second finds no attempt left
        record = aimodel("pr", "show", str(number), "--json").json["meta"]["deploy"]
        assert (record["ok"], record["attempts"]) == (False, 2)
    told = [n["text"] for n in recorded(home) if n["kind"] == "deploy_failed" and n["pr"] == number]
    assert len(told) == 2 and "Gave up after 2 attempts" in told[1]


# --------------------------------------------------------------------------- drift, with a worker


@pytest.fixture
def worker(home: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> subprocess.Popen[bytes]:
        full = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "AIMODEL_FACES": FACES, **env}
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=full, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        started.append(proc)
        assert proc.stderr is not None
        line = "-"
        while line and "serving the queue" not in line:
            line = proc.stderr.readline().decode()
        assert "serving the queue" in line, line
        # Keep reading its log: a full pipe would stop the worker in the middle of a line.
        log = home / "worker.log"

        def keep() -> None:
            with log.open("ab") as out:
                for chunk in iter(proc.stderr.readline, b""):  # type: ignore[union-attr]
                    out.write(chunk)
                    out.flush()

        threading.Thread(target=keep, daemon=True).start()
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr:
            proc.stderr.close()


def _drift_told(home: Path) -> list[str]:
    return [n["text"] for n in recorded(home) if n["kind"] == "drift"]


def _checked(home: Path) -> float:
    path = home / "drift" / "dev.json"
    return float(json.loads(path.read_text())["checked"]) if path.exists() else 0.0


def _drift_metric(home: Path) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(home / "metrics"))  # type: ignore[no-untyped-call]
    return next((line for line in generate_latest(registry).decode().splitlines() if line.startswith("aimodel_drift_found_total")), "")


def test_drift_is_found_told_once_shown_counted_and_repaired_by_sync(
    aimodel: Run, home: Path, model_files: ModelFiles, worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    _create(aimodel, model_files.onnx, model_files.data)
    _deploy(aimodel, "dev")
    (home / "metrics").mkdir(mode=0o700)  # as `aimodel serve` makes it: the worker's samples go there
    worker(AIMODEL_DRIFT_INTERVAL="1")
    deployed = home / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx"
    deployed.write_bytes(deployed.read_bytes()[:-1] + b"\0")
    changed = "dev: fraud 1.0.0: model.onnx was changed (its sha256 differs from what was deployed)"

    _wait_for("the drift to be told", lambda: len(_drift_told(home)) >= 1)
    first = _checked(home)
    _wait_for("the next drift check", lambda: _checked(home) > first)  # looked again: the same drift is not told again
    assert len(_drift_told(home)) == 1 and changed in _drift_told(home)[0] and "aimodel sync --env dev" in _drift_told(home)[0]
    assert changed in aimodel("status").out
    assert aimodel("status", "--json").json["deployments"]["dev"]["drift"] == [changed]
    assert _drift_metric(home) == 'aimodel_drift_found_total{env="dev"} 1.0'

    deployed.unlink()  # another drift: told too
    _wait_for("the second drift to be told", lambda: len(_drift_told(home)) >= 2)
    assert "dev: fraud 1.0.0: model.onnx was removed" in _drift_told(home)[1]

    synced = aimodel("sync", "--env", "dev", "--as", "dev")
    assert "dev: repaired fraud@1.0.0" in synced.out
    assert deployed.read_bytes() == model_files.onnx.read_bytes()
    assert "deployments: as desired" in aimodel("status").out
    repaired = _checked(home)
    _wait_for("the worker's next drift check", lambda: _checked(home) > repaired)
    assert json.loads((home / "drift" / "dev.json").read_text())["found"] == []
    assert len(_drift_told(home)) == 2 and _drift_metric(home) == 'aimodel_drift_found_total{env="dev"} 2.0'


# --------------------------------------------------------------------------- killed mid-release


def test_a_sync_killed_in_the_middle_of_a_copy_leaves_the_previous_release_live(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path
) -> None:
    from tests.model_samples import slow_model

    _create(aimodel, model_files.onnx, model_files.data)
    _deploy(aimodel, "dev")
    big = slow_model(tmp_path / "files" / "big.onnx", hidden=5000, layers=1)  # 100 MB: its copy takes a while
    _desire_in_dev(aimodel, home, big, "1.0.1")
    assert (_release(home, "dev") or {})["models"] == {"fraud": "1.0.0"}

    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    sync = subprocess.Popen([sys.executable, "-m", "bot.cli", "sync", "--env", "dev", "--as", "dev"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = home / "deploy" / "dev" / ".staging"
    try:
        _wait_for("the copy to start", lambda: any(staging.rglob("model.onnx*")) or sync.poll() is not None, timeout=120)
        sync.send_signal(signal.SIGKILL)
    finally:
        sync.wait(timeout=30)
    assert sync.returncode == -signal.SIGKILL, "the sync finished before it could be killed mid-copy"

    assert (_release(home, "dev") or {})["models"] == {"fraud": "1.0.0"}
    assert (home / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx").read_bytes() == model_files.onnx.read_bytes()
    assert not (home / "deploy" / "dev" / "fraud" / "1.0.1").exists()
    assert aimodel("list", "--json").json[0]["environments"]["dev"]["version"] == "1.0.0"
    assert [r.id for r in ReleaseLog(home / "releases").records("dev")] == ["dev-payments-1"]

    synced = aimodel("sync", "--env", "dev", "--as", "dev")
    assert "dev: deployed fraud@1.0.1; released payments" in synced.out
    assert not staging.exists()  # what the killed one left is gone
    assert (home / "deploy" / "dev" / "fraud" / "1.0.1" / "model.onnx").read_bytes() == big.read_bytes()
    assert (_release(home, "dev") or {})["models"] == {"fraud": "1.0.1"}


def _desire_in_dev(aimodel: Run, home: Path, artifact: Path, version: str) -> None:
    """Make the default branch want `version` in dev without applying it (the merge's push
    event is lost): the update's own pull request when it changes dev, else a deploy to dev."""
    number = int(aimodel("update", "fraud", "--artifact", str(artifact), "--version", version, "--as", "eve", "--json").json["pr"])
    if "dev" not in aimodel("pr", "show", str(number), "--json").json["environments"]:
        aimodel("pr", "merge", str(number), "--as", "eve")
        number = int(aimodel("deploy", "fraud", "--env", "dev", "--version", version, "--as", "eve", "--json").json["pr"])
    forge = LocalForge(home)
    forge.on_event = lambda event, payload: None
    with Context(load_settings(), forge=forge) as ctx:
        ctx.gitops.merge(number, Actor("dev", "cli"))
