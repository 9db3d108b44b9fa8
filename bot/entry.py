"""The `aimodel` console script.

Scanning or signing a path is what people run in pre-commit hooks and CI loops, where
start-up is most of the time: those go straight to the checker module. Everything else
goes through the full CLI (bot/cli.py).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

_SCAN_FLAGS = {"--json", "--sarif"}


def _is_target(arg: str) -> bool:
    return not arg.startswith("-") and ("://" in arg or os.path.exists(arg))


def _fast_scan(args: Sequence[str]) -> int | None:
    targets = [a for a in args if a not in _SCAN_FLAGS]
    if not targets or not all(_is_target(t) for t in targets):
        return None  # model names, --appName, --help, a typo: the full CLI explains
    from bot.checks.scan import run_scan_command

    return run_scan_command(targets, as_json="--json" in args, sarif="--sarif" in args)


def closed_pipe() -> int:
    """The reader of our output went away (`aimodel pr list | head -1`): stop quietly, as
    `git log | head` does, with 128 + SIGPIPE. Output still buffered goes to /dev/null so
    Python's own flush at exit finds nothing to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file (in-process callers)
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["scan"]:
        code = _fast_scan(args[1:])  # handles a closed pipe itself, keeping the verdict's exit code
        if code is not None:
            return code
    from bot.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
