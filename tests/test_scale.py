"""Scale-out on Redis, for real: two web processes and two queue workers share one private
Redis, one manifest repository (the home's repo.git) and the Slack stand-in.

- 50 simultaneous `/aimodel update` of one model, spread over both web processes: one pull
  request, 49 answers that it is locked, one parent message, checks run once per head;
- a Slack event and its retries (X-Slack-Retry-Num) reaching both web processes at once run once;
- Redis stopped while a check runs and another waits: a Slack command is told so in one line,
  /readyz is not ready, and once Redis is back the sweep finishes both, each once.

Every wait is on an answer (a response_url message, a log line, /readyz), never a sleep."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest
import requests

from bot.forges.local import LocalForge
from bot.gitrepo import BOT
from tests import slack_helpers as h
from tests.file_face import recorded
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import post_to_app

pytestmark = pytest.mark.timeout(420)

CHANNEL = "C0MODELS"
CHECKS = ("manifest", "scan", "validate", "sign")


# --------------------------------------------------------------------------- processes


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=h.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"aimodel {' '.join(args)}: {done.stderr}"
    return done


class Worker:
    """`aimodel worker` on the shared home and Redis, its stderr (JSON lines) in a file."""

    def __init__(self, env: dict[str, str], log: Path, *extra: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", *extra], env=env, cwd=h.ROOT,
                                         stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)
        _wait("the worker to serve", lambda: "serving the queue" in self.text() or self.proc.poll() is not None, 90)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Redis:
    """A private redis-server on a fixed loopback port, stopped and started again by the test
    (no persistence: what it held is gone, as after a crash of a cache-only Redis)."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        _wait("redis-server to listen", answers, 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _wait(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Cluster:
    home: Path
    slack: SlackStandIn
    webs: list[h.WebProcess]
    workers: list[Worker]
    files: Path
    cli_env: dict[str, str]


def _home_with_fraud(tmp: Path, files: Path) -> Path:
    """A home whose main holds `fraud` (created and merged by the CLI, no Redis yet)."""
    from tests.model_samples import linear_classifier, write_csv

    home = tmp / "home"
    linear_classifier(files / "fraud.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    h.init_home(home, sources=[files])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_"))}
    env.update(AIMODEL_HOME=str(home), PYTHONPATH=str(h.ROOT))
    _cli(env, "create", "fraud", "--app", "payments", "--dataset", "tx", "--artifact", str(files / "fraud.onnx"),
         "--dataset-uri", str(files / "tx.csv"), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "alice")
    _cli(env, "pr", "merge", "1", "--as", "alice")
    return home


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    files = tmp_path / "files"
    home = _home_with_fraud(tmp_path, files)
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        webs: list[h.WebProcess] = []
        workers: list[Worker] = []
        try:
            for name in ("a", "b"):
                # Each web process keeps its own metric samples (`serve` empties the folder it owns).
                env = h.server_env(home, slack, REDIS_URL=redis_url, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{name}"))
                (tmp_path / f"metrics-{name}").mkdir()
                webs.append(h.WebProcess(home, env, tmp_path / f"web-{name}.log").start())
            worker_env = {**h.server_env(home, slack, REDIS_URL=redis_url), "AIMODEL_SWEEP_INTERVAL": "2"}
            for name in ("1", "2"):
                workers.append(Worker(worker_env, tmp_path / f"worker-{name}.log"))
            yield Cluster(home, slack, webs, workers, files, worker_env)
        finally:
            for worker in workers:
                worker.stop()
            for web in webs:
                web.stop()


# --------------------------------------------------------------------------- reading state


def _branches(home: Path) -> list[str]:
    repo = git.Repo(home / "repo.git")
    try:
        return sorted(head.name for head in repo.heads)
    finally:
        repo.close()


def _bot_commits(home: Path, branch: str) -> list[str]:
    repo = git.Repo(home / "repo.git")
    try:
        return [c.hexsha for c in repo.iter_commits(f"main..{branch}") if c.author.name == BOT.name]
    finally:
        repo.close()


def _checks_run(workers: list[Worker], number: int) -> list[tuple[str, str]]:
    """(check, commit) of every check of #number a worker ran, over every worker's log."""
    ran = []
    for worker in workers:
        for line in worker.lines():
            found = re.match(rf"check (\w+) of #{number}: ", line["message"])
            if found:
                ran.append((found.group(1), line["commit"]))
    return sorted(ran)


def _metric(webs: list[h.WebProcess], sample: str) -> float:
    """One sample summed over every web process's /metrics."""
    total = 0.0
    for web in webs:
        for line in requests.get(f"{web.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(sample + " "):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _parents(slack: SlackStandIn, number: int) -> list[dict[str, Any]]:
    return [m for m in slack.messages(CHANNEL) if str(m.get("text", "")).startswith(f"Pull request #{number}:")]


# --------------------------------------------------------------------------- the tests


def test_fifty_updates_of_one_model_over_two_web_processes_open_one_pull_request(cluster: Cluster) -> None:
    slack, webs = cluster.slack, cluster.webs
    deliveries = [slack.slash_command(f"update fraud --version 2.0.{i}", user_id="U0DAVE", channel_id=CHANNEL) for i in range(50)]
    barrier = threading.Barrier(len(deliveries))

    def send(i: int) -> requests.Response:
        barrier.wait()
        response: requests.Response = h.post(webs[i % 2], deliveries[i])
        return response

    with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:
        acks = list(pool.map(send, range(len(deliveries))))
    assert [r.status_code for r in acks] == [200] * 50
    assert all("Working on" in r.json()["text"] for r in acks)

    replies = [h.texts(slack.wait_for_response(d.response_url or "", timeout=180)) for d in deliveries]
    opened = [t for t in replies if "Opened pull request #" in t]
    locked = [t for t in replies if "fraud is locked by" in t]
    assert len(opened) == 1 and len(locked) == 49, replies
    number = int(opened[0].split("Opened pull request #", 1)[1].split(":", 1)[0])
    assert number == 2
    # A refusal names the pull request once it exists, or says it is being opened right now.
    assert all(f"locked by PR #{number};" in t or "try again in a moment" in t for t in locked), locked

    forge = LocalForge(cluster.home)
    prs = forge.list_prs("all")
    assert [pr.number for pr in prs] == [1, 2]  # nothing else was written
    pr = forge.get_pr(number)
    assert _branches(cluster.home) == sorted(["main", pr.branch])
    assert len(_parents(slack, number)) == 1  # one parent message in the channel

    # Its checks run once for its head, on one of the two workers, and are told once.
    h.wait_until(lambda: any("has green checks" in h.texts([m]) for m in slack.thread(CHANNEL, _parents(slack, number)[0]["ts"])),
                 timeout=180, what="the green checks in the thread")
    pr = forge.get_pr(number)
    assert {n: c.state for n, c in pr.checks.items() if c.commit == pr.head} == dict.fromkeys(CHECKS, "success")
    assert _bot_commits(cluster.home, pr.branch) == []  # signing commits nothing: the signature is in the store
    assert _checks_run(cluster.workers, number) == sorted((name, pr.head[:12]) for name in CHECKS)
    told = [c for c in slack.calls("chat.postMessage") if str(c.params.get("text", "")).startswith(f"Checks on #{number}")]
    assert len(told) == 1
    thread = [str(m.get("text", "")) for m in slack.thread(CHANNEL, _parents(slack, number)[0]["ts"])]
    assert len(thread) == len(set(thread)), thread  # no message of the bot said twice

    # Both web processes counted what they answered: one opened, 49 refused.
    h.wait_until(lambda: _metric(webs, 'aimodel_commands_total{face="slack",result="ok",verb="update"}') == 1.0, what="the ok sample")
    assert _metric(webs, 'aimodel_commands_total{face="slack",result="refused",verb="update"}') == 49.0
    assert _metric(webs, 'aimodel_http_request_seconds_count{route="/slack/events"}') >= 50.0


def test_a_slack_event_and_its_retries_over_both_web_processes_run_once(cluster: Cluster) -> None:
    slack, webs = cluster.slack, cluster.webs
    event = slack.app_home_opened("U0BOB")
    now = int(time.time())
    # Slack signs each redelivery anew (its own timestamp) and says which retry it is.
    sends = [(webs[0], None, now), (webs[1], 1, now + 1), (webs[0], 2, now + 2), (webs[1], 3, now + 3)]
    barrier = threading.Barrier(len(sends))

    def send(web: h.WebProcess, retry: int | None, stamp: int) -> int:
        barrier.wait()
        r = post_to_app(web.events_url, h.SECRET, event.body, timestamp=stamp, content_type=event.content_type, retry_num=retry)
        return int(r.status_code)

    with ThreadPoolExecutor(max_workers=len(sends)) as pool:
        codes = list(pool.map(lambda s: send(*s), sends))
    assert codes == [200] * len(sends)  # a retry is answered, so Slack stops sending it

    def ignored() -> int:
        return sum(web.log_text().count("seen before") for web in webs)

    h.wait_until(lambda: ignored() == 3, what="three deliveries recognised as seen")
    h.wait_until(lambda: slack.home_view("U0BOB"), what="bob's home")
    published = [c for c in slack.calls("views.publish") if c.params.get("user_id") == "U0BOB"]
    assert len(published) == 1
    assert all(web.log_text().count("Traceback") == 0 for web in webs)


def _readyz(web: h.WebProcess) -> tuple[int, dict[str, Any]]:
    with requests.get(f"{web.url}/readyz", timeout=10) as r:
        return r.status_code, r.json()


def _current(home: Path, number: int) -> dict[str, str]:
    pr = LocalForge(home).get_pr(number)
    return {n: c.state for n, c in pr.checks.items() if c.commit == pr.head}


def test_redis_stopped_while_busy_loses_nothing(tmp_path: Path) -> None:
    from tests.model_samples import linear_classifier, slow_model, write_csv

    files = tmp_path / "files"
    write_csv(files / "big.csv", rows=20000, right=19000)
    slow_model(files / "slow.onnx", hidden=256, layers=48)  # its validate check measures for seconds
    linear_classifier(files / "fraud.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    home = tmp_path / "home"
    h.init_home(home, sources=[files])
    redis = Redis(tmp_path)
    redis.start()
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        env = h.server_env(home, slack, REDIS_URL=redis.url, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
                           AIMODEL_FACES="handlers.faces,tests.file_face")
        (tmp_path / "metrics").mkdir()
        web = h.WebProcess(home, env, tmp_path / "web.log").start()
        worker: Worker | None = None
        try:
            # One job at a time: the slow PR's checks run while the second PR's wait in Redis.
            worker = Worker({**env, "AIMODEL_SWEEP_INTERVAL": "1"}, tmp_path / "worker.log", "--workers", "1")
            _wait("ready", lambda: _readyz(web)[0] == 200, 60)
            _cli(env, "create", "slow", "--app", "payments", "--dataset", "big", "--artifact", str(files / "slow.onnx"),
                 "--dataset-uri", str(files / "big.csv"), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "alice")
            _wait("the slow checks to start", lambda: "pending" in _current(home, 1).values())
            _cli(env, "create", "fraud", "--app", "ledger", "--dataset", "tx", "--artifact", str(files / "fraud.onnx"),
                 "--dataset-uri", str(files / "tx.csv"), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "alice")
            assert _current(home, 2) == {}  # queued behind the running one

            redis.stop()  # a Redis without persistence: the queued job and every mark are gone
            delivery = slack.slash_command("list", user_id="U0ALICE", channel_id=CHANNEL)
            answer = h.post(web, delivery)
            assert answer.status_code == 200
            assert answer.json() == {"response_type": "ephemeral", "text": "I cannot reach my queue right now, so I did nothing. "
                                     "Try again in a minute; the operator sees why in the log."}
            _, body = _wait("not ready", lambda: (r := _readyz(web))[0] == 503 and r, 60)
            assert body["ready"] is False and body["queue"] == "unreachable" and str(redis.port) not in json.dumps(body)
            # The running check goes on without Redis; what it would queue next cannot be queued.
            _wait("the slow checks to end", lambda: "pending" not in _current(home, 1).values(), 240)

            redis.start()  # empty
            _wait("ready again", lambda: _readyz(web)[0] == 200, 60)
            # The sweep finds both pull requests' heads without finished checks and runs them.
            for number in (1, 2):
                _wait(f"the checks of #{number}", lambda n=number: len(states := _current(home, n)) == 4 and "pending" not in states.values(), 240)
                assert _current(home, number) == dict.fromkeys(CHECKS, "success")
                pr = LocalForge(home).get_pr(number)
                assert _bot_commits(home, pr.branch) == []  # signing commits nothing: the bundle is in the store
                _wait(f"the checks of #{number} told", lambda n=number: [x["pr"] for x in recorded(home) if x["kind"] == "checks"].count(n) >= 1, 60)
            assert sorted(x["pr"] for x in recorded(home) if x["kind"] == "checks") == [1, 2]  # each told once
            text = web.log_text() + worker.text()
            assert "Traceback" not in web.log_text() and h.TOKEN not in text and h.SECRET not in text
        finally:
            if worker is not None:
                worker.stop()
            web.stop()
            redis.stop()


def test_a_check_slower_than_the_timeout_runs_once_while_its_worker_lives(tmp_path: Path, redis_url: str) -> None:
    """AIMODEL_CHECK_TIMEOUT says when a run is dead; a live worker renews its run's mark, so a
    second worker's sweep leaves a slow run alone however long it takes."""
    from bot.app import Context
    from bot.config import load_settings
    from tests.model_samples import slow_model, write_csv

    files = tmp_path / "files"
    write_csv(files / "big.csv", rows=20000, right=19000)
    slow_model(files / "slow.onnx", hidden=256, layers=48)
    home = tmp_path / "home"
    h.init_home(home, sources=[files])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_"))}
    env.update(AIMODEL_HOME=str(home), PYTHONPATH=str(h.ROOT), REDIS_URL=redis_url, AIMODEL_SWEEP_INTERVAL="1",
               AIMODEL_CHECK_TIMEOUT="2", AIMODEL_HEARTBEAT="1", AIMODEL_READY_WITHIN="2")
    workers = [Worker(env, tmp_path / "worker-1.log", "--workers", "1"), Worker(env, tmp_path / "worker-2.log", "--workers", "1")]
    try:
        _cli(env, "create", "slow", "--app", "payments", "--dataset", "big", "--artifact", str(files / "slow.onnx"),
             "--dataset-uri", str(files / "big.csv"), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "alice")
        _wait("the checks", lambda: len(states := _current(home, 1)) == 4 and "pending" not in states.values(), 240)
        assert _current(home, 1) == dict.fromkeys(CHECKS, "success")
        pr = LocalForge(home).get_pr(1)
        ran = _checks_run(workers, 1)
        assert ran == sorted((name, pr.head[:12]) for name in CHECKS), ran  # validate took longer than 2 s, once
        assert _bot_commits(home, pr.branch) == []
        with Context(load_settings(env)) as ctx:  # and nothing is left for a sweep to do (it acts on a second sighting)
            assert [ctx.jobs.sweep(running_dead=False) for _ in range(2)] == [0, 0]
    finally:
        for worker in workers:
            worker.stop()


def test_a_worker_in_its_own_pod_serves_its_metrics(tmp_path: Path, redis_url: str) -> None:
    """On Redis no `serve` sums a worker's samples: AIMODEL_WORKER_METRICS_PORT has it answer
    /metrics itself (its checks, and the shared queue's gauges)."""
    from tests.model_samples import linear_classifier, write_csv

    files = tmp_path / "files"
    linear_classifier(files / "fraud.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    home = tmp_path / "home"
    h.init_home(home, sources=[files])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_", "PROMETHEUS_"))}
    env.update(AIMODEL_HOME=str(home), PYTHONPATH=str(h.ROOT), REDIS_URL=redis_url, AIMODEL_WORKER_METRICS_PORT=str(port))
    worker = Worker(env, tmp_path / "worker.log")
    try:
        _cli(env, "create", "fraud", "--app", "payments", "--dataset", "tx", "--artifact", str(files / "fraud.onnx"),
             "--dataset-uri", str(files / "tx.csv"), "--label-column", "label", "--as", "alice")
        url = f"http://127.0.0.1:{port}/metrics"
        text = _wait("the checks counted", lambda: 'aimodel_checks_total{check="sign",result="success"} 1.0' in (t := requests.get(url, timeout=10).text) and t)
        for name in CHECKS:
            assert f'aimodel_checks_total{{check="{name}",result="success"}} 1.0' in text, text
        assert "aimodel_queue_reachable 1.0" in text and "aimodel_queue_depth " in text
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
    finally:
        worker.stop()
