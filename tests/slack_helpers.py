"""Shared helpers for the Slack face's tests and benchmark: a real AIMODEL_HOME whose people
carry Slack ids, the real web process (`python -m bot.cli serve --port 0`, gunicorn) talking
to the Slack stand-in, and signed deliveries posted to it over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import Delivery

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "xoxb-aimodel-test-token"
SECRET = "5ca1ab1e0ddba11ca5cadebeefc0ffee"

# name -> (role, Slack id); carol's id is not listed: she is found by her email
PEOPLE: dict[str, tuple[str, str]] = {
    "alice": ("data-scientist", "U0ALICE"),
    "bob": ("devops-engineer", "U0BOB"),
    "dave": ("application-developer", "U0DAVE"),
    "carol": ("data-engineer", ""),
}
EMAILS = {"carol": "carol@example.com"}
PROD_CHANNEL = "C0PROD"


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def init_home(home: Path, *, people: Mapping[str, tuple[str, str]] = PEOPLE, prod_channel: str = PROD_CHANNEL,
              sources: Sequence[Path] = ()) -> None:
    """`aimodel init` with the people, then their Slack ids and the prod channel pushed to main;
    `sources`: the test's own folders of model files and data sets, allowed like a team's bucket."""
    args = [a for name, (role, _) in people.items() for a in ("--person", f"{name}={role}")]
    env = {**os.environ, "AIMODEL_HOME": str(home)}
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_API_URL", "REDIS_URL", "AIMODEL_REPO"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-m", "bot.cli", "init", *args], env=env, cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "c"
        _git(Path(tmp), "clone", "-q", str(home / "repo.git"), str(clone))
        path = clone / ".aimodel" / "config.yaml"
        config = yaml.safe_load(path.read_text())
        for name, (_, slack_id) in people.items():
            if slack_id:
                config["people"][name]["slack"] = [slack_id]
            if name in EMAILS:
                config["people"][name]["email"] = EMAILS[name]
        config.setdefault("notifications", {})["prod_channel"] = prod_channel
        if sources:
            config.setdefault("sources", {})
            for key in ("artifacts", "datasets"):
                config["sources"][key] = [str(folder) for folder in sources]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        _git(clone, "commit", "-qam", "Slack ids and the prod channel")
        _git(clone, "push", "-q", "origin", "HEAD:main")


@dataclass
class WebProcess:
    """`python -m bot.cli serve --port 0` (gunicorn + `aimodel worker`), stopped on close."""

    home: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    def start(self, timeout: float = 60) -> WebProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
            env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            booted = "Booting worker" in text
            if found and booted and self._healthy(int(found.group(1))):
                self.port = int(found.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the web process did not start:\n{self.log_text()}")

    def _healthy(self, port: int) -> bool:
        import requests

        try:
            with requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status_code == 200
        except requests.RequestException:
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # gunicorn shuts down gracefully and stops the worker
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def server_env(home: Path, slack: SlackStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "AIMODEL_", "REDIS_"))}
    env.update({
        "AIMODEL_HOME": str(home),
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.api_url,
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
        **extra,
    })
    return env


def post(web: WebProcess, delivery: Delivery, *, secret: str = SECRET, timestamp: int | None = None) -> Any:
    return delivery.post(web.events_url, secret, timestamp=timestamp)


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def texts(messages: list[dict[str, Any]]) -> str:
    """Every text and section text of some messages, for assertions."""
    out = []
    for m in messages:
        out.append(str(m.get("text", "")))
        for b in m.get("blocks") or []:
            t = b.get("text")
            if isinstance(t, dict):
                out.append(str(t.get("text", "")))
            for e in b.get("elements") or []:
                if isinstance(e.get("text"), (str, dict)):
                    out.append(str(e["text"]["text"] if isinstance(e["text"], dict) else e["text"]))
    return "\n".join(out)


def buttons(message: Mapping[str, Any]) -> dict[str, str]:
    """action_id -> value of every button in a message."""
    found = {}
    for b in message.get("blocks") or []:
        for e in b.get("elements") or []:
            if e.get("type") == "button":
                found[e["action_id"]] = e.get("value", "")
        acc = b.get("accessory")
        if isinstance(acc, dict) and acc.get("type") == "button":
            found[acc["action_id"]] = acc.get("value", "")
    return found


@contextmanager
def slack_and_web(tmp: Path) -> Iterator[tuple[SlackStandIn, WebProcess, Path]]:
    """A fresh home in `tmp`, the Slack stand-in and the real web process serving that home."""
    home = tmp / "home"
    init_home(home)
    with SlackStandIn() as slack:
        slack.add_bot_token(TOKEN)
        web = WebProcess(home, server_env(home, slack), tmp / "web.log").start()
        try:
            yield slack, web, home
        finally:
            web.stop()
