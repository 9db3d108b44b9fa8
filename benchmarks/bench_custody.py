"""Benchmark custody: keeping a registered artifact in the store (bot/store.py).

Goal (issue 11): `LocalStore.put` of a 1 GiB file, which copies it into the store and hashes
it in the same pass (one read), takes <= 1.2x `cp` of the same file; it is also compared with
`sha256sum` and Python's hashlib alone (hashing with no copy: the floor, since SHA-256 of one
file cannot be split over cores) and with `cp` followed by `sha256sum` (what a person would do
by hand: two reads).

Reproduce from the repository root:

    python benchmarks/bench_custody.py            # --runs N (default 5), --size-mib M (default 1024)

It writes only under benchmarks/.work/custody/ (the source file, a store, cp's copies) and
deletes that folder when done (--keep to keep it). The page cache is warmed before the series,
so the figures compare copying and hashing, not the disk; every copy is written fresh (the
store's object is removed between rounds, so `put` really copies). The contenders take turns
round by round and each figure is the median, so load from other processes spreads over all.
"""

from __future__ import annotations

import argparse
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
WORK = HERE / ".work" / "custody"
sys.path.insert(0, str(REPO))

from bot.store import LocalStore  # noqa: E402

MIB = 1 << 20


def _write_source(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            f.write(block[i % 251 :] + block[: i % 251])  # differing blocks, cheap to make


def _timed(fn: Callable[[], object]) -> float:
    os.sync()  # the previous contender's dirty pages are written back first, not during this one
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    for tool in ("cp", "sha256sum"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: cannot compare", file=sys.stderr)
            return 2

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    source = WORK / "model.bin"
    _write_source(source, args.size_mib * MIB)
    store_root = WORK / "store"
    store = LocalStore(store_root)
    copy = WORK / "copy.bin"

    def put() -> None:
        with open(source, "rb") as src:
            digest, _ = store.put(src)
        obj = store.local_path(digest)
        obj.chmod(0o644)
        obj.unlink()  # the next round copies again (the same digest would be kept once)

    def cp() -> None:
        subprocess.run(["cp", str(source), str(copy)], check=True)
        copy.unlink()

    def sha256sum() -> None:
        subprocess.run(["sha256sum", str(source)], check=True, stdout=subprocess.DEVNULL)

    def hash_only() -> None:
        import hashlib

        with open(source, "rb") as src:
            hashlib.file_digest(src, "sha256")

    def cp_then_sha256sum() -> None:
        subprocess.run(["cp", str(source), str(copy)], check=True)
        subprocess.run(["sha256sum", str(copy)], check=True, stdout=subprocess.DEVNULL)
        copy.unlink()

    contenders: dict[str, Callable[[], None]] = {
        "custody put (copy + sha256, one read)": put,
        "cp": cp,
        "sha256sum": sha256sum,
        "hashlib sha256 alone (the hash floor)": hash_only,
        "cp, then sha256sum of the copy": cp_then_sha256sum,
    }
    sha256sum()  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for _ in range(args.runs):
            for name, fn in contenders.items():
                times[name].append(_timed(fn))
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    size_gib = args.size_mib / 1024
    print(f"custody of a {args.size_mib} MiB file; median of {args.runs} runs; {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} cores, page cache warm")
    for name, t in med.items():
        print(f"  {name:<40} {t:7.3f} s  {size_gib / t:6.2f} GiB/s  ({', '.join(f'{x:.3f}' for x in times[name])})")
    ratio = med["custody put (copy + sha256, one read)"] / med["cp"]
    print(f"  put / cp = {ratio:.2f}x (goal <= 1.20x); put / (cp then sha256sum) = "
          f"{med['custody put (copy + sha256, one read)'] / med['cp, then sha256sum of the copy']:.2f}x")
    print(f"command: python benchmarks/bench_custody.py --runs {args.runs} --size-mib {args.size_mib}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
