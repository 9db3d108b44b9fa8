"""Long differential fuzz run of the model-file scanner (the suite runs a short one).

Mutants of real model files (pickle, joblib, torch zip and legacy, npy/npz) and of the crafted
bypass samples (tar/zip polyglots, joblib array records, side files) go to the scanner; every
mutant it calls clean goes to pickle.load, joblib.load, np.load(allow_pickle=True) and
torch.load(weights_only=False) in a sandboxed child process, whose audit hook refuses and
reports process starts, connections, library loads and writes into the work folder. Any
report is an escape: a file a loader would execute that the scanner passed.

Reproduce from the repository root:

    python benchmarks/fuzz_scan.py --count 20000 --seeds 1 2 3 4 5

Writes only under benchmarks/.work/fuzz/ (deleted afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "fuzz"


def main() -> int:
    sys.path.insert(0, str(REPO))
    from tests.scan_samples import differential_fuzz

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=5000, help="mutants per seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    total = clean = 0
    escapes: list[dict[str, object]] = []
    t0 = time.monotonic()
    for seed in args.seeds:
        folder = WORK / f"seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        n, c, e = differential_fuzz(folder, args.count, seed)
        total, clean = total + n, clean + c
        escapes += e
        print(f"seed {seed}: {n} mutants, {c} passed as clean and loaded, {len(e)} escapes",
              flush=True)  # fmt: skip
        if not args.keep and not e:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{total} mutants in {time.monotonic() - t0:.1f} s; {clean} clean ones loaded by 4 "
          f"loaders; escapes: {len(escapes)}")  # fmt: skip
    for e in escapes:
        print(json.dumps(e))
    print("reproduce: python benchmarks/fuzz_scan.py --count", args.count, "--seeds",
          *args.seeds)  # fmt: skip
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
