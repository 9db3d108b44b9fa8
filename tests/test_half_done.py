"""Failures half way: nothing lost, nothing lied about, no traceback.

A damaged queue after the pull request exists leaves the pull request whole (record, branch,
locks) and says its checks are not queued; a damaged PR record or lock file is one line that
names the file and what to do, exit 1; a reader that closes the pipe early stops the CLI
quietly. The CLI runs as a real process (`python -m bot.cli`) on a real home."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bot.locks import FileLocks
from tests.conftest import ModelFiles, Run, git_branches
from tests.github_helpers import load_fixture, make_world, post_delivery, web_process
from tests.standins.github_api import GitHubStandIn

ROOT = Path(__file__).resolve().parent.parent


def cli(home: Path, *argv: str, module: str = "bot.cli") -> subprocess.CompletedProcess[str]:
    """The CLI as a person runs it: in their working folder (the test's, which holds the model
    files: a person's own files are theirs to use from the CLI)."""
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=home.parent, env=env, capture_output=True, text=True, timeout=120)


def create(home: Path, files: ModelFiles, name: str = "fraud", app: str = "payments", *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(home, "create", name, "--app", app, "--dataset", "transactions", "--artifact", str(files.onnx),
               "--dataset-uri", str(files.data), "--label-column", "label", "--as", "ada", *extra)


def damage_queue(home: Path) -> Path:
    queue = home / "queue.db"
    queue.write_bytes(os.urandom(4096))  # not a SQLite file
    return queue


def queue_line(home: Path) -> str:
    return (f"{home / 'queue.db'} is damaged: not a readable queue (file is not a database). "
            "Move it aside (keep it for inspection): the next command makes a new, empty queue.")


# --------------------------------------------------------------------------- a damaged queue


def test_create_with_a_damaged_queue_keeps_the_pull_request_and_says_its_checks_are_not_queued(
    home: Path, model_files: ModelFiles
) -> None:
    damage_queue(home)
    result = create(home, model_files)
    assert result.returncode == 1
    assert result.stdout.startswith("Opened pull request #1: create fraud 1.0.0 for payments\n")
    assert result.stderr == f"PR #1 opened; its checks could not be queued: {queue_line(home)}\n"
    # the pull request is whole: its record, its branch, its locks
    record = json.loads((home / "forge" / "prs" / "1.json").read_text())
    assert record["state"] == "open" and record["checks"] == {}
    assert f"refs/heads/{record['branch']}" and record["branch"] in git_branches(home)
    locks = FileLocks(home / "locks")
    assert {h.key: h.pr for h in locks.all()} == {"model:fraud": 1, "app:payments": 1, "dataset:transactions": 1}
    # a retry is told the truth: the model is the open pull request's
    again = create(home, model_files)
    assert again.returncode == 1 and "model fraud is locked by PR #1" in again.stderr
    assert "Traceback" not in result.stderr + again.stderr


def test_create_with_a_damaged_queue_in_json(home: Path, model_files: ModelFiles) -> None:
    damage_queue(home)
    result = create(home, model_files, "fraud", "payments", "--json")
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["pr"] == 1 and answer["checks_queued"] is False
    assert answer["error"] == queue_line(home)


def test_pr_open_with_a_damaged_queue_keeps_the_pull_request_and_its_locks(home: Path, tmp_path: Path) -> None:
    from tests.test_policy_attack import push_branch

    push_branch(home, tmp_path, "readme-edit", lambda root: (root / "README.md").write_text("# by hand\n"))
    damage_queue(home)
    result = cli(home, "pr", "open", "readme-edit", "--as", "ada")
    assert result.returncode == 1
    assert result.stdout.startswith("Opened pull request #1: changes from readme-edit\n")
    assert result.stderr == f"PR #1 opened; its checks could not be queued: {queue_line(home)}\n"
    assert json.loads((home / "forge" / "prs" / "1.json").read_text())["state"] == "open"
    assert {h.key: h.pr for h in FileLocks(home / "locks").all()} == {"branch:readme-edit": 1}
    again = cli(home, "pr", "open", "readme-edit", "--as", "ada")
    assert again.returncode == 1 and "already open as #1" in again.stderr


def test_pr_show_with_a_damaged_queue_still_shows_the_record(home: Path, model_files: ModelFiles) -> None:
    assert create(home, model_files).returncode == 0
    damage_queue(home)
    shown = cli(home, "pr", "show", "1")
    assert shown.returncode == 1
    assert shown.stdout.startswith("#1 create fraud 1.0.0 for payments")
    assert shown.stderr == queue_line(home) + "\n"


def test_merge_with_a_damaged_queue_says_the_deploy_is_not_queued(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    assert create(home, model_files).returncode == 0
    damage_queue(home)
    merged = cli(home, "pr", "merge", "1", "--as", "ada")
    assert merged.returncode == 1
    assert merged.stderr == f"PR #1 merged; its deploy could not be queued: {queue_line(home)}\n"
    assert json.loads((home / "forge" / "prs" / "1.json").read_text())["state"] == "merged"
    assert git_branches(home) == ["main"]


# --------------------------------------------------------------------------- damaged records and locks


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"number": 1, "tit', "not valid JSON at line 1 column 15"),
        (b"\x80\x81garbage", "not UTF-8 text (byte 0)"),
        (b"[1, 2]", "unexpected content (TypeError)"),
        (b'{"number": 1}', "the field 'checks' is missing"),
    ],
    ids=["truncated", "binary", "not-an-object", "missing-fields"],
)
def test_a_damaged_pr_record_is_one_line_naming_it(home: Path, model_files: ModelFiles, content: bytes, problem: str) -> None:
    assert create(home, model_files).returncode == 0
    record = home / "forge" / "prs" / "1.json"
    record.write_bytes(content)
    expected = (f"{record} is damaged: {problem}. Restore it from a backup, or move it out of {record.parent} "
                "to drop pull request #1 from the lists (its branch stays in the repository).\n")
    for argv in (["pr", "list"], ["pr", "show", "1"], ["status"]):
        result = cli(home, *argv)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", expected), argv


def test_a_damaged_lock_file_is_one_line_and_create_takes_no_lock(home: Path, model_files: ModelFiles) -> None:
    lock = home / "locks" / "app__payments.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("{not json")
    expected = (f"{lock} is damaged: not valid JSON at line 1 column 2. Delete it to free the lock on app:payments "
                "(`aimodel pr list` shows whether an open pull request still needs it).\n")
    result = create(home, model_files)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected)
    # the model's lock, taken before the damaged one was read, was given back; nothing was opened
    assert sorted(p.name for p in (home / "locks").iterdir()) == ["app__payments.json"]
    assert not (home / "forge" / "prs").exists() or not any((home / "forge" / "prs").iterdir())
    assert git_branches(home) == ["main"]
    status = cli(home, "status")
    assert (status.returncode, status.stderr) == (1, expected)
    lock.unlink()  # what the message says to do
    assert create(home, model_files).returncode == 0


# --------------------------------------------------------------------------- a closed pipe


def closed_reader(home: Path, *argv: str, module: str = "bot.cli", buffered: bool = False) -> tuple[int, str]:
    """Run the CLI with its stdout a pipe whose only reader is already closed (`| head -0`);
    unbuffered (each write fails at once) unless `buffered` (the failure shows at exit)."""
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "" if buffered else "1"}
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=home.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=120), err


def test_merge_into_a_closed_pipe_merges_and_exits_quietly(home: Path, model_files: ModelFiles) -> None:
    assert create(home, model_files).returncode == 0
    code, err = closed_reader(home, "pr", "merge", "1", "--as", "ada")
    assert (code, err) == (0, "")  # the work was done: its exit code, not the pipe's
    assert json.loads((home / "forge" / "prs" / "1.json").read_text())["state"] == "merged"


@pytest.mark.parametrize("buffered", [False, True], ids=["unbuffered", "buffered"])
def test_list_and_scan_into_a_closed_pipe_exit_quietly(home: Path, model_files: ModelFiles, buffered: bool) -> None:
    assert closed_reader(home, "pr", "list", "--state", "all", buffered=buffered) == (0, "")
    assert closed_reader(home, "list", buffered=buffered) == (0, "")
    assert closed_reader(home, "list", "--app", "nosuch", buffered=buffered)[0] == 1  # a refusal stays a refusal
    assert closed_reader(home, "scan", str(model_files.onnx), module="bot.entry", buffered=buffered) == (0, "")


def test_output_larger_than_any_buffer_into_a_closed_pipe(home: Path) -> None:
    # 400 held locks: `status --json` writes far more than a pipe or stdout buffer holds.
    locks = FileLocks(home / "locks")
    for n in range(400):
        keys = [f"model:model-{n:03d}"]
        assert locks.acquire(keys, "ada") is None
        locks.assign(keys, n + 1)
    assert closed_reader(home, "status", "--json") == (0, "")


# --------------------------------------------------------------------------- the web process


def test_webhook_with_a_damaged_queue_is_503_with_one_line_and_redelivery_works(standin: GitHubStandIn, tmp_path: Path) -> None:
    world = make_world(standin, tmp_path / "home", app=False)
    queue = damage_queue(world.home)
    payload = load_fixture("pull_request/opened.json")
    delivery = str(uuid.uuid4())
    with web_process(world.env(), tmp_path / "web.log") as web:
        r = post_delivery(web.url, "pull_request", payload, delivery=delivery)
        assert r.status_code == 503 and r.json() == {"error": "could not queue the work; redeliver"}
        assert str(queue) not in r.text  # the path is for the operator's log, not the sender
        assert any(delivery in line and f"{queue} is damaged" in line for line in web.log().splitlines())
        assert "Traceback" not in web.log()
        queue.rename(queue.with_name("queue.db.damaged"))  # what the log line says to do
        again = post_delivery(web.url, "pull_request", payload, delivery=delivery)
        assert again.status_code == 202 and again.json()["ok"], again.text


def test_serve_with_damaged_deliveries_stops_with_one_line(standin: GitHubStandIn, tmp_path: Path) -> None:
    world = make_world(standin, tmp_path / "home", app=False)
    db = world.home / "github" / "deliveries.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(os.urandom(4096))
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--port", "0", "--no-worker"], cwd=ROOT,
                            env=world.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{db} is damaged: not a readable database (file is not a database). Move it aside")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr + result.stdout


def test_slack_create_with_a_damaged_queue_announces_the_pr_and_says_its_checks_are_not_queued(tmp_path: Path, model_files: ModelFiles) -> None:
    from tests import slack_helpers as h
    from tests.standins.slack_api import SlackStandIn

    home = tmp_path / "slack-home"
    h.init_home(home, sources=[model_files.onnx.parent])
    queue = damage_queue(home)
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        web = h.WebProcess(home, h.server_env(home, slack), tmp_path / "web.log").start()
        try:
            delivery = slack.slash_command(
                f"create fraud --app payments --dataset tx --artifact {model_files.onnx} "
                f"--dataset-uri {model_files.data} --label-column label", user_id="U0ALICE", channel_id="C0MODELS",
            )
            assert h.post(web, delivery).status_code == 200
            answer = h.texts(slack.wait_for_response(delivery.response_url or "", timeout=60))
            assert "PR #1 opened; its checks could not be queued: the queue on the server is not available" in answer
            assert str(home) not in answer
            assert any(m.get("text", "").startswith("Pull request #1:") for m in slack.messages("C0MODELS"))
            assert json.loads((home / "forge" / "prs" / "1.json").read_text())["state"] == "open"
            assert any(f"#1 opened; its checks could not be queued: {queue} is damaged" in line for line in web.log_text().splitlines())
            assert "Traceback" not in web.log_text()
        finally:
            web.stop()


def test_unreachable_redis_is_one_line_without_the_url_and_nothing_is_opened(home: Path, model_files: ModelFiles) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), "REDIS_URL": f"redis://:s3cret-pw@127.0.0.1:{port}/0"}
    argv = ["create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada"]
    for args in (argv, ["status"]):
        result = subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=home.parent, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"the locks in Redis (REDIS_URL) cannot be reached: Error 111 connecting to 127.0.0.1:{port}")
        assert result.stderr.count("\n") == 1 and "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr
    assert not (home / "forge" / "prs").exists() or not any((home / "forge" / "prs").iterdir())
    assert git_branches(home) == ["main"]
