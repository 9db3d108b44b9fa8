"""SIGTERM to a queue worker (Kubernetes, `docker stop`): it takes no new work, lets a running
check finish within AIMODEL_STOP_GRACE seconds and exits 0; a check the grace does not cover
is cut off and left to the sweep, which another worker runs at once (its mark is cleared)
instead of after AIMODEL_CHECK_TIMEOUT. Waits are on the process's exit and on the pull
request's state, never on a sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.forges.local import LocalForge
from bot.gitrepo import BOT
from tests.conftest import ModelFiles, Run
from tests.file_face import recorded

pytestmark = pytest.mark.timeout(420)

ROOT = Path(__file__).resolve().parent.parent
FACES = "handlers.faces,tests.file_face"
CHECKS = ("manifest", "scan", "validate", "sign")


@pytest.fixture(autouse=True)
def _file_face(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_FACES", FACES)


class Worker:
    def __init__(self, home: Path, log: Path, **env: str) -> None:
        self.log = log
        full = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "AIMODEL_FACES": FACES, **env}
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--workers", "1"], env=full,
                                         stdout=subprocess.DEVNULL, stderr=out)
        _wait("the worker to serve", lambda: "serving the queue" in self.text() or self.proc.poll() is not None, 90)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.text().splitlines() if line.startswith("{")]


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(timeout=20)


def _wait(what: str, probe: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _current(home: Path, number: int) -> dict[str, str]:
    pr = LocalForge(home).get_pr(number)
    return {n: c.state for n, c in pr.checks.items() if c.commit == pr.head}


def _bot_commits(home: Path, number: int) -> list[str]:
    pr = LocalForge(home).get_pr(number)
    repo = git.Repo(home / "repo.git")
    try:
        return [c.hexsha for c in repo.iter_commits(f"main..{pr.branch}") if c.author.name == BOT.name]
    finally:
        repo.close()


def _signed(home: Path) -> list[Path]:
    """The signature bundles the sign check kept in the store (it commits nothing to the branch)."""
    return sorted((home / "artifacts" / "sha256").glob("*.sig"))


@pytest.fixture
def slow_files(tmp_path: Path) -> ModelFiles:
    """A deep ONNX model and 20,000 rows: its validate check measures for seconds."""
    from tests.model_samples import slow_model, write_csv

    data = tmp_path / "files" / "big.csv"
    write_csv(data, rows=20000, right=19000)
    model = slow_model(tmp_path / "files" / "slow.onnx", hidden=256, layers=48)
    return ModelFiles(onnx=model, onnx_v2=model, data=data)


def _create_slow(aimodel: Run, files: ModelFiles) -> None:
    out = aimodel("create", "slow", "--app", "payments", "--dataset", "big", "--artifact", str(files.onnx),
                  "--dataset-uri", str(files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada").out
    assert "Checks are queued" in out  # the worker holds the queue: this command left the checks to it


def test_sigterm_lets_the_running_check_finish_then_exits(aimodel: Run, home: Path, slow_files: ModelFiles,
                                                          workers: list[Worker], tmp_path: Path) -> None:
    worker = Worker(home, tmp_path / "worker.log", AIMODEL_STOP_GRACE="300")
    workers.append(worker)
    _create_slow(aimodel, slow_files)
    _wait("the checks to start", lambda: "pending" in _current(home, 1).values())
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=300) == 0
    # It exited only once the check it was running had finished and signed.
    assert _current(home, 1) == dict.fromkeys(CHECKS, "success")
    assert len(_signed(home)) == 1 and _bot_commits(home, 1) == []
    said = worker.messages()
    assert said[-1] == "worker stopped" and not any("cut off" in m for m in said), said
    # What the run queued after it (the notification) was not taken: it waits for the next
    # worker, or for a command that finds no worker and runs the queue itself.
    assert [n["pr"] for n in recorded(home) if n["kind"] == "checks"] == []
    aimodel("pr", "show", "1")
    assert [n["pr"] for n in recorded(home) if n["kind"] == "checks"] == [1]
    assert len(_signed(home)) == 1 and _bot_commits(home, 1) == []


def test_a_check_cut_off_by_the_grace_is_run_again_by_another_worker(aimodel: Run, home: Path, slow_files: ModelFiles,
                                                                     workers: list[Worker], tmp_path: Path, redis_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    # The sweep trusts a running job for AIMODEL_CHECK_TIMEOUT (600 s): only a cleared mark lets it run sooner.
    env = {"REDIS_URL": redis_url, "AIMODEL_STOP_GRACE": "0", "AIMODEL_SWEEP_INTERVAL": "1"}
    first = Worker(home, tmp_path / "first.log", **env)
    workers.append(first)
    _create_slow(aimodel, slow_files)
    _wait("the checks to start", lambda: "pending" in _current(home, 1).values())
    second = Worker(home, tmp_path / "second.log", **env)  # started now: the run is the first worker's
    workers.append(second)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0
    assert any(m.startswith("checks:1:") and m.endswith("cut off by the stop; the sweep runs it again") for m in first.messages())
    assert "pending" in _current(home, 1).values()  # it did not finish

    _wait("the checks to finish on the second worker", lambda: (s := _current(home, 1)) and "pending" not in s.values() and len(s) == 4)
    assert _current(home, 1) == dict.fromkeys(CHECKS, "success")
    assert any(m.startswith("checks of #1 at ") and m.endswith(" started") for m in second.messages())
    _wait("the checks told", lambda: [n["pr"] for n in recorded(home) if n["kind"] == "checks"] == [1], 60)
    assert len(_signed(home)) == 1 and _bot_commits(home, 1) == []
