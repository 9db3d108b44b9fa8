"""The image's HEALTHCHECK. The web role is healthy when GET /healthz on $PORT answers 200 with
"ok": true; the worker role has no HTTP port, so it is healthy while its process runs (a dead
worker ends the container anyway). The role is named as the first argument, or found among the
container's processes (`aimodel serve` or `aimodel worker`). Exit 0 healthy, 1 not."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def role_of(argv: list[str]) -> str:
    """'web', 'worker' or '' for one process's argv (`.../aimodel serve ...`, `python -m bot.cli worker`)."""
    for i, arg in enumerate(argv[:-1]):
        if Path(arg).name == "aimodel" or arg == "bot.cli":
            verb = argv[i + 1]
            return {"serve": "web", "worker": "worker"}.get(verb, "")
    return ""


def running_roles(proc: Path = Path("/proc")) -> set[str]:
    roles = set()
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            argv = [part.decode(errors="replace") for part in cmdline.read_bytes().split(b"\0") if part]
        except OSError:  # the process ended while we looked
            continue
        if role := role_of(argv):
            roles.add(role)
    return roles


def web_healthy(port: str, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return response.status == 200 and json.loads(response.read()).get("ok") is True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def main(args: list[str]) -> int:
    roles = {args[0]} if args else running_roles()
    if "web" in roles:
        return 0 if web_healthy(os.environ.get("PORT", "3000")) else 1
    return 0 if "worker" in roles else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
