"""Benchmark the model-file scanner (bot/checks/scan.py) against picklescan and modelscan.

Goals (issue 3, "Scan"):
  * 2,000 small model files (~30 MB: pickles, .npy, safetensors, torch zips): `aimodel scan DIR`
    wall time, Python start-up included, <= 0.5x picklescan's;
  * a 45 MB pickle of 5 million floats (a Python list): <= 0.5x picklescan's time and
    <= 100 MiB peak RSS;
  * a 512 MiB pickle of numpy arrays: no slower than picklescan, <= 100 MiB peak RSS.

Reproduce from the repository root:

    python benchmarks/bench_scan.py              # --runs N (default 3), --keep, --quick

It writes only under benchmarks/.work/scan/ (data, deleted afterwards unless --keep) and
benchmarks/.work/venv/ (a virtualenv with picklescan and modelscan, created on first use and
kept, so they never enter the project's environment). Every tool runs as a fresh process; wall
time and that child's own peak RSS come from os.wait4. The page cache is warm (one untimed run
first), so the figures compare the scanners, not the disk. Also measured: our scanner with
worker processes, threads, and one process, on the 2,000 files.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "scan"
VENV = HERE / ".work" / "venv"
MIB = 1 << 20


def ensure_venv() -> dict[str, Path]:
    """picklescan and modelscan in their own virtualenv (created here, reused later)."""
    bindir = VENV / "bin"
    tools = {"picklescan": bindir / "picklescan", "modelscan": bindir / "modelscan"}
    for _attempt in range(2):  # benchmarks/bench_sign.py wipes benchmarks/.work: retry once
        if all(p.exists() for p in tools.values()):
            break
        print(f"creating {VENV} with picklescan and modelscan ...", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q",
                        "picklescan", "modelscan"], check=False)  # fmt: skip
    missing = [name for name, p in tools.items() if not p.exists()]
    if missing:
        raise SystemExit(f"could not install {', '.join(missing)} into {VENV}")
    return tools


def tool_version(python: Path, dist: str) -> str:
    out = subprocess.run([str(python), "-c",
                          f"import importlib.metadata as m; print(m.version({dist!r}))"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout.strip() or "?"


# ----------------------------------------------------------------------------- data


def make_small(folder: Path, count: int) -> None:
    import pickle

    import numpy as np
    from safetensors.numpy import save_file

    try:
        import torch
    except ImportError:
        torch = None
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    kinds = ["pkl", "npy", "safetensors", "pt" if torch is not None else "pkl"]
    for i in range(count):
        kind = kinds[i % 4]
        n = int(rng.integers(1000, 2800))  # ~15 KB of float64 on average
        w = rng.random(n)
        path = folder / f"m{i:04d}.{kind}"
        if kind == "pkl":
            with open(path, "wb") as f:
                pickle.dump({"weight": w, "bias": w[:10].copy(), "name": f"m{i}",
                             "meta": {"epoch": i, "lr": 0.01}}, f, protocol=4)  # fmt: skip
        elif kind == "npy":
            np.save(path, w)
        elif kind == "safetensors":
            save_file({"weight": w, "bias": w[:10].copy()}, str(path))
        else:
            assert torch is not None
            torch.save({"weight": torch.from_numpy(w), "bias": torch.zeros(10)}, path)


def make_floats(path: Path, n: int) -> None:
    import pickle
    import random

    rnd = random.Random(0)
    with open(path, "wb") as f:
        pickle.dump([rnd.random() for _ in range(n)], f, protocol=4)


def make_arrays(path: Path, total: int) -> None:
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    per = 8 * MIB
    with open(path, "wb") as f:
        arrays = {f"layer{i}.weight": rng.random(per // 8).reshape(1024, -1)
                  for i in range(total // per)}  # fmt: skip
        pickle.dump(arrays, f, protocol=4)


# ----------------------------------------------------------------------------- measuring


_RUNNER = """
import json, os, subprocess, sys, time
cmd = json.loads(sys.argv[1])
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps([time.perf_counter() - t0, usage.ru_maxrss / 1024,
                  os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime]))
"""


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit code, CPU seconds) of one run of ``cmd``.

    A small runner process starts the tool and reads its rusage with os.wait4 (CPU time includes
    the tool's own worker processes): a child forked straight from this (big, numpy-laden)
    process would report our pages as its peak RSS.
    """
    import json

    out = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(cmd)], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    wall, rss, rc, cpu = json.loads(out)
    return float(wall), float(rss), int(rc), float(cpu)


def measure(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> dict[str, float]:
    run_once(cmd, env)  # warm the page cache and the .pyc files
    walls, rss, cpus = [], [], []
    rc = 0
    for _ in range(runs):
        w, r, rc, c = run_once(cmd, env)
        walls.append(w)
        rss.append(r)
        cpus.append(c)
    return {"wall": statistics.median(walls), "rss": max(rss), "rc": rc,
            "cpu": statistics.median(cpus)}  # fmt: skip


def our_command() -> list[str]:
    exe = Path(sys.executable).parent / "aimodel"
    if exe.exists():
        return [str(exe), "scan"]
    return [sys.executable, "-m", "bot.checks.scan"]


def our_env() -> dict[str, str]:
    """Our commands import ``bot`` from this tree: the ``aimodel`` script would otherwise take
    whatever tree the environment's editable install points at (another checkout)."""
    return dict(os.environ, PYTHONPATH=str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep benchmarks/.work/scan afterwards")
    ap.add_argument("--quick", action="store_true", help="smaller data (a smoke run)")
    ap.add_argument("--no-others", action="store_true", help="skip picklescan and modelscan")
    args = ap.parse_args()

    tools = {} if args.no_others else ensure_venv()
    vpy = VENV / "bin" / "python"
    versions = {name: tool_version(vpy, name) for name in tools}
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    n_small = 200 if args.quick else 2000
    n_floats = 500_000 if args.quick else 5_000_000
    big = 64 * MIB if args.quick else 512 * MIB
    print("generating data ...", flush=True)
    make_small(WORK / "small", n_small)
    make_floats(WORK / "floats.pkl", n_floats)
    make_arrays(WORK / "arrays.pkl", big)
    small_mb = sum(p.stat().st_size for p in (WORK / "small").iterdir()) / 1e6

    ours = our_command()
    # pip byte-compiles the packages it installs (picklescan, modelscan); do the same for ours,
    # since this environment may run with PYTHONDONTWRITEBYTECODE.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "bot")],
                   check=False, stdout=subprocess.DEVNULL)  # fmt: skip
    datasets = [
        (f"{n_small} small files ({small_mb:.0f} MB)", WORK / "small", 0.5, None),
        (f"pickle of {n_floats:,} floats "
         f"({(WORK / 'floats.pkl').stat().st_size / 1e6:.0f} MB)", WORK / "floats.pkl", 0.5, 100),
        (f"pickle of numpy arrays ({big // MIB} MiB)", WORK / "arrays.pkl", 1.0, 100),
    ]  # fmt: skip
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for label, path, goal_ratio, goal_rss in datasets:
        res = {"aimodel scan": measure([*ours, str(path)], args.runs, our_env())}
        if path.name == "small":
            res["python -m bot.checks.scan"] = measure(
                [sys.executable, "-m", "bot.checks.scan", str(path)], args.runs, our_env()
            )
        if "picklescan" in tools:
            res["picklescan"] = measure([str(tools["picklescan"]), "--path", str(path)], args.runs)
        if "modelscan" in tools:
            res["modelscan"] = measure([str(tools["modelscan"]), "-p", str(path)], args.runs)
        base = res.get("picklescan", {}).get("wall")
        for tool, m in res.items():
            ratio = m["wall"] / base if base else float("nan")
            verdict = ""
            if tool == "aimodel scan":
                ok = (base is None or ratio <= goal_ratio) and (
                    goal_rss is None or m["rss"] <= goal_rss
                )
                verdict = (
                    ("met" if ok else "MISSED")
                    + f" (<= {goal_ratio}x"
                    + (f", <= {goal_rss} MiB)" if goal_rss else ")")
                )
            rows.append((label, tool, f"{m['wall']:.3f}", f"{m['cpu']:.3f}", f"{m['rss']:.0f}",
                         f"{ratio:.3f}", str(int(m["rc"])), verdict))  # fmt: skip

    # parallel strategy, in this process's CPU count
    par = []
    for mode in ("fork", "process", "spawn", "thread", "serial"):
        env = dict(our_env(), AIMODEL_SCAN_PARALLEL=mode)
        m = measure([sys.executable, "-m", "bot.checks.scan", str(WORK / "small")], args.runs, env)
        par.append((mode, f"{m['wall']:.3f}", f"{m['cpu']:.3f}", f"{m['rss']:.0f}"))

    print()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}")  # fmt: skip
    print("tools: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"runs: median of {args.runs} (after one warm-up run); RSS: max over runs; "
          f"load average before: {load_before}")  # fmt: skip
    head = ("data", "tool", "wall s", "cpu s", "peak RSS MiB", "x picklescan", "exit", "goal")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    print()
    print(f"python -m bot.checks.scan on the {n_small} small files, by parallel mode:")
    for mode, wall, cpu, rss in par:
        print(f"  {mode:8s} wall {wall} s  cpu {cpu} s  {rss} MiB")
    print()
    print("reproduce: python benchmarks/bench_scan.py" + (" --quick" if args.quick else ""))
    print("our command: PYTHONPATH=" + str(REPO) + " " + " ".join(ours) + " PATH")
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
