"""Scale-out: N pull-request-opening Slack commands through 2 web processes + 2 queue workers
sharing a private Redis, against the embedded default (one `aimodel serve`: gunicorn and its
worker, SQLite queue), in the same run, on the same machine.

For each setup: a fresh home (`aimodel init`, the Slack stand-in from tests/standins), then N
signed `/aimodel create mI --app aI ...` slash commands sent open-loop at RATE per second
(each leaves at its time, whatever the previous ones do), alternating over the web processes.
Measured, from the moment a command is sent:

  ack       the HTTP answer (Slack needs it within 3 s)
  opened    the "Opened pull request #N" reply at the command's response_url (git work done)
  checked   the pull request's four checks finished (the workers ran scan, validate, sign)

and the throughput: pull requests opened per second and checked per minute over the run.

    python benchmarks/bench_scale.py [--commands 40] [--rate 10]

Not part of the test run. Needs redis-server on PATH (a private one on a free port is started;
the machine's Redis on 6379 is never used).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.forges.local import LocalForge  # noqa: E402
from tests import slack_helpers as h  # noqa: E402
from tests.standins.slack_api import SlackStandIn  # noqa: E402

CHANNEL = "C0MODELS"


@dataclass
class Result:
    name: str
    ack: list[float] = field(default_factory=list)
    opened: list[float] = field(default_factory=list)
    checked: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    wall_opened: float = 0.0
    wall_checked: float = 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(probe: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    try:
        _wait(answers, "redis-server", 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def queue_workers(env: dict[str, str], folder: Path, count: int) -> Iterator[None]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            log = folder / f"worker-{i}.log"
            with log.open("wb") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=out))
            _wait(lambda log=log: "serving the queue" in log.read_text(errors="replace"), "a worker")
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)


@contextmanager
def embedded(tmp: Path, slack: SlackStandIn, home: Path) -> Iterator[list[h.WebProcess]]:
    web = h.WebProcess(home, h.server_env(home, slack), tmp / "web.log").start()
    try:
        yield [web]
    finally:
        web.stop()


@contextmanager
def scaled(tmp: Path, slack: SlackStandIn, home: Path) -> Iterator[list[h.WebProcess]]:
    with redis_server(tmp) as url:
        webs: list[h.WebProcess] = []
        try:
            for name in ("a", "b"):
                (tmp / f"metrics-{name}").mkdir()
                env = h.server_env(home, slack, REDIS_URL=url, PROMETHEUS_MULTIPROC_DIR=str(tmp / f"metrics-{name}"))
                webs.append(h.WebProcess(home, env, tmp / f"web-{name}.log").start())
            with queue_workers(h.server_env(home, slack, REDIS_URL=url), tmp, 2):
                yield webs
        finally:
            for web in webs:
                web.stop()


def run(name: str, setup: Callable[[Path, SlackStandIn, Path], AbstractContextManager[list[h.WebProcess]]], commands: int, rate: float, files: Path) -> Result:
    result = Result(name)
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{name}-") as folder, SlackStandIn() as slack:
        tmp = Path(folder)
        home = tmp / "home"
        h.init_home(home, sources=[files])
        slack.add_bot_token(h.TOKEN)
        with setup(tmp, slack, home) as webs:
            deliveries = [slack.slash_command(
                f"create m{i} --app a{i} --dataset tx{i} --artifact {files}/fraud.onnx --dataset-uri {files}/tx.csv --label-column label",
                user_id="U0ALICE", channel_id=CHANNEL) for i in range(commands)]
            sent_at: dict[int, float] = {}
            lock = threading.Lock()
            start = time.perf_counter() + 0.5

            def send(i: int) -> None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                began = time.perf_counter()
                with lock:
                    sent_at[i] = began
                try:
                    answer = h.post(webs[i % len(webs)], deliveries[i])
                except Exception as exc:  # counted, not raised: the figures say how many failed
                    with lock:
                        result.failed.append(f"#{i}: {type(exc).__name__}")
                    return
                acked = time.perf_counter()
                try:
                    reply = slack.wait_for_response(deliveries[i].response_url or "", timeout=300)
                except TimeoutError:
                    with lock:
                        result.failed.append(f"#{i}: no reply")
                    return
                opened = time.perf_counter()
                with lock:
                    result.ack.append(acked - began)
                    if answer.status_code != 200 or "Opened pull request #" not in h.texts(reply):
                        result.failed.append(f"#{i}: {h.texts(reply)[:80]}")
                    else:
                        result.opened.append(opened - began)

            threads = [threading.Thread(target=send, args=(i,)) for i in range(commands)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            result.wall_opened = time.perf_counter() - start
            # Checks: poll the pull request records (read-only) until every one has four finished checks.
            forge = LocalForge(home)
            done: dict[int, float] = {}
            deadline = time.monotonic() + 900
            while len(done) < len(result.opened) and time.monotonic() < deadline:
                now = time.perf_counter()
                for pr in forge.list_prs("open"):
                    states = [c.state for c in pr.checks.values()]
                    if pr.number not in done and len(states) == 4 and "pending" not in states:
                        done[pr.number] = now
                time.sleep(0.2)
            result.checked = [t - start for t in done.values()]
            result.wall_checked = (max(done.values()) - start) if done else float("nan")
    return result


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def report(r: Result, commands: int) -> str:
    ms = [x * 1000 for x in r.ack]
    opened = [x * 1000 for x in r.opened]
    per_minute = len(r.checked) / r.wall_checked * 60 if r.checked else 0.0
    return "\n".join([
        f"{r.name}: {len(r.opened)}/{commands} opened, {len(r.checked)} checked, {len(r.failed)} failed {r.failed[:3]}",
        f"  ack      p50 {statistics.median(ms):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms" if ms else "  ack      -",
        f"  opened   p50 {statistics.median(opened):.0f} ms, p99 {percentile(opened, 99):.0f} ms; "
        f"{len(r.opened) / r.wall_opened:.2f} PRs opened/s over {r.wall_opened:.1f} s" if opened else "  opened   -",
        f"  checked  all {len(r.checked)} after {r.wall_checked:.1f} s: {per_minute:.1f} PRs checked per minute",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=40)
    parser.add_argument("--rate", type=float, default=10.0, help="commands sent per second (open loop)")
    args = parser.parse_args()
    command = "python benchmarks/bench_scale.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from tests.model_samples import linear_classifier, write_csv

    with tempfile.TemporaryDirectory(prefix="bench-scale-files-") as folder:
        files = Path(folder)
        linear_classifier(files / "fraud.onnx")
        write_csv(files / "tx.csv", rows=100, right=95)
        print(f"command: {command}\nmachine: {machine()}", flush=True)
        results = [
            run("embedded (1 serve: gunicorn 1x16 threads + its worker, SQLite queue)", embedded, args.commands, args.rate, files),
            run("redis (2 web: gunicorn 1x16 threads each + 2 workers, one Redis)", scaled, args.commands, args.rate, files),
        ]
    for r in results:
        print(report(r, args.commands))
    print(f"after: {machine()}")
    return 0 if all(not r.failed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
