"""The KServe target in gitops mode: a release -> its rendered objects committed and pushed.

    python benchmarks/bench_kserve.py [--models 200] [--runs 11]

Per run, a release in which one model of `--models` moves to a new version (its
InferenceService and its application's ConfigMap change), then the same release again (the
periodic reconcile: it must commit nothing). Compared in the same run, taking turns, with what
a person would do with the same rendered files (made before the clock starts): write them
into a clone's deploy folder, `git add -A`, `git commit`, `git push` (to its own copy of the
origin). The bytes' gate is not
timed (the installer accepts; the changed model's file is placed in the store's serving folder,
as a deploy does): the gate is the local target's, measured by bench_custody/bench_sign.
Writes under benchmarks/.work/kserve/ and deletes it when done.
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

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "kserve"
sys.path.insert(0, str(ROOT))

from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease  # noqa: E402
from bot.deploy.targets.kserve import KServeTarget  # noqa: E402
from bot.deploy.targets.kserve_render import files, render  # noqa: E402
from bot.gitrepo import Workspace  # noqa: E402
from bot.manifests import KServeSettings  # noqa: E402

STORE = "s3://models/aimodel"  # the store as the cluster reads it; the bot writes it under WORK
SETTINGS = KServeSettings(namespace="models", path="deploy/prod/", runtime="kserve-tritonserver", max_replicas=3, storage_uri=STORE)


def sh(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def plan(models: int, upto: int) -> EnvPlan:
    """`models` models, ten per application; those numbered up to `upto` moved to 2.0, so
    release n changes model n alone."""
    p = EnvPlan("prod", f"{upto + 2:040x}")
    for i in range(models):
        v = "2.0" if i <= upto else "1.0"
        digest = f"{i:032x}{int(i <= upto):032x}"
        p.models[f"m{i:04d}"] = ModelRelease(f"m{i:04d}", v, f"store:sha256/{digest}", digest, "onnx", 1, f"app{i // 10:03d}")
    for a in range((models + 9) // 10):
        pins = tuple((f"m{i:04d}", p.models[f"m{i:04d}"].version) for i in range(a * 10, min(models, a * 10 + 10)))
        p.apps[f"app{a:03d}"] = AppRelease(f"app{a:03d}", "1.0", f"registry/app{a:03d}:1.0", pins)
    return p


def accept(release: ModelRelease, folder: Path) -> None:
    from bot.checks.fetch import stored_name

    (folder / stored_name(release.uri, release.source)).write_bytes(b"onnx")


def timed(fn: Callable[[int], object], i: int) -> float:
    start = time.perf_counter()
    fn(i)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    args.runs = min(args.runs, args.models)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    seed = WORK / "seed"
    sh("git", "init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("manifests\n")
    sh("git", "add", "-A", cwd=seed)
    sh("git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "seed", cwd=seed)
    for name in ("origin.git", "plain.git"):
        sh("git", "clone", "-q", "--bare", str(seed), str(WORK / name))
    sh("git", "clone", "-q", str(WORK / "origin.git"), str(WORK / "work"))
    sh("git", "clone", "-q", str(WORK / "plain.git"), str(WORK / "clone"))
    ws = Workspace(WORK / "work")
    target = KServeTarget(lambda: {"prod": SETTINGS}, storage=str(WORK / "artifacts"), workspace=ws)
    assert target.apply(plan(args.models, -1), accept).ok  # the first release: every file
    clone = WORK / "clone"

    # the person's files are rendered before the clock starts: only the git part is timed
    rendered = {i: files(render(plan(args.models, i), SETTINGS, storage=STORE).objects) for i in range(-1, args.runs)}

    def plain_git(i: int) -> None:
        folder = clone / "deploy" / "prod"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in rendered[i].items():
            (folder / name).write_bytes(data)
        sh("git", "add", "-A", cwd=clone)
        sh("git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", f"release {i}", cwd=clone)
        sh("git", "push", "-q", "origin", "HEAD:main", cwd=clone)

    def release(i: int) -> None:
        result = target.apply(plan(args.models, i), accept)
        assert result.ok and len(result.applied) == 1

    def again(i: int) -> None:
        result = target.apply(plan(args.models, i), accept)
        assert result.ok and not result.applied and not result.apps

    plain_git(-1)  # the plain clone starts from the full folder too
    times: dict[str, list[float]] = {"release": [], "unchanged": [], "plain": []}
    for i in range(args.runs):
        times["release"].append(timed(release, i))
        times["unchanged"].append(timed(again, i))
        times["plain"].append(timed(plain_git, i))
    ws.close()

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    git_version = sh("git", "--version").strip()
    print(f"python benchmarks/bench_kserve.py --models {args.models} --runs {args.runs}")
    print(f"Python {platform.python_version()}, {git_version}, load {os.getloadavg()[0]:.1f}")
    print(f"{args.models} models, {len(plan(args.models, 0).apps)} applications; medians of {args.runs}:")
    print(f"  release (one model changes), render + commit + push: {med['release']:.0f} ms")
    print(f"  same release again (reconcile, nothing committed):   {med['unchanged']:.0f} ms")
    print(f"  plain git: write the folder, add, commit, push:      {med['plain']:.0f} ms")
    print(f"  ratio release / plain git: {med['release'] / med['plain']:.2f}x")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
