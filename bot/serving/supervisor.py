"""One MLServer per environment that has models, for `aimodel serve`.

Runs as its own process beside the web process and the queue worker
(`python -P -m bot.serving.supervisor`, started and stopped by `aimodel serve`). Level
triggered: every beat it compares the environments whose folders hold a served model
version (a `model-settings.json`) with the servers it runs, starts the missing ones (bound to
the configured host, 127.0.0.1 by default, on the port bot.serving.ports names), starts again
one that exited, moves one whose configured port changed, and stops one whose environment has
no models left. A new server loads what its folder holds through the
repository API, never at MLServer's own start-up: there a single model that fails to load
stops the whole server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bot.config import CREDENTIAL_FILE_ENV, SECRET_ENV, ServingSettings
from bot.messages import serving as msg
from bot.serving import client, layout, ports, servers

log = logging.getLogger("aimodel.serving")

BEAT = 0.25  # seconds between looks at the deploy folders: a first deploy to an environment waits about this long
RETRY_AFTER = 5.0  # seconds before starting again a server that did not start
LOG_LIMIT = 10 << 20  # bytes of a server's output file before it is set aside at the next start


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def mlserver_command(repo: Path) -> list[str]:
    """MLServer's own command line (`mlserver start FOLDER`), in this interpreter."""
    return [sys.executable, "-c", "import sys; from mlserver.cli.main import main; sys.exit(main())", "start", str(repo)]


def mlserver_env(inherited: dict[str, str], serving: ServingSettings, port: int) -> dict[str, str]:
    """The server's environment: none of the bot's secrets, none of our metrics directory
    (prometheus_client would write MLServer's samples into the web process's /metrics), no
    stray MLSERVER_* setting; MLServer's settings are ours."""
    dropped = {*SECRET_ENV, *CREDENTIAL_FILE_ENV, "PROMETHEUS_MULTIPROC_DIR"}
    child = {k: v for k, v in inherited.items() if k not in dropped and not k.startswith("MLSERVER")}
    child.update(
        MLSERVER_HOST=serving.host,
        MLSERVER_HTTP_PORT=str(port),
        MLSERVER_GRPC_PORT="0",  # gRPC always listens; on a free port, on the same host
        MLSERVER_METRICS_ENDPOINT="",  # no separate metrics server (and no fixed port 8082)
        MLSERVER_PARALLEL_WORKERS="0",  # inference in the server process: ~180 MB, no worker pool to crash
        MLSERVER_LOAD_MODELS_AT_STARTUP="false",
        MLSERVER_DEBUG="false",
        MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION="bot.serving.repository.VersionFolders",
    )
    return child


@dataclass(frozen=True)
class Plan:
    exited: tuple[str, ...] = ()  # its server exited: forget it (started again below when still wanted)
    stop: tuple[str, ...] = ()  # running, but the environment has no served model left, or its port changed
    start: tuple[str, ...] = ()


def plan(
    wanted: set[str], running: Mapping[str, bool], retry_at: Mapping[str, float], now: float, moved: frozenset[str] = frozenset()
) -> Plan:
    """One beat, from plain data: `running` maps each started environment to whether its
    process is still alive; `retry_at` holds when a server that did not start may be tried
    again; `moved` names the servers listening elsewhere than their port now says (stopped
    and started again on it)."""
    alive = {env for env, up in running.items() if up}
    moving = alive & moved & wanted
    alive -= moving
    return Plan(
        exited=tuple(sorted(env for env, up in running.items() if not up)),
        stop=tuple(sorted((alive - wanted) | moving)),
        start=tuple(sorted(env for env in wanted - alive if now >= retry_at.get(env, 0.0))),
    )


@dataclass
class Running:
    env: str
    proc: subprocess.Popen[bytes]
    record: servers.ServerRecord
    output: IO[bytes] = field(repr=False)


class Supervisor:
    def __init__(
        self, home: Path, serving: ServingSettings, environ: dict[str, str], config_ports: ports.ConfigPorts | None = None
    ) -> None:
        self.home = home
        self.serving = serving
        self.environ = environ
        self.config_ports = config_ports  # `environments.<env>.port` of the repository config; None: not read
        self.running: dict[str, Running] = {}
        self.retry_at: dict[str, float] = {}
        self.stopping = threading.Event()  # set by SIGTERM/SIGINT: a server still starting is not waited for

    def reap_orphans(self) -> None:
        """Servers a killed supervisor left behind hold their ports: end them, by their
        recorded pid, once /proc confirms the pid is still that environment's MLServer."""
        for path in sorted(servers.folder(self.home).glob("*.json")):
            record = servers.read(self.home, path.stem) if path.stem != servers.SUPERVISOR else None
            if record is None:
                continue
            try:
                command = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                command = []
            if str(layout.repository(self.home, record.env)).encode() in command and any(b"mlserver" in part for part in command):
                os.kill(record.pid, signal.SIGTERM)
            servers.remove(self.home, record.env)

    def wanted(self) -> set[str]:
        """The environments whose repository has a served model version."""
        folder = servers.folder(self.home)
        if not folder.is_dir():
            return set()
        return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and layout.served_versions(p)}

    def step(self) -> None:
        codes = {env: run.proc.poll() for env, run in self.running.items()}
        configured = self.config_ports() if self.config_ports is not None else {}
        moved = frozenset(
            env for env, run in self.running.items() if ports.port_for(env, self.serving, configured) not in (0, run.record.port)
        )
        todo = plan(self.wanted(), {env: code is None for env, code in codes.items()}, self.retry_at, time.monotonic(), moved)
        for env in todo.exited:
            log.warning(msg.server_exited(env, codes[env]))
            self._forget(env)
        for env in todo.stop:
            was = self.running[env].record.port
            self.stop(env)
            log.info(msg.server_moving(env, was, ports.port_for(env, self.serving, configured)) if env in moved else msg.server_stopped(env))
        for env in todo.start:
            self.start(env)

    def start(self, env: str) -> None:
        repo = layout.repository(self.home, env)
        configured = self.config_ports(fresh=True) if self.config_ports is not None else {}
        port = ports.port_for(env, self.serving, configured) or free_port(self.serving.host)
        servers.folder(self.home).mkdir(parents=True, exist_ok=True)
        log_path = servers.folder(self.home) / f"{env}.log"
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > LOG_LIMIT:  # one older file kept: MLServer logs every request
                log_path.replace(log_path.with_suffix(".log.1"))
        output = open(log_path, "ab")  # noqa: SIM115  # held open for the server's life
        began = time.monotonic()
        proc = subprocess.Popen(
            mlserver_command(repo), cwd=repo, env=mlserver_env(self.environ, self.serving, port),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
        record = servers.ServerRecord(env, proc.pid, self.serving.host, port, time.time())
        deadline = began + self.serving.timeout
        while proc.poll() is None and time.monotonic() < deadline and not self.stopping.is_set() and not client.live(record.url, 1.0):
            time.sleep(0.05)
        if proc.poll() is not None or not client.live(record.url, 1.0):
            _end(proc)
            output.close()
            self.retry_at[env] = time.monotonic() + RETRY_AFTER
            log.error(msg.server_failed_start(env, str(log_path)))
            return
        for model in sorted(layout.served_versions(repo)):
            try:
                client.load(record.url, model, self.serving.timeout)
            except client.ServingError as exc:
                log.error(msg.startup_load_failed(env, model, str(exc)))
        self.running[env] = Running(env, proc, record, output)
        servers.write(self.home, record)
        log.info(msg.server_started(env, record.url, proc.pid, time.monotonic() - began))

    def stop(self, env: str) -> None:
        run = self.running.get(env)
        if run is not None:
            _end(run.proc)
        self._forget(env)

    def _forget(self, env: str) -> None:
        run = self.running.pop(env, None)
        servers.remove(self.home, env)
        if run is not None:
            run.output.close()

    def stop_all(self) -> None:
        for run in self.running.values():  # all told first: they stop together
            if run.proc.poll() is None:
                run.proc.terminate()
        for env in list(self.running):
            self.stop(env)

    def run(self, parent: int) -> None:
        try:
            while not self.stopping.is_set() and os.getppid() == parent:  # a parent gone: serve was killed
                self.step()
                self.stopping.wait(BEAT)
        finally:
            self.stop_all()


def _end(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    from bot import logs
    from bot.config import ConfigError, load_settings
    from bot.fsutil import file_lock

    logs.setup()
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.error(str(exc))
        return 2
    home = settings.home
    config_ports = ports.ConfigPorts(ports.clone_of(settings), settings.default_branch)
    supervisor = Supervisor(home, settings.serving, dict(os.environ), config_ports)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    servers.folder(home).mkdir(parents=True, exist_ok=True)
    with file_lock(servers.folder(home) / ".supervisor.lock", blocking=False) as held:
        if not held:
            log.warning(msg.already_supervised(str(home)))
            return 0
        servers.mark_supervisor(home, os.getpid())
        try:
            supervisor.reap_orphans()
            supervisor.run(os.getppid())
        finally:
            servers.unmark_supervisor(home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
