"""Benchmark model signing and verification (bot/checks/sign.py).

Goals (issue 3, "Sign and verify"):
  * sign and verify of one 1 GiB file each take <= 1.1x `openssl dgst -sha256` of that file;
  * sign of 2,000 small files takes <= 0.5x model_signing's time on the same folder.

Reproduce from the repository root:

    python benchmarks/bench_sign.py            # add --runs N to change repetitions

It writes only under benchmarks/.work/ (a 1 GiB file, 2,000 small files, keys, bundles)
and deletes that folder when done (--keep to keep it). The page cache is warmed before
each timed series, so the figures compare hashing and per-file overhead, not the disk.
model_signing (a test dependency) is measured through its Python API in this process and
through its `sign key` command line, next to ours.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
sys.path.insert(0, str(REPO))

from bot.checks import sign  # noqa: E402

GIB = 1 << 30


def _model_signing() -> Any:
    """Import model_signing; its 1.1 release imports pyOpenSSL without declaring it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            importlib.import_module("OpenSSL.crypto")
            return importlib.import_module("model_signing")
        except ImportError:
            pass
        crypto = types.ModuleType("OpenSSL.crypto")
        stand_in = types.ModuleType("OpenSSL")
        stand_in.__dict__["crypto"] = crypto
        sys.modules["OpenSSL"], sys.modules["OpenSSL.crypto"] = stand_in, crypto
        try:
            return importlib.import_module("model_signing")
        finally:  # nobody else should find the stand-in
            del sys.modules["OpenSSL"], sys.modules["OpenSSL.crypto"]


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed repetitions per figure (median)")
    ap.add_argument("--small-files", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep benchmarks/.work afterwards")
    args = ap.parse_args()
    runs = max(1, args.runs)

    ms = _model_signing()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    rows: list[tuple[str, float, str]] = []
    try:
        key_path = sign.generate_key(WORK / "key.pem")
        pub_path = WORK / "key.pem.pub"
        key = sign.load_private_key(key_path)
        pub = sign.load_public_key(pub_path)

        # ---- one 1 GiB file -------------------------------------------------------
        big = WORK / "big.bin"
        _make_big(big)
        big_sig = WORK / "big.bin.sig"
        _warm(big)
        t_openssl = statistics.median(
            _time(lambda: _run(["openssl", "dgst", "-sha256", str(big)]), runs)
        )
        t_sign_big = statistics.median(
            _time(lambda: sign.sign_model(big, key, bundle_path=big_sig), runs)
        )
        t_verify_big = statistics.median(
            _time(lambda: sign.verify_model(big, big_sig, [pub]), runs)
        )
        ms_sig = WORK / "big.ms.sig"
        t_ms_big = statistics.median(
            _time(
                lambda: (
                    ms.signing.Config()
                    .use_elliptic_key_signer(private_key=key_path)
                    .sign(big, ms_sig)
                ),
                max(1, runs // 2),
            )
        )
        big.unlink()  # the 1 GiB file goes as soon as it is measured
        rows += [
            ("1 GiB: openssl dgst -sha256", t_openssl, "baseline"),
            (
                "1 GiB: sign_model",
                t_sign_big,
                f"{t_sign_big / t_openssl:.2f}x openssl (goal <= 1.10x)",
            ),
            (
                "1 GiB: verify_model",
                t_verify_big,
                f"{t_verify_big / t_openssl:.2f}x openssl (goal <= 1.10x)",
            ),
            ("1 GiB: model_signing sign (API)", t_ms_big, f"{t_ms_big / t_openssl:.2f}x openssl"),
        ]

        # ---- 2,000 small files ----------------------------------------------------
        small = WORK / "small-model"
        total = _make_small(small, args.small_files)
        ours_sig = WORK / "small.ours.sig"
        theirs_sig = WORK / "small.theirs.sig"
        _warm(small)
        ms_sign = (
            ms.signing.Config()
            .use_elliptic_key_signer(private_key=key_path)
            .set_hashing_config(
                ms.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=True)
            )
        )
        ms_sign.sign(small, theirs_sig)  # warm-up, and a bundle for their verifier
        sign.sign_model(small, key, bundle_path=ours_sig)
        t_ms_small = statistics.median(_time(lambda: ms_sign.sign(small, theirs_sig), runs))
        t_sign_small = statistics.median(
            _time(lambda: sign.sign_model(small, key, bundle_path=ours_sig), runs)
        )

        def _ms_verify() -> None:
            ms.verifying.Config().use_elliptic_key_verifier(public_key=pub_path).verify(
                small, theirs_sig
            )

        t_ms_verify_small = statistics.median(_time(_ms_verify, runs))
        t_verify_small = statistics.median(
            _time(lambda: sign.verify_model(small, ours_sig, [pub]), runs)
        )
        label = f"{args.small_files} files ({total / 1e6:.1f} MB)"
        rows += [
            (f"{label}: model_signing sign (API)", t_ms_small, "baseline"),
            (
                f"{label}: sign_model",
                t_sign_small,
                f"{t_sign_small / t_ms_small:.2f}x model_signing (goal <= 0.50x)",
            ),
            (f"{label}: model_signing verify (API)", t_ms_verify_small, "baseline"),
            (
                f"{label}: verify_model",
                t_verify_small,
                f"{t_verify_small / t_ms_verify_small:.2f}x model_signing",
            ),
        ]

        # ---- the same through each command line (process start and imports included) --
        cli_runs = max(1, min(3, runs))
        py = sys.executable
        t_ms_cli = statistics.median(
            _time(
                lambda: _run(
                    [
                        py,
                        "-m",
                        "model_signing",
                        "sign",
                        "key",
                        str(small),
                        "--private_key",
                        str(key_path),
                        "--signature",
                        str(theirs_sig),
                    ]
                ),
                cli_runs,
            )
        )
        ours_cli = (
            "import sys; from bot.checks.sign import run_sign_command as r; "
            f"sys.exit(r({str(small)!r}, key={str(key_path)!r}, bundle={str(ours_sig)!r}))"
        )
        t_our_cli = statistics.median(_time(lambda: _run([py, "-c", ours_cli]), cli_runs))
        rows += [
            (f"{label}: `model_signing sign key` CLI", t_ms_cli, "baseline"),
            (
                f"{label}: run_sign_command in a new process",
                t_our_cli,
                f"{t_our_cli / t_ms_cli:.2f}x model_signing CLI",
            ),
        ]
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)

    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}"
    )
    print(f"median of {runs} runs (CLI rows: {min(3, runs)}), warm page cache\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'seconds':>8}  comparison")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 40}")
    for name, secs, note in rows:
        print(f"{name:<{width}}  {secs:8.3f}  {note}")
    print("\nreproduce: python benchmarks/bench_sign.py --runs", runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
