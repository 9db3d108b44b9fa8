"""`aimodel scan` and `aimodel sign` start fast: they never load Slack, GitHub or server code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("slack_bolt", "slack_sdk", "github", "flask", "gunicorn", "huey", "git", "bot.server", "handlers", "onnxruntime", "torch")

PROBE = """
import json, sys
from bot.entry import main
code = main(sys.argv[1:])
loaded = sorted({m.split('.')[0] if not m.startswith('bot.') else m for m in sys.modules})
print(json.dumps({"code": code, "loaded": loaded}))
"""


def _loaded(*argv: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, check=False)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["code"], data["loaded"]


def test_scan_of_a_path_loads_no_faces(tmp_path: Path) -> None:
    import pickle

    sample = tmp_path / "weights.pkl"
    sample.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    code, loaded = _loaded("scan", str(sample), "--json")
    assert code == 0
    assert [m for m in loaded if m in HEAVY or m.startswith(HEAVY)] == []


def test_sign_of_a_path_loads_no_faces(tmp_path: Path) -> None:
    from bot.checks.sign import generate_key

    key = generate_key(tmp_path / "k.pem")
    model = tmp_path / "m.bin"
    model.write_bytes(b"\0" * 1024)
    code, loaded = _loaded("sign", str(model), "--key", str(key), "--bundle", str(tmp_path / "m.sig"))
    assert code == 0 and (tmp_path / "m.sig").exists()
    assert [m for m in loaded if m in HEAVY or m.startswith(HEAVY)] == []


def test_update_loads_neither_gitpython_nor_the_redis_client(created: str, home: Path) -> None:
    """Opening a pull request is the verb people time against `git push`: without REDIS_URL
    the Redis client (80 ms with asyncio) and GitPython (45 ms) are start-up for nothing."""
    from bot.fsutil import file_lock

    env = {**os.environ, "AIMODEL_HOME": str(home)}
    with file_lock(home / "worker.lock"):  # a worker runs the checks: the CLI only opens the PR
        out = subprocess.run(
            [sys.executable, "-c", PROBE, "update", created, "--SLA", "accuracy>=0.8", "--as", "eve", "--json"],
            env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False,
        )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["code"] == 0, out.stderr
    assert "huey" in data["loaded"]  # the checks were queued
    assert [m for m in data["loaded"] if m in ("git", "gitdb", "redis")] == []
