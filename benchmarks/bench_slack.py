"""Ack latency of `/aimodel list` on the real web process, against a bare Bolt app.

Starts the Slack Web API stand-in (tests/standins, 127.0.0.1), a real AIMODEL_HOME with two
merged models, and two servers served the same way (gunicorn, gthread, 1 worker x 16
threads, Bolt's Flask adapter, POST /slack/events, auth.test against the stand-in):

  aimodel  `python -m bot.cli serve --port 0` (with its worker): acks "working on it",
           then the lazy listener lists the models and answers on the response_url;
  bare     a Bolt app whose only listener acks (same App options: process_before_response,
           signing secret, token verification).

Each gets RATE signed slash commands per second for SECONDS seconds (open loop: each request
is sent at its scheduled time, whatever the previous ones do), in alternating 5-second blocks
(bare, aimodel, bare, ...) so that other load on the machine weighs on both alike.
Latency is from the first byte sent to the last byte of the ack read, over a kept-alive
loopback connection per sender thread. Errors are non-200 answers and failed requests; for
aimodel, the lazy answers that reached the response_url are counted too.

    python benchmarks/bench_slack.py [--rate 50] [--seconds 60] [--write benchmarks/SLACK.md]

Goal: aimodel p99 <= 100 ms and aimodel p50 <= 1.5 x bare p50. Not part of the test run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import slack_helpers as h  # noqa: E402
from tests.standins.slack_api import SlackStandIn  # noqa: E402
from tests.standins.slack_signing import sign_request, slash_command_body  # noqa: E402

SENDERS = 32
BLOCK_SECONDS = 5


# ---------------------------------------------------------------------- the bare Bolt app


def serve_bare(port_file: str) -> None:
    """The baseline: a Bolt app that only acks, under gunicorn like `aimodel serve`."""
    from flask import Flask, request
    from gunicorn.app.base import BaseApplication
    from slack_bolt import App
    from slack_bolt.adapter.flask import SlackRequestHandler

    from bot.config import SlackSettings
    from handlers.slack import web_client

    settings = SlackSettings(os.environ["SLACK_SIGNING_SECRET"], os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"])

    def create() -> Flask:
        bolt = App(client=web_client(settings), signing_secret=settings.signing_secret, process_before_response=True)

        @bolt.command("/aimodel")
        def ack_only(ack: Any) -> None:
            ack(response_type="ephemeral", text="Working on `/aimodel list`…")

        handler = SlackRequestHandler(bolt)
        web = Flask("bare")
        web.add_url_rule("/slack/events", "slack_events", lambda: handler.handle(request), methods=["POST"])
        return web

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", "127.0.0.1:0")
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("workers", 1)
            self.cfg.set("threads", 16)
            self.cfg.set("timeout", 60)
            self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            return create()

    _App().run()


# ---------------------------------------------------------------------- the stand-in, in its own process


def serve_standin() -> None:
    """The Slack stand-in in a process of its own, so its work (auth.test, 50 response_url
    posts a second) does not share the load generator's interpreter. Line protocol on stdin:
    `urls N` -> N fresh response_urls (JSON); `answered` -> how many of them got an answer."""
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        created: list[str] = []
        print(json.dumps({"api_url": slack.api_url}), flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "urls":
                urls = [slack.new_response_url(channel="C0MODELS", user="U0DAVE") for _ in range(int(arg))]
                created += urls
                print(json.dumps(urls), flush=True)
            elif cmd == "answered":
                print(json.dumps(sum(1 for u in created if slack.responses(u))), flush=True)
            elif cmd == "quit":
                break


class StandIn:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-standin"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.api_url = str(self._read()["api_url"])

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def ask(self, line: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---------------------------------------------------------------------- load


@dataclass
class Result:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    late_starts: int = 0  # requests that started > 10 ms after their scheduled time
    answered: int | None = None

    def pct(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        k = min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))
        return data[k]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "sent": self.sent, "errors": self.errors, "late_starts": self.late_starts,
            "p50_ms": round(self.pct(50), 2), "p90_ms": round(self.pct(90), 2), "p99_ms": round(self.pct(99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else float("nan"),
            "answered": self.answered,
        }


class Sender:
    """One kept-alive loopback connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()
        self.all: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.local.conn = c
            with self.lock:
                self.all.append(c)
        return c

    def post(self, body: bytes) -> tuple[int, float]:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign_request(h.SECRET, body)}
        for attempt in (0, 1):
            c = self.conn()
            try:
                start = time.perf_counter()
                c.request("POST", "/slack/events", body=body, headers=headers)
                resp = c.getresponse()
                resp.read()
                return resp.status, (time.perf_counter() - start) * 1000
            except (ConnectionError, http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self.lock:
            for c in self.all:
                c.close()


def load(result: Result, sender: Sender, bodies: Sequence[bytes], rate: float) -> None:
    """Send `bodies` at `rate` per second, open loop, recording into `result`."""
    lock = threading.Lock()

    def one(body: bytes, due: float) -> None:
        late = time.perf_counter() - due > 0.010
        try:
            status, ms = sender.post(body)
        except Exception:
            with lock:
                result.errors += 1
            return
        with lock:
            result.late_starts += late
            if status == 200:
                result.latencies_ms.append(ms)
            else:
                result.errors += 1

    start = time.perf_counter() + 0.05
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        for i, body in enumerate(bodies):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, body, due)
            result.sent += 1


def warm(sender: Sender, body: bytes) -> None:
    for _ in range(5):
        sender.post(body.replace(b"text=list", b"text=help"))


def bodies_for(slack: StandIn, count: int, text: str = "list") -> tuple[list[bytes], list[str]]:
    urls: list[str] = slack.ask(f"urls {count}")
    bodies = [
        slash_command_body(text=text, user_id="U0DAVE", user_name="dave", channel_id="C0MODELS", team_id="T0001",
                           response_url=url, trigger_id=f"{i}.{i}.bench", channel_name="ml-models")
        for i, url in enumerate(urls)
    ]
    return bodies, urls


def start_bare(tmp: Path, slack: Any) -> tuple[subprocess.Popen[bytes], int, Any]:
    log_path = tmp / "bare.log"
    log = log_path.open("wb")
    env = h.server_env(tmp / "home", slack)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(tmp / "bare.port")],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import re

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
        if found and "Booting worker" in text:
            time.sleep(0.5)
            return proc, int(found.group(1)), log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("the bare app did not start:\n" + log_path.read_text(errors="replace"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def prepare_home(home: Path, files: Path) -> None:
    from tests.model_samples import linear_classifier, write_csv

    h.init_home(home, sources=[files])
    onnx = linear_classifier(files / "model.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_"))}
    env["AIMODEL_HOME"] = str(home)
    for n, (name, app) in enumerate((("fraud", "payments"), ("spam", "mail")), start=1):
        extra = ["--dataset-uri", str(files / "tx.csv"), "--label-column", "label"] if n == 1 else []
        for argv in (["create", name, "--app", app, "--dataset", "tx", "--artifact", str(onnx), *extra, "--as", "alice"],
                     ["pr", "merge", str(n), "--as", "alice"]):
            subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=env, cwd=ROOT, check=True, capture_output=True)


def run(rate: float, seconds: float, text: str = "list") -> dict[str, Any]:
    count = int(rate * seconds)
    slack = StandIn()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-slack-") as tmp_name:
            tmp = Path(tmp_name)
            prepare_home(tmp / "home", tmp / "files")
            bare, port, log = start_bare(tmp, slack)
            web = h.WebProcess(tmp / "home", h.server_env(tmp / "home", cast(SlackStandIn, slack)), tmp / "web.log")
            try:
                web.start()
                results = {"bare": Result("bare"), "aimodel": Result("aimodel", answered=0)}
                senders = {"bare": Sender(port), "aimodel": Sender(web.port)}
                bare_bodies, _ = bodies_for(slack, count, text)
                ours_bodies, _ = bodies_for(slack, count, text)
                before = int(slack.ask("answered"))
                for name, bodies in (("bare", bare_bodies), ("aimodel", ours_bodies)):
                    warm(senders[name], bodies[0])
                # alternate blocks (bare, then aimodel) so that whatever else the machine does
                # at a given minute weighs on both alike
                per_block = max(1, int(rate * BLOCK_SECONDS))
                for i in range(0, count, per_block):
                    load(results["bare"], senders["bare"], bare_bodies[i:i + per_block], rate)
                    load(results["aimodel"], senders["aimodel"], ours_bodies[i:i + per_block], rate)
                ours = results["aimodel"]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    ours.answered = int(slack.ask("answered")) - before
                    if ours.answered >= ours.sent - ours.errors:
                        break
                    time.sleep(0.2)
                for sender in senders.values():
                    sender.close()
            finally:
                web.stop()
                stop(bare)
                log.close()
            return {k: v.summary() for k, v in results.items()}
    finally:
        slack.close()


def machine() -> dict[str, str]:
    return {"cpus": str(os.cpu_count()), "arch": platform.machine(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def report(summary: dict[str, Any], rate: float, seconds: float, command: str) -> str:
    bare, ours = summary["bare"], summary["aimodel"]
    ratio = ours["p50_ms"] / bare["p50_ms"] if bare["p50_ms"] else float("nan")
    ok_p99 = ours["p99_ms"] <= 100
    ok_ratio = ratio <= 1.5
    m = machine()
    lines = [
        "# Slack ack latency: `/aimodel list` on the real web process",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpus']} cores, {m['arch']}, Python {m['python']}, {m['system']}. Loopback only.",
        f"Load: {rate:g} signed slash commands per second for {seconds:g} s per server (open loop), alternating {BLOCK_SECONDS} s blocks.",
        "",
        "| server | sent | errors | p50 ms | p90 ms | p99 ms | max ms | mean ms | lazy answers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in (bare, ours):
        answered = "-" if s["answered"] is None else str(s["answered"])
        lines.append(f"| {s['name']} | {s['sent']} | {s['errors']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} | {s['mean_ms']} | {answered} |")
    lines += [
        "",
        f"Goal p99 <= 100 ms: {'met' if ok_p99 else 'NOT met'} ({ours['p99_ms']} ms).",
        f"Goal p50 <= 1.5 x bare: {'met' if ok_ratio else 'NOT met'} ({ratio:.2f} x).",
        "",
        "Both servers: gunicorn gthread, 1 worker x 16 threads, Bolt's Flask adapter, the same App options",
        "(process_before_response=True: the ack function runs in the request thread, the response goes",
        "out at once). aimodel also verifies the signature's freshness against its replay set, parses the",
        "command, and after each ack is written runs the lazy listener (catalog, list, response_url) on its",
        "executor while the next requests arrive; the bare app does none of that. Latency is client-side, send to last byte.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--write", default="", help="write the figures as Markdown to this file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--text", default="list", help="the slash command's text (default: list)")
    p.add_argument("--serve-bare", default="", help=argparse.SUPPRESS)
    p.add_argument("--serve-standin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_standin:
        serve_standin()
        return 0
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if args.rate <= 0 or not 0 < args.seconds <= 600:
        p.error("--rate must be > 0 and --seconds in (0, 600]")
    command = "python benchmarks/bench_slack.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    summary = run(args.rate, args.seconds, args.text)
    text = report(summary, args.rate, args.seconds, command.strip())
    if args.json:
        print(json.dumps({"machine": machine(), "rate": args.rate, "seconds": args.seconds, **summary}, indent=2))
    else:
        print(text)
    if args.write:
        Path(args.write).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
