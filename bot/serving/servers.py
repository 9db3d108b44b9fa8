"""Where each environment's model server listens: small files under `<home>/serving/`.

The supervisor (`aimodel serve`) writes `<env>.json` once that environment's MLServer
answers, and `supervisor.json` while it runs; deploys, `list` and `status` in other processes
read them. A record whose process is gone counts as no record.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.fsutil import read_json, write_json

SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class ServerRecord:
    env: str
    pid: int
    host: str
    port: int
    started: float

    @property
    def url(self) -> str:
        """Where to reach it from this machine (a server bound to every address answers on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def folder(home: Path) -> Path:
    return home / "serving"


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's: not ours, but alive
        return True
    return True


def write(home: Path, record: ServerRecord) -> None:
    write_json(folder(home) / f"{record.env}.json", asdict(record))


def remove(home: Path, env: str) -> None:
    (folder(home) / f"{env}.json").unlink(missing_ok=True)


def read(home: Path, env: str) -> ServerRecord | None:
    try:
        data = read_json(folder(home) / f"{env}.json")
        record = ServerRecord(str(data["env"]), int(data["pid"]), str(data["host"]), int(data["port"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if alive(record.pid) else None


def mark_supervisor(home: Path, pid: int) -> None:
    write_json(folder(home) / f"{SUPERVISOR}.json", {"pid": pid})


def unmark_supervisor(home: Path) -> None:
    (folder(home) / f"{SUPERVISOR}.json").unlink(missing_ok=True)


def supervisor_running(home: Path) -> bool:
    try:
        pid = int(read_json(folder(home) / f"{SUPERVISOR}.json")["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return alive(pid)
