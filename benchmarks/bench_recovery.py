"""Recovery: time from a worker's `kill -9` in the middle of a PR's validate check to the check
finishing on the next worker, on the embedded default (SQLite) and on Redis; and what the sweep
costs a CLI command on a home with many pull request records.

    python benchmarks/bench_recovery.py [--records 2000] [--timeout 5]

Before the sweep (issue 13) the interrupted checks stayed pending for ever ("45 s later, still
pending"): the reference is "never". Writes everything under benchmarks/.work/recovery/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.forges.local import LocalForge  # noqa: E402
from tests.model_samples import slow_model, write_csv  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "recovery"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIMODEL_", "REDIS_", "SLACK_", "GITHUB_"))}
    return {**base, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def cli(env: dict[str, str], *argv: str) -> str:
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "serving the queue" in line, line
    return proc


def states(home: Path) -> dict[str, str]:
    pr = LocalForge(home).get_pr(1)
    return {n: c.state for n, c in pr.checks.items() if c.commit == pr.head}


def wait(probe: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def recovery(name: str, extra: dict[str, str]) -> tuple[float, float]:
    """(seconds from kill -9 to the checks finished, seconds of one uninterrupted check run)."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    model = slow_model(work / "slow.onnx", hidden=256, layers=48)
    write_csv(work / "big.csv", rows=20000, right=19000)
    env = env_for(home, AIMODEL_SWEEP_INTERVAL="1", **extra)
    cli(env, "init", "--person", "ada=data-scientist")
    first = worker(env)
    cli(env, "create", "fraud", "--app", "payments", "--dataset", "big", "--artifact", str(model), "--dataset-uri",
        str(work / "big.csv"), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
    wait(lambda: "pending" in states(home).values())
    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    first.wait()
    second = worker(env)
    try:
        wait(lambda: len(states(home)) == 4 and "pending" not in states(home).values())
        done = time.monotonic()
        assert set(states(home).values()) == {"success"}, states(home)
        # an uninterrupted run of the same checks, for scale
        head = LocalForge(home).get_pr(1).head
        cli(env, "pr", "recheck", "1", "--as", "ada")
        t0 = time.monotonic()
        wait(lambda: LocalForge(home).get_pr(1).head != head and len(states(home)) == 4 and "pending" not in states(home).values())
        one_run = time.monotonic() - t0
    finally:
        second.terminate()
        second.wait()
    return done - killed, one_run


def sweep_cost(records: int, runs: int) -> tuple[float, float]:
    """Median seconds of `aimodel pr list` on a home with `records` finished pull requests,
    with the drain's sweep and, for reference, of the listing alone (Jobs.sweep not called)."""
    from bot.app import Context
    from bot.config import load_settings

    work = WORK / "sweep"
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    env = env_for(home)
    cli(env, "init", "--person", "ada=data-scientist")
    prs = home / "forge" / "prs"
    prs.mkdir(parents=True, exist_ok=True)
    for n in range(1, records + 1):
        record = {"number": n, "title": f"t{n}", "body": "", "author": "ada", "branch": f"b{n}", "base": "main",
                  "head": f"{n:040x}", "state": "merged", "url": "", "checks": {}, "reviews": [], "merge_commit": f"{n:040x}",
                  "meta": {"deploy": {"ok": True}}}
        (prs / f"{n}.json").write_text(json.dumps(record))
    settings = load_settings(env)
    swept, listed = [], []
    with Context(settings) as ctx:
        for _ in range(runs):
            t0 = time.perf_counter()
            ctx.jobs.sweep(running_dead=True)
            swept.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ctx.forge.list_prs("open")
            listed.append(time.perf_counter() - t0)
    return statistics.median(swept), statistics.median(listed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=5, help="AIMODEL_CHECK_TIMEOUT for the Redis case")
    args = parser.parse_args()
    print(f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"# python benchmarks/bench_recovery.py --records {args.records} --runs {args.runs} --timeout {args.timeout}")
    gap, one = recovery("embedded", {})
    print(f"embedded (SQLite): kill -9 -> checks finished on the next worker {gap:.1f} s (one uninterrupted run: {one:.1f} s); before: never")
    redis = shutil.which("redis-server")
    if redis:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            gap, one = recovery("redis", {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "AIMODEL_CHECK_TIMEOUT": str(args.timeout)})
            print(f"Redis, AIMODEL_CHECK_TIMEOUT={args.timeout}: kill -9 -> checks finished {gap:.1f} s (one run: {one:.1f} s); before: never")
        finally:
            server.terminate()
            server.wait()
    else:
        print("Redis: skipped (redis-server is not installed)")
    swept, listed = sweep_cost(args.records, args.runs)
    print(f"sweep before a CLI drains, {args.records} merged PR records: median {swept * 1000:.0f} ms "
          f"(listing the open PRs alone: {listed * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
