"""Health, metrics and logs of the real web process (`aimodel serve`, gunicorn). /readyz: unready without a
worker, ready once one runs, unready when the queue's store is damaged or Redis is stopped and
ready again when it is back. /metrics: a CLI command and the worker's checks, summed. Logs: one
JSON line per check with its pull request, no secret. Every wait is on an answer, never a sleep."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import sign_request

pytestmark = pytest.mark.timeout(180)


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(args, env=env, cwd=h.ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        for proc in reversed(p.procs):
            p.stop(proc)


def web(procs: Procs, env: dict[str, str]) -> str:
    """`aimodel serve --no-worker --port 0`; returns its URL once it listens."""
    proc = procs.start([sys.executable, "-m", "bot.cli", "serve", "--no-worker", "--port", "0"], env, "web")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", procs.log("web"))
        if found and "Booting worker" in procs.log("web"):
            url = f"http://127.0.0.1:{found.group(1)}"
            try:
                requests.get(f"{url}/healthz", timeout=2).close()
                return url
            except requests.RequestException:
                pass
        assert proc.poll() is None, procs.log("web")
        time.sleep(0.05)
    raise AssertionError(f"the web process did not start:\n{procs.log('web')}")


def worker(procs: Procs, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return procs.start([sys.executable, "-m", "bot.cli", "worker"], env, "worker")


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    with requests.get(f"{url}/readyz", timeout=10) as r:
        return r.status_code, r.json()


def wait_ready(url: str, want: Callable[[int, dict[str, Any]], bool], what: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = readyz(url)
        if want(status, body):
            return status, body
        assert time.monotonic() < deadline, f"/readyz never became {what}: {status} {body}"
        time.sleep(0.1)


@pytest.fixture
def env(tmp_path: Path, model_files: Any) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    h.init_home(home, sources=[model_files.onnx.parent])
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        yield h.server_env(home, slack)


def test_readyz_needs_a_worker_and_a_readable_queue(procs: Procs, env: dict[str, str]) -> None:
    url = web(procs, env)
    status, body = readyz(url)
    assert status == 503
    assert body == {"ready": False, "queue": "ok", "worker": "never seen", "forge": "ok"}
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # alive all the same

    worker(procs, env)
    status, body = wait_ready(url, lambda s, _: s == 200, "ready with a worker")
    assert body["ready"] is True and body["worker"] == "ok" and body["queue"] == "ok"

    queue = Path(env["AIMODEL_HOME"]) / "queue.db"
    with queue.open("r+b") as f:  # the store is damaged under the running processes
        f.write(b"this is not a database" * 10)
    _, body = wait_ready(url, lambda s, _: s == 503, "unready with a damaged queue")
    assert body["queue"] == "unreachable" and body["ready"] is False
    assert str(queue) not in str(body) and h.TOKEN not in str(body)


def test_readyz_follows_redis(procs: Procs, env: dict[str, str], tmp_path: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis_args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    redis = procs.start(redis_args, dict(os.environ), "redis")
    env = {**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    url = web(procs, env)
    worker(procs, env)
    wait_ready(url, lambda s, _: s == 200, "ready with Redis and a worker")

    procs.stop(redis)
    _, body = wait_ready(url, lambda s, _: s == 503, "unready with Redis stopped")
    assert body["queue"] == "unreachable"
    assert str(port) not in str(body)  # no URL in the answer

    procs.start(redis_args, dict(os.environ), "redis")  # an empty Redis: the worker's next beat
    wait_ready(url, lambda s, _: s == 200, "ready again once Redis is back")


def test_status_shows_the_worker_the_queue_depth_and_the_oldest_job(aimodel: Any, home: Path, model_files: Any, procs: Procs) -> None:
    before = aimodel("status").out
    assert "worker: never seen\nqueue: 0 waiting" in before
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(h.ROOT)}
    busy = worker(procs, env)
    deadline = time.monotonic() + 60
    while (queue := aimodel("status", "--json").json["queue"])["worker_seen_seconds_ago"] is None:
        assert busy.poll() is None and time.monotonic() < deadline, procs.log("worker")
        time.sleep(0.1)
    assert queue["reachable"] is True and queue["oldest_queued_seconds_ago"] is None  # the sweep may wait: no check yet
    os.killpg(busy.pid, signal.SIGSTOP)  # a worker that holds the queue but takes nothing
    try:
        aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
                "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada")
        queue = aimodel("status", "--json").json["queue"]
        assert queue["depth"] >= 1 and queue["oldest_queued_seconds_ago"] is not None
        assert re.search(r"worker: last seen \d+ s ago\nqueue: \d+ waiting, oldest queued \d+ s ago", aimodel("status").out)
    finally:
        os.killpg(busy.pid, signal.SIGCONT)


def serve_with_worker(procs: Procs, env: dict[str, str]) -> str:
    proc = procs.start([sys.executable, "-m", "bot.cli", "serve", "--port", "0"], env, "serve")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", procs.log("serve"))
        if found:
            url = f"http://127.0.0.1:{found.group(1)}"
            try:
                if readyz(url)[0] == 200:  # the worker beside it beats
                    return url
            except requests.RequestException:
                pass
        assert proc.poll() is None, procs.log("serve")
        time.sleep(0.1)
    raise AssertionError(f"aimodel serve did not become ready:\n{procs.log('serve')}")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=h.ROOT, capture_output=True, text=True, timeout=120)


def test_metrics_count_a_cli_command_and_its_checks_run_by_the_worker(procs: Procs, env: dict[str, str], model_files: Any) -> None:
    url = serve_with_worker(procs, env)
    done = cli(env, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
               "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "alice")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 120
    while 'aimodel_checks_total{check="sign"' not in (text := requests.get(f"{url}/metrics", timeout=10).text):
        assert time.monotonic() < deadline, f"the checks were never counted:\n{text}\n{procs.log('serve')}"
        time.sleep(0.2)
    assert 'aimodel_commands_total{face="cli",result="ok",verb="create"} 1.0' in text
    for name in ("manifest", "scan", "validate", "sign"):
        assert f'aimodel_checks_total{{check="{name}",result="success"}} 1.0' in text, text
        assert f'aimodel_check_seconds_count{{check="{name}"}} 1.0' in text
    assert "aimodel_queue_depth " in text and "aimodel_queue_reachable 1.0" in text
    assert 'aimodel_http_request_seconds_count{route="/readyz"}' in text


def test_server_logs_json_lines_per_check_and_refusal_with_pr_request_id_and_no_secret(procs: Procs, env: dict[str, str], model_files: Any) -> None:
    url = serve_with_worker(procs, env)
    body = b'{"type": "event_callback", "event": '  # a signed body that is not JSON: refused, one line
    headers = {"Content-Type": "application/json", "X-Request-Id": "req-42", **sign_request(h.SECRET, body)}
    assert requests.post(f"{url}/slack/events", data=body, headers=headers, timeout=10).status_code == 400
    done = cli(env, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
               "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "alice")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 120
    while "check sign of #1" not in procs.log("serve"):
        assert time.monotonic() < deadline, procs.log("serve")
        time.sleep(0.2)
    lines = [json.loads(line) for line in procs.log("serve").splitlines() if line.startswith("{")]
    checks = [line for line in lines if line["message"].startswith("check ")]
    assert [c["message"].split(" of ")[0] for c in checks] == ["check manifest", "check scan", "check validate", "check sign"]
    assert all(c["pr"] == 1 and c["level"] == "info" and len(c["commit"]) == 12 for c in checks), checks
    refused = [line for line in lines if "refused with 400" in line["message"]]
    assert [line["request_id"] for line in refused] == ["req-42"]
    text = procs.log("serve")
    for secret in (h.TOKEN, h.SECRET):
        assert secret not in text
