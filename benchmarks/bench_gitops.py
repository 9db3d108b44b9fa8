"""Command -> pull request open, and `aimodel list`, on a manifest repository of 10,000 models.

    python benchmarks/bench_gitops.py [--models 10000] [--runs 15]

Compares, in the same run, against a plain `git commit` + `git push` of the same change in
a clone of the same repository (pushing to its own copy of the origin); the two take turns,
so a busy moment of a shared machine weighs on both. Writes everything under benchmarks/.work/gitops/.
Goals (issue 2): PR open median <= 1.0 s and <= 2x the plain git commit + push;
`aimodel list` <= 300 ms.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_settings  # noqa: E402
from bot.fsutil import file_lock  # noqa: E402
from bot.init_repo import init_home  # noqa: E402
from bot.manifests import AIModel, Application, Artifact, Dataset, dump_manifest, manifest_path  # noqa: E402
from bot.sla import parse_sla  # noqa: E402


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def build(work: Path, models: int) -> Path:
    home = work / "home"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    artifact = work / "model.bin"
    artifact.write_bytes(os.urandom(4096))
    import hashlib

    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    settings = load_settings({"AIMODEL_HOME": str(home)})
    init_home(settings, [("ada", "data-scientist"), ("eve", "data-engineer"), ("dev", "devops-engineer")])
    seed = work / "seed"
    sh("git", "clone", "-q", str(home / "repo.git"), str(seed))
    apps = max(1, models // 10)
    for a in range(apps):
        used = tuple(f"model-{m:05d}" for m in range(a, models, apps))
        dev = {name: "1.0.0" for name in used if int(name[-5:]) % 3 == 0}  # a third of the models run in dev
        app = Application(name=f"app-{a:04d}", version="1.0.0", owner="ada", models=used, environments={"dev": dev} if dev else {})
        path = seed / manifest_path("Application", app.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_manifest(app))
    ds = Dataset(name="transactions", uri=(work / "data.csv").as_uri(), label_column="label")
    (seed / manifest_path("Dataset", ds.name)).write_text(dump_manifest(ds))
    sla = parse_sla("accuracy>=0.9")
    for m in range(models):
        model = AIModel(
            name=f"model-{m:05d}", version="1.0.0", owner="ada", application=f"app-{m % apps:04d}", dataset="transactions",
            artifact=Artifact(artifact.as_uri(), digest, "other", 4096), sla=sla,
        )
        path = seed / manifest_path("AIModel", model.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_manifest(model))
    sh("git", "add", "-A", cwd=seed)
    sh("git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", f"{models} models", cwd=seed)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=seed)
    return home


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for i in range(runs):
        t = time.perf_counter()
        fn(i)  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    work = ROOT / "benchmarks" / ".work" / "gitops"
    t0 = time.perf_counter()
    home = build(work, args.models)
    print(f"built a manifest repository of {args.models} models in {time.perf_counter() - t0:.1f} s")
    env = {**os.environ, "AIMODEL_HOME": str(home), "AIMODEL_USER": "eve", "PYTHONPATH": str(ROOT)}
    # An installed package has its bytecode compiled (pip does it); so does this run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bot"), str(ROOT / "handlers")], env=env, check=True)
    cli = [sys.executable, "-m", "bot.cli"]
    # `python -m` puts the working folder first on the path: run from ROOT, so this tree's
    # code is measured (the `aimodel` script would import the editable install's), and say so.
    runs = sh(sys.executable, "-c", "import bot; print(bot.__file__)", cwd=ROOT, env=env).strip()
    print(f"measuring {' '.join(cli[1:])} from {Path(runs).parent.parent}")

    # Warm the manifest cache once, as any long-running home has it.
    subprocess.run([*cli, "list", "--json"], env=env, cwd=ROOT, check=True, capture_output=True)

    list_times = timed(lambda i: subprocess.run([*cli, "list"], env=env, cwd=ROOT, check=True, capture_output=True), args.runs)
    list_json = timed(lambda i: subprocess.run([*cli, "list", "--json"], env=env, cwd=ROOT, check=True, capture_output=True), args.runs)

    # Plain git pushes to its own copy of the origin: its branches must not become fetches
    # the CLI makes in between (the runs take turns, below).
    sh("git", "clone", "-q", "--bare", str(home / "repo.git"), str(work / "plain.git"))
    clone = work / "clone"
    sh("git", "clone", "-q", str(work / "plain.git"), str(clone))

    def plain_git(i: int) -> None:
        name = f"model-{(i * 53 + 11) % args.models:05d}"
        path = clone / "models" / name / "model.yaml"
        path.write_text(path.read_text().replace("accuracy: '>=0.9'", f"accuracy: '>=0.{60 + i % 10}'"))
        sh("git", "add", str(path.relative_to(clone)), cwd=clone)
        sh("git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", f"change {name}", cwd=clone)
        sh("git", "push", "-q", "origin", f"HEAD:refs/heads/plain-{i}", cwd=clone)

    # A worker "is running" (this process holds its lock), as in the server deployment:
    # the CLI returns once the pull request is open and leaves the checks to the worker.
    with file_lock(home / "worker.lock"):
        def propose(i: int) -> None:
            name = f"model-{(args.models // 10 + i) % args.models:05d}"
            subprocess.run([*cli, "update", name, "--SLA", f"accuracy>=0.{80 + i % 10}", "--json"], env=env, cwd=ROOT, check=True, capture_output=True)

        # The CLI and plain git take turns, so a busy moment of a shared machine weighs on both.
        pr_times: list[float] = []
        git_times: list[float] = []
        for i in range(args.runs):
            pr_times += timed(lambda _, i=i: propose(i), 1)
            git_times += timed(lambda _, i=i: plain_git(i), 1)

        from bot.app import Context
        from bot.commands import Update
        from bot.gitops import Actor

        settings = load_settings({"AIMODEL_HOME": str(home)})
        with Context(settings) as ctx:
            def in_process(i: int) -> None:
                name = f"model-{(args.models // 2 + i) % args.models:05d}"
                ctx.gitops.propose(Update(name, sla=parse_sla(f"accuracy>=0.{70 + i % 10}")), Actor("eve", "cli"))

            warm = timed(in_process, args.runs)

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    def p95(xs: list[float]) -> float:
        return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)] * 1000

    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, git {sh('git', '--version').split()[-1]}")
    print(f"{'measurement':58} {'median ms':>10} {'p95 ms':>8}")
    rows = [
        ("aimodel update -> PR open (CLI, Python start-up included)", pr_times),
        ("gitops.propose -> PR open (warm process: server, Slack)", warm),
        ("plain git add + commit + push of the same change", git_times),
        ("aimodel list (table, start-up included)", list_times),
        ("aimodel list --json (start-up included)", list_json),
    ]
    for label, xs in rows:
        print(f"{label:58} {med(xs):10.0f} {p95(xs):8.0f}")
    print()
    ratio = med(pr_times) / med(git_times)
    print(f"PR open / plain git: {ratio:.2f}x (goal <= 2x); warm: {med(warm) / med(git_times):.2f}x")
    print(f"goals: PR open median <= 1000 ms: {'met' if med(pr_times) <= 1000 else 'MISSED'}; "
          f"<= 2x git: {'met' if ratio <= 2 else 'MISSED'}; list <= 300 ms: {'met' if med(list_times) <= 300 else 'MISSED'}")
    print(f"reproduce: python benchmarks/bench_gitops.py --models {args.models} --runs {args.runs}")


if __name__ == "__main__":
    main()
