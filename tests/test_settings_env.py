"""The environment is read once into Settings and checked there: a bad value stops the command
at start with one line naming the variable, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, SweepSettings, WebSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_web_and_cli_values_come_from_settings(tmp_path: Path) -> None:
    env = {"AIMODEL_HOME": str(tmp_path), "HOST": "0.0.0.0", "WEB_CONCURRENCY": "3", "WEB_THREADS": "32",
           "AIMODEL_ACCESS_LOG": "-", "AIMODEL_USER": "ada", "AIMODEL_SCAN_PARALLEL": "thread"}
    settings = load_settings(env)
    assert settings.web == WebSettings(host="0.0.0.0", workers=3, threads=32, access_log="-")
    assert (settings.user, settings.scan_parallel) == ("ada", "thread")
    assert load_settings({"AIMODEL_HOME": str(tmp_path)}).web == WebSettings()
    swept = load_settings({"AIMODEL_HOME": str(tmp_path), "AIMODEL_SWEEP_INTERVAL": "5", "AIMODEL_CHECK_TIMEOUT": "90"}).sweep
    assert (swept.interval, swept.check_timeout) == (5, 90)
    assert load_settings({"AIMODEL_HOME": str(tmp_path)}).sweep == SweepSettings(interval=60, check_timeout=600)


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("WEB_THREADS", "lots", "WEB_THREADS='lots' is not a whole number"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY=0 is out of range 1..64"),
        ("AIMODEL_SCAN_PARALLEL", "turbo", "AIMODEL_SCAN_PARALLEL='turbo' is not one of fork, process, spawn, thread, serial"),
        ("AIMODEL_SWEEP_INTERVAL", "0", "AIMODEL_SWEEP_INTERVAL=0 is out of range 1..3600"),
        ("AIMODEL_CHECK_TIMEOUT", "10m", "AIMODEL_CHECK_TIMEOUT='10m' is not a whole number"),
    ],
)
def test_a_bad_value_is_refused_when_settings_are_read(tmp_path: Path, name: str, value: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"AIMODEL_HOME": str(tmp_path), name: value})
    assert str(caught.value) == line


def _aimodel(tmp_path: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_", "WEB_"))}
    env.update(AIMODEL_HOME=str(tmp_path / "home"), **extra)
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_serve_with_a_bad_thread_count_stops_at_start_with_one_line(tmp_path: Path) -> None:
    result = _aimodel(tmp_path, "serve", "--port", "0", WEB_THREADS="many")
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration: WEB_THREADS='many' is not a whole number"
    assert not (tmp_path / "home").exists()  # nothing was started or created


def test_scanning_a_path_checks_the_scan_mode_first(tmp_path: Path) -> None:
    model = tmp_path / "m.npy"
    model.write_bytes(b"\x93NUMPY")
    for run in (
        subprocess.run([sys.executable, "-m", "bot.entry", "scan", str(model)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "AIMODEL_SCAN_PARALLEL": "turbo"}),
        _aimodel(tmp_path, "scan", str(model), AIMODEL_SCAN_PARALLEL="turbo"),
    ):
        assert run.returncode == 2, run.stderr
        assert "AIMODEL_SCAN_PARALLEL='turbo' is not one of fork, process, spawn, thread, serial" in run.stderr
        assert run.stdout == ""


def test_secrets_and_credential_files_of_the_process_are_read_once_and_kept_out_of_repr(tmp_path: Path) -> None:
    env = {"AIMODEL_HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "aws-secret-0004", "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp.json"}
    settings = load_settings(env)
    assert settings.process_secrets == ("aws-secret-0004",)
    assert settings.credential_files == ("/etc/gcp.json",)
    assert "aws-secret-0004" not in repr(settings)


def test_only_config_reads_the_environment() -> None:
    """Settings is the one reader; handing the environment on to a child process (git, the
    worker) is not a read."""
    import re

    read = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|=\s*os\.environ\b|environ if env is None")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("bot", "handlers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "bot" / "config.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if read.search(line)
    ]
    assert found == []


def test_web_keepalive_reaches_gunicorns_config(tmp_path: Path) -> None:
    from gunicorn.config import Config

    from bot.server import gunicorn_options

    def gunicorn(env: dict[str, str]) -> Config:
        cfg = Config()  # gunicorn's own, which checks each value as the web process's does
        for name, value in gunicorn_options(load_settings({"AIMODEL_HOME": str(tmp_path), **env}), "127.0.0.1", 0).items():
            cfg.set(name, value)
        return cfg

    assert (gunicorn({}).keepalive, gunicorn({}).threads) == (2, 16)  # gunicorn's own default, as before
    assert (gunicorn({"WEB_KEEPALIVE": "75", "WEB_THREADS": "32"}).keepalive, gunicorn({"WEB_THREADS": "32"}).threads) == (75, 32)
    for value, line in (("301", "WEB_KEEPALIVE=301 is out of range 0..300"), ("1m", "WEB_KEEPALIVE='1m' is not a whole number")):
        with pytest.raises(ConfigError) as caught:
            load_settings({"AIMODEL_HOME": str(tmp_path), "WEB_KEEPALIVE": value})
        assert str(caught.value) == line


def test_the_web_process_closes_each_connection_with_web_keepalive_0(home: Path, tmp_path: Path) -> None:
    """The running server, not only its settings: gunicorn answers `Connection: close`."""
    import http.client
    import re
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_", "WEB_", "GITHUB_"))}
    env.update(AIMODEL_HOME=str(home), WEB_KEEPALIVE="0", PYTHONPATH=str(ROOT))
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--no-worker", "--port", "0"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=30)
        while True:  # the master listens before its worker has booted
            try:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                break
            except (ConnectionError, http.client.RemoteDisconnected):
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                conn.close()
                time.sleep(0.05)
        response.read()
        assert response.status == 200 and response.getheader("Connection") == "close"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
