"""Shared fixtures: a real AIMODEL_HOME (bare repo, clone, queue) and the real `aimodel` CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.github_helpers"]

PEOPLE = {
    "ada": "data-scientist",
    "alan": "application-developer",
    "eve": "data-engineer",
    "dev": "devops-engineer",
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def text(self) -> str:
        return self.out + self.err


Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests say who they are with --as; a developer's own settings must not leak in.
    for name in ("AIMODEL_USER", "AIMODEL_REPO", "AIMODEL_SIGNING_KEY", "REDIS_URL", "SLACK_SIGNING_SECRET",
                 "SLACK_BOT_TOKEN", "GITHUB_TOKEN", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aimodel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the real CLI entry point in-process with AIMODEL_HOME in tmp_path."""
    from bot.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("AIMODEL_HOME", str(home))
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, expect: int | None = 0) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        result = Result(code, out.getvalue(), err.getvalue())
        if expect is not None:
            assert code == expect, f"aimodel {' '.join(argv)} exited {code}, expected {expect}\n{result.text}"
        return result

    return run


@pytest.fixture
def home(aimodel: Run, tmp_path: Path) -> Path:
    """An initialized home with one person per role."""
    args = [a for name, role in PEOPLE.items() for a in ("--person", f"{name}={role}")]
    aimodel("init", *args)
    return tmp_path / "home"


@dataclass
class ModelFiles:
    onnx: Path
    onnx_v2: Path
    data: Path


@pytest.fixture
def model_files(tmp_path: Path) -> ModelFiles:
    """A real ONNX classifier, a second version of it, and a CSV on which it scores 0.95."""
    from tests.model_samples import linear_classifier, write_csv

    return ModelFiles(
        onnx=linear_classifier(tmp_path / "files" / "fraud-v1.onnx"),
        onnx_v2=linear_classifier(tmp_path / "files" / "fraud-v2.onnx", output="probabilities"),
        data=write_csv(tmp_path / "files" / "transactions.csv", rows=100, right=95) and tmp_path / "files" / "transactions.csv",
    )


@pytest.fixture
def created(aimodel: Run, home: Path, model_files: ModelFiles) -> str:
    """`fraud` registered and merged (not yet deployed anywhere)."""
    aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
            "--dataset-uri", str(model_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")
    return "fraud"


def git_branches(home: Path) -> list[str]:
    import git

    repo = git.Repo(home / "repo.git")
    try:
        return sorted(h.name for h in repo.heads)
    finally:
        repo.close()


def tree_snapshot(root: Path) -> dict[str, int]:
    """Every file under root with its size: to prove a refused command wrote nothing."""
    snap: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if rel.startswith(("cache/", "work/.git/", "queue.db")) or "/objects/" in rel or rel.endswith((".lock", "-journal", "-wal", "-shm")):
                continue
            snap[rel] = p.stat().st_size
    return snap


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port, for tests that share state through Redis."""
    import shutil
    import socket
    import subprocess
    import time

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)



def promote_through(aimodel: Run, model: str, last: str, version: str = "") -> None:
    """Deploy `model` environment by environment (dev -> test -> ...) up to and including `last`,
    each pull request approved where the template asks and merged by a person allowed to."""
    for env in ("dev", "test", "prod"):
        args = ["deploy", model, "--env", env, "--as", "eve", "--json"]
        if version:
            args[4:4] = ["--version", version]
        number = str(aimodel(*args).json["pr"])
        if env != "dev":
            aimodel("pr", "approve", number, "--as", "dev" if env == "prod" else "alan")
        aimodel("pr", "merge", number, "--as", "dev" if env == "prod" else "eve")
        if env == last:
            return
