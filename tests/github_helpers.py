"""Shared pieces for the GitHub face's tests: a stand-in with a real manifest repository,
App credentials, the bot's web process as a subprocess, and signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from werkzeug.serving import make_server

from tests.standins.github_api import GitHubStandIn

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "github"
OWNER, NAME, REPO = "acme", "models", "acme/models"
HOOK_SECRET = "It's a Secret to Everybody"
BOT_TOKEN = "ghp_aimodel_bot_token_standin"
BOT_LOGIN = "aimodel-bot-user"
APP_ID, INSTALLATION_ID = 4242, 777

# person -> (role, GitHub login, the login's token on the stand-in)
PEOPLE: dict[str, tuple[str, str, str]] = {
    "ada": ("data-scientist", "ada-gh", "ghp_ada_token_standin"),
    "dev": ("devops-engineer", "dev-gh", "ghp_dev_token_standin"),
    "ops": ("devops-engineer", "ops-gh", "ghp_ops_token_standin"),
    "eve": ("data-engineer", "eve-gh", "ghp_eve_token_standin"),
}


def fixture_names() -> list[str]:
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.json"))


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def app_keypair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def manifest_repo_files(signing_public_key: bytes, *, auto_merge: bool = False, people: dict[str, tuple[str, str, str]] | None = None,
                        sources: tuple[Path, ...] = ()) -> dict[str, str]:
    """The repo template with people (and their GitHub logins) and the bot's public key trusted;
    `sources`: the test's folders of model files and data sets, allowed like a team's bucket."""
    from bot.init_repo import BOT_KEY_PATH, template_files
    from bot.manifests import CONFIG_PATH, parse_config

    files = {path: content.decode() for path, content in template_files().items()}
    config = yaml.safe_load(files[CONFIG_PATH])
    config["people"] = {name: {"roles": [role], "github": login} for name, (role, login, _t) in (people or PEOPLE).items()}
    config.setdefault("signing", {})["trusted_keys"] = [BOT_KEY_PATH]
    config.setdefault("merge", {})["auto_merge"] = auto_merge
    if sources:
        config["sources"] = {"artifacts": [str(s) for s in sources], "datasets": [str(s) for s in sources]}
    files[CONFIG_PATH] = yaml.safe_dump(config, sort_keys=False)
    parse_config(files[CONFIG_PATH].encode())
    files[BOT_KEY_PATH] = signing_public_key.decode()
    return files


@dataclass
class GitHubWorld:
    """A stand-in GitHub with `acme/models`, an AIMODEL_HOME with the bot's signing key, and
    the environment a bot process needs to use them."""

    standin: GitHubStandIn
    home: Path
    app: bool
    app_private_key: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **more: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "SLACK_", "AIMODEL_", "REDIS_URL"))
        }
        env.update(
            AIMODEL_HOME=str(self.home),
            AIMODEL_REPO=REPO,
            GITHUB_API_URL=self.standin.api_url,
            GITHUB_WEBHOOK_SECRET=HOOK_SECRET,
            PYTHONPATH=str(ROOT),
        )
        if self.app:
            env.update(GITHUB_APP_ID=str(APP_ID), GITHUB_APP_PRIVATE_KEY=self.app_private_key)
        else:
            env["GITHUB_TOKEN"] = BOT_TOKEN
        env.update(self.extra_env)
        env.update(more)
        return env

    def settings(self) -> Any:
        from bot.config import load_settings

        return load_settings(self.env())

    def client(self, person: str | None = None) -> Any:
        token = PEOPLE[person][2] if person else BOT_TOKEN
        return self.standin.client(token)


def make_world(standin: GitHubStandIn, home: Path, *, app: bool, auto_merge: bool = False) -> GitHubWorld:
    from bot.checks.sign import generate_key

    key = home / "keys" / "signing.pem"
    key.parent.mkdir(parents=True, exist_ok=True)
    generate_key(key)
    # the `model` fixture's files folder, beside home: on GitHub a person's files must be in sources
    files = manifest_repo_files(Path(str(key) + ".pub").read_bytes(), auto_merge=auto_merge, sources=(home.parent / "files",))
    standin.create_repo(OWNER, NAME, files=files)
    standin.add_token(BOT_TOKEN, BOT_LOGIN)
    for _role, login, token in PEOPLE.values():
        standin.add_token(token, login)
    private = ""
    if app:
        private, public = app_keypair()
        standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER)
    return GitHubWorld(standin, home, app, private)


# --------------------------------------------------------------------------- the web process


@dataclass
class WebProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def web_process(env: dict[str, str], log_path: Path, *, timeout: float = 60.0) -> Iterator[WebProcess]:
    """`python -m bot.cli serve --port 0` (gunicorn and its queue worker); the port comes from
    gunicorn's "Listening at:" line. Terminated and waited for on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"], env=env, cwd=str(ROOT),
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        url = ""
        while not url:
            text = log_path.read_text(errors="replace")
            match = re.search(r"Listening at: (http://[0-9.]+:\d+)", text)
            if match:
                url = match.group(1)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web process did not start (exit {proc.returncode}):\n{text}")
            time.sleep(0.05)
        while True:  # the app is loaded lazily per worker: wait for /healthz
            try:
                with requests.get(f"{url}/healthz", timeout=5) as resp:
                    if resp.status_code == 200:
                        break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web process is not healthy:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield WebProcess(proc, url, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()  # gunicorn's master stops its workers and the queue worker
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        out.close()


def post_delivery(url: str, event: str, payload: dict[str, Any] | bytes, *, secret: str = HOOK_SECRET, delivery: str | None = None,
                  session: Any = None, signature_header: str | None = "auto", timeout: float = 10.0) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "User-Agent": "GitHub-Hookshot/test",
    }
    if signature_header == "auto":
        headers["X-Hub-Signature-256"] = signature(secret, body)
    elif signature_header is not None:
        headers["X-Hub-Signature-256"] = signature_header
    poster = session or requests
    resp: requests.Response = poster.post(f"{url}/github/webhook", data=body, headers=headers, timeout=timeout)
    resp.close()
    return resp


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str | Callable[[], str] = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}; last value {last!r}")


class Collector:
    """Counts what bot.lifecycle.on_event would have been asked, for in-process handler tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, ctx: Any, event: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((event, payload))


@dataclass
class Bot:
    url: str
    ctx: Any
    world: GitHubWorld
    app: Any

    def queued(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(t.name, tuple(t.args)) for t in self.ctx.jobs.huey.pending()]

    def clear(self) -> None:
        self.ctx.jobs.huey.flush()


@contextmanager
def serve_bot(world: GitHubWorld, **env: str) -> Iterator[Bot]:
    """The real web app (create_app) with a real Context, on a real socket, in this process."""
    from bot.app import build_context
    from bot.config import load_settings
    from bot.server import create_app

    settings = load_settings(world.env(**env))
    ctx = build_context(settings)
    app = create_app(settings, ctx)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bot(f"http://127.0.0.1:{server.server_port}", ctx, world, app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        from handlers.github import RERUNS

        for rerun in list(RERUNS):  # re-runs started after an answer finish before the Context closes
            rerun.join(timeout=30)
        store = app.extensions.get("aimodel.github.deliveries")
        if store is not None and hasattr(store, "close"):
            store.close()
        ctx.close()


# --------------------------------------------------------------------------- shared fixtures
# Loaded for every test module through `pytest_plugins` in tests/conftest.py.


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn() as s:
        yield s
        assert s.errors == []


@pytest.fixture
def model(tmp_path: Path) -> dict[str, Path]:
    from tests.model_samples import linear_classifier, write_csv

    files = tmp_path / "files"
    onnx = linear_classifier(files / "fraud-v1.onnx")
    write_csv(files / "transactions.csv", rows=100, right=95)
    return {"onnx": onnx, "data": files / "transactions.csv"}

