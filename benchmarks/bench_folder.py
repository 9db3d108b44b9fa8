"""Benchmark folder models in custody (bot/checks/fetch.py, bot/checks/folders.py).

A Hugging Face style folder (config.json, tokenizer.json, N safetensors-sized shards) is kept
in the store file by file plus a file list (`describe_artifact`: every file admitted, copied
and hashed in one read), and copied back out verified file by file (`copy_folder_verified`,
what the checks and the deploy do). Compared, in the same run, with what a person would do by
hand: `cp -r` (one read, no hash) and `cp -r` then `sha256sum` of every file (two reads).

Reproduce from the repository root:

    python benchmarks/bench_folder.py             # --runs N (default 3), --shards K (4), --shard-mib M (64)

It writes only under benchmarks/.work/folder/ and deletes it when done. The page cache is
warmed first; the contenders take turns round by round and each figure is the median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "folder"
sys.path.insert(0, str(REPO))

from bot.checks.fetch import copy_folder_verified, describe_artifact  # noqa: E402
from bot.manifests import Sources  # noqa: E402
from bot.sources import Access, Guard  # noqa: E402
from bot.store import LocalStore  # noqa: E402

MIB = 1 << 20


def _make_folder(root: Path, shards: int, shard_mib: int) -> int:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["Bench"], "hidden_size": 4096}))
    (root / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {f"t{i}": i for i in range(50_000)}}}))
    block = os.urandom(MIB)
    for s in range(shards):
        with open(root / f"model-{s + 1:05d}-of-{shards:05d}.safetensors", "wb") as f:
            for i in range(shard_mib):
                f.write(block[(i + s) % 251 :] + block[: (i + s) % 251])
    return sum(p.stat().st_size for p in root.iterdir())


def _timed(fn: Callable[[], object]) -> float:
    os.sync()  # the previous contender's dirty pages are written back first, not during this one
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _round(work: Path, source: Path, access: Access) -> dict[str, float]:
    """One turn of every contender, each writing a fresh copy."""
    store = LocalStore(work / "store")
    kept: list[str] = []
    copy, out, plain = work / "cp", work / "out" / "model", work / "plain"

    def keep() -> None:
        kept.append(describe_artifact(str(source), "", access, store).sha256)

    def cp() -> None:
        subprocess.run(["cp", "-r", str(source), str(copy)], check=True)

    def cp_and_hash() -> None:
        cp()
        subprocess.run(["sha256sum", *sorted(str(p) for p in copy.iterdir())], stdout=subprocess.DEVNULL, check=True)

    def copy_out() -> None:
        copy_folder_verified(kept[0], out, store)

    def cp_out() -> None:
        subprocess.run(["cp", "-r", str(store.root / "sha256"), str(plain)], check=True)

    result = {"keep": _timed(keep), "cp -r": _timed(cp)}
    shutil.rmtree(copy)
    result["cp -r + sha256sum"] = _timed(cp_and_hash)
    result["copy out verified"] = _timed(copy_out)
    result["cp -r out"] = _timed(cp_out)
    subprocess.run(["chmod", "-R", "u+w", str(work)], check=True)  # stored objects are read-only
    shutil.rmtree(work)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=64)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    source = WORK / "source-model"
    total = _make_folder(source, args.shards, args.shard_mib)
    access = Guard().for_main(Sources())
    files = sorted(str(p) for p in source.iterdir())
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    times: dict[str, list[float]] = {k: [] for k in ("keep", "cp -r", "cp -r + sha256sum", "copy out verified", "cp -r out")}
    for r in range(args.runs):
        for name, seconds in _round(WORK / f"round-{r}", source, access).items():
            times[name].append(seconds)

    med = {k: statistics.median(v) for k, v in times.items()}
    mib = total / MIB
    print(f"folder: {args.shards} shards x {args.shard_mib} MiB + config.json + tokenizer.json = {mib:.0f} MiB; "
          f"{args.runs} runs, medians; {platform.python_version()} on {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    for name, t in med.items():
        print(f"  {name:<20} {t:7.3f} s  {mib / t:7.0f} MiB/s")
    print(f"  keep / cp -r = {med['keep'] / med['cp -r']:.2f}x; keep / (cp -r + sha256sum) = {med['keep'] / med['cp -r + sha256sum']:.2f}x")
    print(f"  copy out verified / cp -r = {med['copy out verified'] / med['cp -r out']:.2f}x")
    print("reproduce: python benchmarks/bench_folder.py " + " ".join(sys.argv[1:]))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
