"""Benchmark model signing and verification (bot/checks/sign.py).

Goals:
  * issue 9: sign and verify of one 1 GiB file each take <= 0.6x a single-threaded
    `openssl dgst -sha256` of that file (the file is hashed in shards on every core);
  * issue 3: sign of 2,000 small files takes <= 0.5x model_signing's time on the same folder.

Reproduce from the repository root:

    python benchmarks/bench_sign.py            # add --runs N to change repetitions

It writes only under benchmarks/.work/sign/ (a 1 GiB file, 2,000 small files, keys,
bundles) and deletes that folder when done (--keep to keep it). The page cache is warmed before
each series, so the figures compare hashing and per-file overhead, not the disk. The
contenders of each series take turns round by round, and each figure is the median, so
load from other processes spreads over all of them. model_signing (a test dependency) is
measured through its Python API in this process and through its `sign key` command line.

The 1 GiB series also times the alternatives the design chose between: hashing by file
(one core: what model_signing's default and our by-file bundles cost), model_signing's own
shard serialization at the same shard size, and the same shards hashed by worker
processes (os.pread in a fork()ed pool) instead of threads. --shard-sweep adds our sign at
other shard sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import multiprocessing
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "sign"  # only this subfolder: other benchmarks keep theirs in .work
sys.path.insert(0, str(REPO))

from bot.checks import hashing, sign  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20


def _model_signing() -> Any:
    """Import model_signing (a test dependency, with pyOpenSSL) without its import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("model_signing")


def _cpu() -> float:
    """CPU seconds used so far by this process (all threads) and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _interleaved(
    fns: dict[str, Callable[[], object]], runs: int, cpu: dict[str, float] | None = None
) -> dict[str, float]:
    """Median seconds of each function, the functions taking turns round by round.

    With CPU given, it also receives each function's median CPU seconds: CPU / wall time
    is how many cores the function actually got, which on a shared machine says whether
    the other processes left it any.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            c0 = _cpu()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(_cpu() - c0)
    if cpu is not None:
        cpu.update({name: statistics.median(cs) for name, cs in cpus.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def _warm(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in files:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def _make_big(path: Path) -> None:
    block = os.urandom(64 << 20)
    with open(path, "wb") as f:
        for _ in range(GIB // len(block)):
            f.write(block)


def _make_small(root: Path, count: int) -> int:
    rng = random.Random(3)
    total = 0
    for i in range(count):
        d = root / f"shard{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 16 * 1024)
        (d / f"tensor{i:04d}.bin").write_bytes(os.urandom(size))
        total += size
    return total


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _pread_shard(job: tuple[str, int, int]) -> bytes:
    """One shard in a worker process (the process-based contender)."""
    path, start, end = job
    fd = os.open(path, os.O_RDONLY)
    try:
        h = hashlib.sha256()
        pos = start
        while pos < end:
            data = os.pread(fd, min(1 << 20, end - pos), pos)
            if not data:
                break
            h.update(data)
            pos += len(data)
        return h.digest()
    finally:
        os.close(fd)


def _processes(path: Path, shard_size: int) -> list[bytes]:
    jobs = [(str(path), s, e) for s, e in hashing.shard_bounds(path.stat().st_size, shard_size)]
    # fork: the cheapest start there is (no re-import), so this is processes at their best
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(hashing.usable_cores()) as pool:
        return pool.map(_pread_shard, jobs, chunksize=1)


def _bench_big(
    ms: Any, key_path: Path, runs: int, sweep: list[int]
) -> list[tuple[str, float, str]]:
    key = sign.load_private_key(key_path)
    pub = sign.load_public_key(key_path.with_name(key_path.name + ".pub"))
    big = WORK / "big.bin"
    big_sig = WORK / "big.bin.sig"
    files_sig = WORK / "big.files.sig"
    ms_sig = WORK / "big.ms.sig"
    shard = sign.DEFAULT_SHARD_SIZE
    _make_big(big)
    try:
        _warm(big)
        ms_signer = ms.signing.Config().use_elliptic_key_signer(private_key=key_path)
        ms_shards = (
            ms.signing.Config()
            .use_elliptic_key_signer(private_key=key_path)
            .set_hashing_config(ms.hashing.Config().use_shard_serialization(shard_size=shard))
        )
        sign.sign_model(big, key, bundle_path=big_sig)
        method = sign.verify_model(big, big_sig, [pub])
        assert method.serialization == "shards", "auto did not choose shards for 1 GiB"
        n_shards = len(method.digests)
        want = [bytes.fromhex(d) for d in method.digests.values()]
        assert _processes(big, shard) == want  # the contenders compute the same digests
        fns: dict[str, Callable[[], object]] = {
            "openssl": lambda: _run(["openssl", "dgst", "-sha256", str(big)]),
            "sign": lambda: sign.sign_model(big, key, bundle_path=big_sig),
            "verify": lambda: sign.verify_model(big, big_sig, [pub]),
            "sign files": lambda: sign.sign_model(
                big, key, bundle_path=files_sig, serialization="files"
            ),
            "processes": lambda: _processes(big, shard),
            "ms": lambda: ms_signer.sign(big, ms_sig),
            "ms shards": lambda: ms_shards.sign(big, ms_sig),
        }
        for size in sweep:
            fns[f"sweep {size}"] = lambda size=size: sign.sign_model(
                big, key, bundle_path=big_sig, serialization="shards", shard_size=size << 20
            )
        cpu: dict[str, float] = {}
        t = _interleaved(fns, runs, cpu)
    finally:
        big.unlink()  # the 1 GiB file goes as soon as it is measured
    base = t["openssl"]
    cores = hashing.usable_cores()

    def used(name: str) -> str:
        return f"{cpu[name]:.2f} CPU-s, {cpu[name] / t[name]:.2f} cores"

    def vs(name: str, goal: str = "") -> str:
        ratio = f"{t[name] / base:.2f}x openssl" + (f" (goal <= {goal})" if goal else "")
        return f"{ratio}; {used(name)}"

    rows = [
        ("1 GiB: openssl dgst -sha256 (one core)", base, f"baseline; {used('openssl')}"),
        (
            f"1 GiB: sign_model (auto: {n_shards} shards of {shard >> 20} MiB, {cores} threads)",
            t["sign"],
            vs("sign", "0.60x"),
        ),
        ("1 GiB: verify_model (that shard bundle)", t["verify"], vs("verify", "0.60x")),
        ("1 GiB: sign_model by file (one core)", t["sign files"], vs("sign files")),
        (
            f"1 GiB: the same shards in {cores} fork()ed processes (os.pread)",
            t["processes"],
            vs("processes"),
        ),
        ("1 GiB: model_signing sign (API, by file)", t["ms"], vs("ms")),
        (
            f"1 GiB: model_signing sign (API, shards of {shard >> 20} MiB)",
            t["ms shards"],
            vs("ms shards"),
        ),
    ]
    rows += [
        (f"1 GiB: sign_model, shards of {size} MiB", t[f"sweep {size}"], vs(f"sweep {size}"))
        for size in sweep
    ]
    return rows


def _bench_small(ms: Any, key_path: Path, count: int, runs: int) -> list[tuple[str, float, str]]:
    key = sign.load_private_key(key_path)
    pub_path = key_path.with_name(key_path.name + ".pub")
    pub = sign.load_public_key(pub_path)
    small = WORK / "small-model"
    total = _make_small(small, count)
    ours_sig = WORK / "small.ours.sig"
    theirs_sig = WORK / "small.theirs.sig"
    _warm(small)
    ms_signer = (
        ms.signing.Config()
        .use_elliptic_key_signer(private_key=key_path)
        .set_hashing_config(ms.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=True))
    )
    ms_signer.sign(small, theirs_sig)  # warm-up, and a bundle for their verifier
    sign.sign_model(small, key, bundle_path=ours_sig)

    def ms_verify() -> None:
        ms.verifying.Config().use_elliptic_key_verifier(public_key=pub_path).verify(
            small, theirs_sig
        )

    t = _interleaved(
        {
            "ms sign": lambda: ms_signer.sign(small, theirs_sig),
            "sign": lambda: sign.sign_model(small, key, bundle_path=ours_sig),
            "ms verify": ms_verify,
            "verify": lambda: sign.verify_model(small, ours_sig, [pub]),
        },
        runs,
    )
    # the same through each command line: process start and imports included
    py = sys.executable
    ms_cli = [py, "-m", "model_signing", "sign", "key", str(small)]
    ms_cli += ["--private_key", str(key_path), "--signature", str(theirs_sig)]
    ours_cli = (
        "import sys; from bot.checks.sign import run_sign_command as r; "
        f"sys.exit(r({str(small)!r}, key={str(key_path)!r}, bundle={str(ours_sig)!r}))"
    )
    c = _interleaved(
        {"ms": lambda: _run(ms_cli), "ours": lambda: _run([py, "-c", ours_cli])},
        max(1, min(3, runs)),
    )
    label = f"{count} files ({total / 1e6:.1f} MB)"
    return [
        (f"{label}: model_signing sign (API)", t["ms sign"], "baseline"),
        (
            f"{label}: sign_model",
            t["sign"],
            f"{t['sign'] / t['ms sign']:.2f}x model_signing (goal <= 0.50x)",
        ),
        (f"{label}: model_signing verify (API)", t["ms verify"], "baseline"),
        (
            f"{label}: verify_model",
            t["verify"],
            f"{t['verify'] / t['ms verify']:.2f}x model_signing",
        ),
        (f"{label}: `model_signing sign key` CLI", c["ms"], "baseline"),
        (
            f"{label}: run_sign_command in a new process",
            c["ours"],
            f"{c['ours'] / c['ms']:.2f}x model_signing CLI",
        ),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed rounds per series (median)")
    ap.add_argument("--small-files", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep benchmarks/.work/sign afterwards")
    ap.add_argument(
        "--shard-sweep",
        default="",
        metavar="MIB,...",
        help="also sign the 1 GiB file with these shard sizes (MiB), e.g. 16,256",
    )
    args = ap.parse_args()
    sweep = [int(x) for x in args.shard_sweep.split(",") if x.strip()]
    runs = max(1, args.runs)

    ms = _model_signing()
    load = os.getloadavg()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)  # (benchmarks/.work itself may hold other benchmarks' files)
    try:
        key_path = sign.generate_key(WORK / "key.pem")
        rows = _bench_big(ms, key_path, runs, sweep)
        rows += _bench_small(ms, key_path, args.small_files, runs)
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.parent.rmdir()  # only if no other benchmark keeps anything there

    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {openssl.strip()}"
    )
    after = os.getloadavg()
    print(
        f"median of {runs} interleaved rounds (CLI rows: {min(3, runs)}), warm page cache\n"
        f"load average (1, 5, 15 min) before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} (this run's own threads count too)\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'seconds':>8}  comparison")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 40}")
    for name, secs, note in rows:
        print(f"{name:<{width}}  {secs:8.3f}  {note}")
    extra = f" --shard-sweep {args.shard_sweep}" if sweep else ""
    if args.small_files != 2000:
        extra += f" --small-files {args.small_files}"
    print(f"\nreproduce: python benchmarks/bench_sign.py --runs {runs}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
