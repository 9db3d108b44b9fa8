"""Benchmark releases on the local target: merge -> release live.

Goal (issue 11): from `aimodel pr merge N` to the application's new release live in dev
(the CLI drains the queue itself, so the command returns once the deploy is done): median
<= 2 s for one 50 MB model. Compared with `cp` of the same bytes in the same run (what
placing a file by hand costs; the release also verifies the digest while copying, the
signature and the check attestation, writes metadata.json and a release record, and
switches the release).

Growth: a release of 10 and of 100 models (1 MB each) applied by the target with the real
installer (store copy, digest, signature and attestation verified for each), against `cp`
of the same files. Plans are built from the merged catalog as bot.deploy.plan does, so the
figure does not depend on how a manifest spells per-environment pins.

Reproduce from the repository root:

    python benchmarks/bench_release.py            # --runs N (default 5), --size-mib M (default 50), --models 10,100

Everything is written under benchmarks/.work/release/ and removed when done (--keep keeps it).
Registering the models (checks run on each) is not timed and takes a few minutes for 100.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
WORK = HERE / ".work" / "release"
sys.path.insert(0, str(REPO))

from bot.cli import main as aimodel_main  # noqa: E402

MIB = 1 << 20
PEOPLE = ("ada=data-scientist", "eve=data-engineer", "dev=devops-engineer")


def aimodel(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = aimodel_main(list(argv))
    if code != 0:
        raise SystemExit(f"aimodel {' '.join(argv)} exited {code}:\n{out.getvalue()}{err.getvalue()}")
    return out.getvalue()


def _timed(fn: Callable[[], object]) -> float:
    os.sync()  # the previous round's dirty pages are written back first, not during this one
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _model(path: Path, size_mib: float) -> Path:
    """A real ONNX classifier of about `size_mib` (one square hidden layer) that passes validate."""
    from tests.model_samples import slow_model

    hidden = max(8, int((size_mib * MIB / 4) ** 0.5))
    return slow_model(path, hidden=hidden, layers=1)


def _pr_of(out: str) -> str:
    return str(json.loads(out)["pr"])


def _to_dev_pr(version: str) -> str:
    """The pull request that changes dev to `version`: update's own when it re-pins dev, else
    a deploy to dev of the registered version (per-environment pins)."""
    number = _pr_of(aimodel("update", "fraud", "--version", version, "--as", "eve", "--json"))
    if "dev" in json.loads(aimodel("pr", "show", number, "--json")).get("environments", []):
        return number
    aimodel("pr", "merge", number, "--as", "eve")
    number = _pr_of(aimodel("deploy", "fraud", "--env", "dev", "--version", version, "--as", "eve", "--json"))
    aimodel("pr", "approve", number, "--as", "dev")
    return number


def _live(home: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())
    return data


def bench_merge(runs: int, size_mib: int) -> tuple[list[float], list[float], list[float]]:
    """(merge -> live, the apply alone from its record, cp of the same bytes) per round."""
    home = WORK / "merge"
    os.environ["AIMODEL_HOME"] = str(home)
    aimodel("init", *[a for p in PEOPLE for a in ("--person", p)])
    files = WORK / "files"
    model = _model(files / "big.onnx", size_mib)
    from tests.model_samples import write_csv

    write_csv(files / "tx.csv", rows=100, right=95)
    aimodel("create", "fraud", "--app", "payments", "--dataset", "tx", "--artifact", str(model), "--dataset-uri",
            str(files / "tx.csv"), "--label-column", "label", "--as", "ada")
    aimodel("pr", "merge", "1", "--as", "ada")
    first = _pr_of(aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json"))
    aimodel("pr", "merge", first, "--as", "dev")
    merge, apply, cp = [], [], []
    for k in range(1, runs + 1):
        version = f"1.0.{k}"
        number = _to_dev_pr(version)  # its checks ran when it was opened: not timed
        merge.append(_timed(lambda number=number: aimodel("pr", "merge", number, "--as", "dev")))  # type: ignore[misc]
        live = _live(home)
        if live.get("models") != {"fraud": version}:
            raise SystemExit(f"round {k}: dev runs {live.get('models')}, not fraud {version}")
        record = json.loads((home / "releases" / "dev" / f"{live['release']}.json").read_text())
        apply.append(record["finished"] - record["started"])
        copy = WORK / "copy.onnx"
        cp.append(_timed(lambda copy=copy: subprocess.run(["cp", str(model), str(copy)], check=True)))  # type: ignore[misc]
        copy.unlink()
    return merge, apply, cp


def bench_growth(counts: list[int], runs: int) -> dict[int, tuple[list[float], list[float]]]:
    """Per count: (apply of a release of that many 1 MB models with the real installer, cp of the same files)."""
    from bot.app import Context
    from bot.config import load_settings
    from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease
    from bot.deploy.reconcile import make_installer
    from tests.model_samples import write_csv

    home = WORK / "growth"
    os.environ["AIMODEL_HOME"] = str(home)
    aimodel("init", *[a for p in PEOPLE for a in ("--person", p)])
    files = WORK / "small"
    model = _model(files / "m.onnx", 1)
    write_csv(files / "tx.csv", rows=100, right=95)
    most = max(counts)
    for i in range(most):
        extra = ("--dataset-uri", str(files / "tx.csv"), "--label-column", "label") if i == 0 else ()
        number = _pr_of(aimodel("create", f"m{i:03d}", "--app", "bulk", "--dataset", "tx", "--artifact", str(model), *extra,
                                "--as", "ada", "--json"))
        aimodel("pr", "merge", number, "--as", "ada")
    out: dict[int, tuple[list[float], list[float]]] = {}
    with Context(load_settings()) as ctx:
        catalog = ctx.gitops.catalog()
        install = make_installer(ctx, catalog)
        names = sorted(catalog.models)[:most]
        for n in counts:
            applies, cps = [], []
            for r in range(runs):
                env = f"g{n}-{r}"  # a fresh environment: every model is placed
                models = {}
                for name in names[:n]:
                    m = catalog.models[name]
                    a = m.artifact
                    models[name] = ModelRelease(name, m.version, a.uri, a.sha256, a.format, a.size, "bulk", a.source)
                app = AppRelease("bulk", "1.0.0", "registry/bulk:1", tuple(sorted((name, models[name].version) for name in models)))
                plan = EnvPlan(env, catalog.commit, models, {"bulk": app})
                result = None

                def run(plan: EnvPlan = plan) -> None:
                    nonlocal result
                    result = ctx.target.apply(plan, install)

                applies.append(_timed(run))
                if result is None or not result.ok or result.apps != ["bulk"]:
                    raise SystemExit(f"the release of {n} models did not apply: {result}")
                target = WORK / "cp" / env
                target.mkdir(parents=True)
                cps.append(_timed(lambda target=target, n=n: _cp_each(files / "m.onnx", target, n)))  # type: ignore[misc]
            out[n] = (applies, cps)
    return out


def _cp_each(source: Path, target: Path, n: int) -> None:
    """What placing n model files by hand costs: a folder and a cp each, in one shell."""
    loop = 'for i in $(seq "$3"); do mkdir -p "$1/$i" && cp "$2" "$1/$i/model.onnx"; done'
    subprocess.run(["sh", "-c", loop, "sh", str(target), str(source), str(n)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=50)
    parser.add_argument("--models", default="10,100", help="release sizes for the growth figures; empty: skip")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.models.split(",") if n.strip()]
    if shutil.which("cp") is None:
        print("cp is not installed: cannot compare", file=sys.stderr)
        return 2
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ.pop("AIMODEL_FACES", None)
    try:
        merge, apply, cp = bench_merge(args.runs, args.size_mib)
        growth = bench_growth(counts, args.runs) if counts else {}
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)

    def fmt(values: list[float]) -> str:
        return f"{statistics.median(values):7.3f} s  ({', '.join(f'{x:.3f}' for x in values)})"

    print(f"releases on the local target; median of {args.runs} runs; {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(f"one {args.size_mib} MiB model:")
    print(f"  merge -> release live (aimodel pr merge)   {fmt(merge)}   goal <= 2 s")
    print(f"  of which the apply (its release record)    {fmt(apply)}")
    print(f"  cp of the same bytes                        {fmt(cp)}")
    for n, (applies, cps) in growth.items():
        print(f"a release of {n} models of 1 MiB (apply with the real installer):")
        print(f"  apply                                      {fmt(applies)}   {statistics.median(applies) / n * 1000:.1f} ms per model")
        print(f"  cp of the same files                        {fmt(cps)}")
    print(f"command: python benchmarks/bench_release.py --runs {args.runs} --size-mib {args.size_mib} --models {args.models}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
