"""The queue with a separate worker: SQLite on the embedded default, and Redis shared by
several processes (the scale-out setup) with Redis locks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.app import Context
from bot.commands import Update
from bot.config import load_settings
from bot.gitops import Actor, Refusal
from tests.conftest import ModelFiles, Run

ROOT = Path(__file__).resolve().parent.parent


def _start_worker(home: Path, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), **(extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    line = "-"
    while line and "serving the queue" not in line:  # said once it holds the queue's lock; the sweep at start may log first
        line = proc.stderr.readline().decode()
    assert "serving the queue" in line, line
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    finally:
        if proc.stderr:
            proc.stderr.close()


def _wait_checks(aimodel: Run, number: int, timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        checks = aimodel("pr", "show", str(number), "--json").json["checks"]
        states = {name: c["state"] for name, c in checks.items()}
        if len(states) == 4 and "pending" not in states.values():
            return states
        time.sleep(0.3)
    raise AssertionError(f"checks on #{number} did not finish: {states}")


def test_cli_leaves_the_queue_to_a_running_worker(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    worker = _start_worker(home)
    try:
        out = aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
                      "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada").out
        assert "Checks are queued; `aimodel worker` runs them (`aimodel pr show 1`)." in out
        assert _wait_checks(aimodel, 1) == {"manifest": "success", "scan": "success", "validate": "success", "sign": "success"}
    finally:
        _stop(worker)


def test_redis_queue_and_locks_across_processes(aimodel: Run, created: str, home: Path, redis_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings({"AIMODEL_HOME": str(home), "REDIS_URL": redis_url})
    barrier = threading.Barrier(10)
    opened: list[int] = []
    refused: list[str] = []

    def propose(i: int) -> None:
        with Context(settings) as ctx:
            barrier.wait()
            try:
                opened.append(ctx.gitops.propose(Update("fraud", version=f"3.0.{i}"), Actor("eve", "cli")).pr.number)
            except Refusal as exc:
                refused.append(exc.message)

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1 and len(refused) == 9
    with Context(settings) as ctx:
        held = {h.key: h.pr for h in ctx.locks.all()}
    assert held["model:fraud"] == opened[0]
    # Nobody drained the queue: the checks wait in Redis for a worker, which any machine may run.
    assert aimodel("pr", "show", str(opened[0]), "--json").json["checks"] == {}
    worker = _start_worker(home, {"REDIS_URL": redis_url})
    try:
        assert _wait_checks(aimodel, opened[0])["validate"] == "success"
    finally:
        _stop(worker)
