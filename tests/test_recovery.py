"""Level-triggered work: what a killed worker or a lost event left undone is found from state
(bot.lifecycle.sweep_plan) and done once, by the next worker, its periodic sweep or a CLI that
drains the queue; `pr recheck`; the processes `serve` and `worker` start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest

from bot.app import Context
from bot.command_values import Update
from bot.config import load_settings
from bot.forges.base import PullRequest
from bot.forges.local import LocalForge
from bot.gitops import Actor
from bot.gitrepo import BOT
from tests.conftest import ModelFiles, Run
from tests.file_face import recorded

ROOT = Path(__file__).resolve().parent.parent
FACES = "handlers.faces,tests.file_face"
CHECKS = ("manifest", "scan", "validate", "sign")


@pytest.fixture(autouse=True)
def _file_face(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_FACES", FACES)


def _worker(home: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "AIMODEL_FACES": FACES, **env}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=full, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    line = "-"
    while line and "serving the queue" not in line:  # said once it holds the queue's lock; the sweep at start may log first
        line = proc.stderr.readline().decode()
    assert "serving the queue" in line, line
    return proc


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
        if proc.stderr:
            proc.stderr.close()


def _pr(home: Path, number: int) -> PullRequest:
    """The pull request's record as it is, read without running any queued work."""
    return LocalForge(home).get_pr(number)


def _current(pr: PullRequest) -> dict[str, str]:
    return {n: c.state for n, c in pr.checks.items() if c.commit == pr.head}


def _wait_for(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _finished(home: Path, number: int) -> Callable[[], bool]:
    def probe() -> bool:
        states = _current(_pr(home, number))
        return len(states) == 4 and "pending" not in states.values()

    return probe


def _bot_commits(home: Path, branch: str) -> list[str]:
    repo = git.Repo(home / "repo.git")
    try:
        return [c.hexsha for c in repo.iter_commits(f"main..{branch}") if c.author.name == BOT.name]
    finally:
        repo.close()


def _kept(home: Path, suffix: str) -> list[str]:
    """What the sign check kept in the artifact store beside the bytes (bot.checks.sign_store)."""
    return sorted(p.name for p in (home / "artifacts" / "sha256").iterdir() if p.name.endswith(suffix))


def _checks_told(home: Path, number: int) -> int:
    return sum(1 for n in recorded(home) if n["kind"] == "checks" and n["pr"] == number)


@pytest.fixture
def slow_files(tmp_path: Path) -> ModelFiles:
    """A deep ONNX model and 20,000 rows: measuring it takes seconds, long enough to kill the
    worker in the middle of the validate check."""
    from tests.model_samples import slow_model, write_csv

    data = tmp_path / "files" / "big.csv"
    write_csv(data, rows=20000, right=19000)
    model = slow_model(tmp_path / "files" / "slow.onnx", hidden=256, layers=48)
    return ModelFiles(onnx=model, onnx_v2=model, data=data)


def test_checks_killed_with_their_worker_finish_on_the_next_one_once(
    aimodel: Run, home: Path, slow_files: ModelFiles, workers: list[subprocess.Popen[bytes]]
) -> None:
    first = _worker(home, AIMODEL_SWEEP_INTERVAL="1", AIMODEL_CHECK_TIMEOUT="3")
    workers.append(first)
    out = aimodel("create", "fraud", "--app", "payments", "--dataset", "big", "--artifact", str(slow_files.onnx),
                  "--dataset-uri", str(slow_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada").out
    assert "Checks are queued" in out
    # The run has started once its checks are reported pending; validate measures for seconds.
    _wait_for("the checks to start", lambda: _current(_pr(home, 1)).get("validate") == "pending")  # all four are reported pending one by one
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = _pr(home, 1)
    assert _current(killed)["validate"] == "pending", _current(killed)  # it died mid-run
    assert _checks_told(home, 1) == 0

    workers.append(_worker(home, AIMODEL_SWEEP_INTERVAL="1", AIMODEL_CHECK_TIMEOUT="3"))
    _wait_for("the checks to finish on the new worker", _finished(home, 1))
    done = _pr(home, 1)
    assert _current(done) == dict.fromkeys(CHECKS, "success")
    _wait_for("the checks notification", lambda: _checks_told(home, 1) >= 1, timeout=30)
    assert _bot_commits(home, done.branch) == []  # the head stays the person's commit
    assert len(_kept(home, ".fraud@1.0.0.att.json")) == 1 and len(_kept(home, ".sig")) == 1  # signed, in the store
    # Once more, as a sweep or a duplicate in the queue would: the same state, nothing told again.
    with Context(load_settings()) as ctx:
        ctx.jobs.sweep(running_dead=False)
        assert ctx.jobs.marks([f"checks:1:{done.head}"]) == {}
    workers[-1].terminate()
    workers[-1].wait(timeout=20)
    aimodel("pr", "show", "1")  # no worker now: this CLI drains, sweeping first
    assert _pr(home, 1).head == done.head
    assert _checks_told(home, 1) == 1


def test_the_periodic_sweep_runs_checks_whose_event_was_lost(
    aimodel: Run, created: str, home: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    # Its start-up sweep is over once it says it serves: only the periodic one can find the PR.
    workers.append(_worker(home, AIMODEL_SWEEP_INTERVAL="1"))
    forge = LocalForge(home)
    forge.on_event = lambda event, payload: None  # the forge's events go nowhere: nothing is queued
    with Context(load_settings(), forge=forge) as ctx:
        number = ctx.gitops.propose(Update("fraud", version="1.1.0"), Actor("eve", "cli")).pr.number
    assert _current(_pr(home, number)) == {}
    _wait_for("the periodic sweep to run the checks", _finished(home, number), timeout=60)
    assert _current(_pr(home, number)) == dict.fromkeys(CHECKS, "success")


def test_a_merge_whose_deploy_was_never_queued_is_deployed_by_the_next_cli(aimodel: Run, created: str, home: Path) -> None:
    aimodel("update", "fraud", "--version", "1.1.0", "--as", "eve")
    forge = LocalForge(home)
    forge.on_event = lambda event, payload: None  # the merge's push event is lost
    with Context(load_settings(), forge=forge) as ctx:
        ctx.gitops.merge(2, Actor("eve", "cli"))
    assert _pr(home, 2).state == "merged" and _pr(home, 2).meta.deploy is None
    aimodel("pr", "show", "2")  # drains the queue, sweeping first
    record = _pr(home, 2).meta.deploy
    assert record is not None and record["ok"], record
    deployed = [n for n in recorded(home) if n["kind"] == "deployed" and n["pr"] == 2]
    aimodel("pr", "show", "2")
    assert [n for n in recorded(home) if n["kind"] == "deployed" and n["pr"] == 2] == deployed and len(deployed) == 1


def test_pr_recheck_runs_the_checks_of_the_head_again(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    before = _pr(home, 1)
    assert _current(before) == dict.fromkeys(CHECKS, "success") and _checks_told(home, 1) == 1
    refused = aimodel("pr", "recheck", "1", "--as", "dev", expect=1)  # a DevOps Engineer may not create
    assert "refused" in refused.err.lower() and _pr(home, 1).head == before.head
    out = aimodel("pr", "recheck", "1", "--as", "ada").out
    assert f"Checks of #1 at {before.head[:10]} run again." in out
    assert any(line.split()[:2] == ["validate", "ok"] for line in out.splitlines()), out
    after = _pr(home, 1)
    # A real run on the same head: signed anew, in the store; the branch is not touched.
    assert after.head == before.head and {c.commit for c in after.checks.values()} == {before.head}
    assert _bot_commits(home, after.branch) == []
    assert _current(after) == dict.fromkeys(CHECKS, "success")
    assert _checks_told(home, 1) == 2
    aimodel("pr", "close", "1", "--as", "ada")
    assert "already closed" in aimodel("pr", "recheck", "1", "--as", "ada", expect=1).err


def test_a_second_worker_on_the_same_home_exits_2_with_one_line(home: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    workers.append(_worker(home))
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    second = subprocess.run([sys.executable, "-m", "bot.cli", "worker"], env=env, capture_output=True, timeout=60)
    assert second.returncode == 2
    lines = second.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "another worker already serves" in lines[0] and str(home) in lines[0], lines


def test_serve_before_init_refuses_like_every_verb(aimodel: Run, tmp_path: Path) -> None:
    result = aimodel("serve", "--port", "0", expect=2)
    assert "run `aimodel init` first" in result.err
    assert not (tmp_path / "home" / "repo.git").exists()


def test_serve_runs_the_installed_worker_not_a_bot_package_in_the_current_folder(home: Path, tmp_path: Path) -> None:
    shadow = tmp_path / "elsewhere"
    (shadow / "bot").mkdir(parents=True)
    marker = "SHADOW-BOT-RAN"
    for name in ("__init__.py", "cli.py", "entry.py"):
        (shadow / "bot" / name).write_text(f"import sys\nprint({marker!r}, file=sys.stderr, flush=True)\n")
    # As the console script starts (its folder, not the current one, comes first on sys.path).
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "AIMODEL_FACES": ""}
    serve = subprocess.Popen([sys.executable, "-P", "-m", "bot.cli", "serve", "--port", "0"], cwd=shadow, env=env,
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert serve.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = serve.stderr.readline().decode()
            if not line:
                break
            seen.append(line)
            if "serving the queue" in line:  # the worker it started is up, and it is ours
                break
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        serve.stderr.close()
    assert any("aimodel worker: serving the queue of" in line for line in seen), seen
    assert not any(marker in line for line in seen), seen


def test_on_redis_checks_stuck_past_the_timeout_run_again_once(
    aimodel: Run, home: Path, slow_files: ModelFiles, redis_url: str, workers: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    env = {"REDIS_URL": redis_url, "AIMODEL_SWEEP_INTERVAL": "1", "AIMODEL_CHECK_TIMEOUT": "4"}
    first = _worker(home, **env)
    workers.append(first)
    aimodel("create", "fraud", "--app", "payments", "--dataset", "big", "--artifact", str(slow_files.onnx),
            "--dataset-uri", str(slow_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    _wait_for("the checks to start", lambda: _current(_pr(home, 1)).get("validate") == "pending")  # all four are reported pending one by one
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert _current(_pr(home, 1))["validate"] == "pending"
    # Workers share Redis, so a new one cannot know the run died: the timeout says so.
    workers.append(_worker(home, **env))
    _wait_for("the checks to finish after the timeout", _finished(home, 1))
    done = _pr(home, 1)
    assert _current(done) == dict.fromkeys(CHECKS, "success")
    _wait_for("the checks notification", lambda: _checks_told(home, 1) >= 1, timeout=30)
    assert _bot_commits(home, done.branch) == [] and len(_kept(home, ".sig")) == 1
    assert _checks_told(home, 1) == 1


@pytest.mark.parametrize("sla", ["accuracy>=0.9", "accuracy>=0.99"], ids=["signed", "failed"])
def test_the_same_checks_job_twice_signs_once_and_tells_once(aimodel: Run, created: str, home: Path, sla: str) -> None:
    from bot.sla import parse_sla

    forge = LocalForge(home)
    forge.on_event = lambda event, payload: None  # nothing queued by the opening
    with Context(load_settings(), forge=forge) as quiet:
        pr = quiet.gitops.propose(Update("fraud", version="1.1.0", sla=parse_sla(sla)), Actor("eve", "cli")).pr
    with Context(load_settings()) as ctx:
        ctx.jobs.checks(pr.number, pr.head)
        ctx.jobs.checks(pr.number, pr.head)  # a duplicate, as a sweep racing an event would queue
        assert ctx.jobs.drain() >= 2
    done = _pr(home, pr.number)
    signed = sla == "accuracy>=0.9"
    assert _current(done)["validate"] == ("success" if signed else "failure")
    assert _bot_commits(home, done.branch) == []
    assert len(_kept(home, ".fraud@1.1.0.att.json")) == (1 if signed else 0)
    assert _checks_told(home, pr.number) == 1
