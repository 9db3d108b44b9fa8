"""Benchmark serving: deployed ONNX models answer through MLServer (bot/serving).

Goals (issue 12), in one run:
- merge -> model answering on the local target for a 50 MB ONNX model: the median time from
  `aimodel pr merge` of a deploy of a newly registered version to dev to the first V2
  inference answered by the new version; goal <= 3 s. Compared with what a person would
  otherwise do: start a fresh MLServer on a repository holding the model (`mlserver start`)
  and wait until that version answers.
- inference p50/p99 through MLServer (V2 REST, JSON, one keep-alive connection) vs onnxruntime
  in-process, on the same model and the same batch: the overhead of the serving hop.

Reproduce from the repository root (needs the serve extra):

    python benchmarks/bench_serving.py          # --runs N (default 5), --requests N (default 300), --batch N (default 8)

The model is an embedding-bag classifier: a 100,000 x 128 float32 table (51 MB) that each row's
16 token ids index, averaged, then a 128 x 10 layer. Its size is in the weights and its work
per request is small, so the inference figures show the serving hop rather than the model.
Everything is written under benchmarks/.work/serving/ and deleted at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "serving"
sys.path.insert(0, str(REPO))

VOCAB, DIM, TOKENS, CLASSES = 100_000, 128, 16, 10
PEOPLE = ("ada=data-scientist", "eve=data-engineer", "dev=devops-engineer")


def embedding_classifier(path: Path, seed: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    table = rng.standard_normal((VOCAB, DIM), dtype=np.float32)
    dense = rng.standard_normal((DIM, CLASSES), dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["vectors"], axis=0),
            helper.make_node("ReduceMean", ["vectors"], ["bag"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["bag", "dense"], ["scores"]),
        ],
        "embedding_bag",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", TOKENS])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", CLASSES])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(dense, "dense")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def aimodel(*argv: str) -> dict[str, Any] | None:
    """The real CLI, in this process (as the tests drive it); its JSON answer when --json."""
    from bot.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise SystemExit(f"aimodel {' '.join(argv)} exited {code}:\n{out.getvalue()}{err.getvalue()}")
    answer: dict[str, Any] | None = json.loads(out.getvalue()) if "--json" in argv else None
    return answer


def call(base: tuple[str, int], method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*base, timeout=60)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def request_body(ids: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.flatten().tolist()}]}


def wait_answering(base: tuple[str, int], version: str, ids: np.ndarray, deadline: float) -> None:
    body = request_body(ids)
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, raw = call(base, "POST", "/v2/models/fraud/infer", body)
            if status == 200 and json.loads(raw).get("model_version") == version:
                return
        time.sleep(0.01)
    raise SystemExit(f"version {version} did not answer in time")


def cold_mlserver(model: Path, ids: np.ndarray, port: int) -> float:
    """What a person would do without the bot: a repository with the model, `mlserver start`,
    wait until it answers (MLServer's start-up load; parallel_workers 0 as the bot runs it)."""
    from bot.config import ServingSettings
    from bot.serving.layout import write_settings
    from bot.serving.supervisor import mlserver_command, mlserver_env

    repo = WORK / "cold-repo"
    shutil.rmtree(repo, ignore_errors=True)
    write_settings(repo, "fraud", "cold", "onnx", model.parent)
    env = mlserver_env(dict(os.environ), ServingSettings(), port)
    env.update(MLSERVER_LOAD_MODELS_AT_STARTUP="true", PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen(mlserver_command(repo), cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(("127.0.0.1", port), "cold", ids, time.monotonic() + 120)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def timed_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from bot.serving import control, servers
    from bot.serving.supervisor import free_port

    if not control.installed():
        print("needs the serve extra: pip install 'aimodel-gitops[serve]'", file=sys.stderr)
        return 2
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    home = WORK / "home"
    os.environ.update(AIMODEL_HOME=str(home), PYTHONPATH=str(REPO))
    for name in ("AIMODEL_USER", "AIMODEL_REPO", "REDIS_URL", "AIMODEL_SERVING"):
        os.environ.pop(name, None)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(args.batch, TOKENS), dtype=np.int64)
    models = []
    for i in range(args.runs + 1):  # a new version per update: different bytes each time
        (WORK / "files" / f"v{i}").mkdir(parents=True)
        models.append(embedding_classifier(WORK / "files" / f"v{i}" / "model.onnx", seed=i))
    size_mb = models[0].stat().st_size / 1e6

    aimodel("init", *[a for p in PEOPLE for a in ("--person", p)])
    supervisor = subprocess.Popen(control.supervisor_command(), env=dict(os.environ), stderr=subprocess.DEVNULL)
    merge_to_answer: list[float] = []
    try:
        while not servers.supervisor_running(home):
            time.sleep(0.05)
        data = WORK / "files" / "queries.csv"  # registered with the model; no SLA, so never measured here
        data.write_text("t0,label\n1,0\n2,1\n")
        aimodel("create", "fraud", "--app", "search", "--dataset", "queries", "--artifact", str(models[0]),
                "--dataset-uri", str(data), "--label-column", "label", "--as", "ada", "--json")
        aimodel("pr", "merge", "1", "--as", "ada")
        number = aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json")["pr"]  # type: ignore[index]
        aimodel("pr", "merge", str(number), "--as", "dev")
        record = servers.read(home, "dev")
        assert record is not None
        base = (record.host, record.port)
        for i, model in enumerate(models[1:], start=1):
            version = f"1.0.{i}"
            number = aimodel("update", "fraud", "--artifact", str(model), "--version", version, "--as", "eve", "--json")["pr"]  # type: ignore[index]
            aimodel("pr", "merge", str(number), "--as", "eve")  # registered: runs nowhere yet
            number = aimodel("deploy", "fraud", "--env", "dev", "--version", version, "--as", "dev", "--json")["pr"]  # type: ignore[index]
            start = time.perf_counter()
            aimodel("pr", "merge", str(number), "--as", "dev")
            wait_answering(base, version, ids, time.monotonic() + 60)
            merge_to_answer.append(time.perf_counter() - start)

        # inference: the same model, batch and input through MLServer and in-process
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the runtime inside MLServer
        session = ort.InferenceSession(str(models[-1]), options, providers=["CPUExecutionProvider"])
        direct = session.run(["scores"], {"ids": ids})[0]
        body = json.dumps(request_body(ids))
        conn = http.client.HTTPConnection(*base, timeout=60)
        path = f"/v2/models/fraud/versions/1.0.{args.runs}/infer"

        def served() -> None:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise SystemExit(f"inference failed: {answer}")

        _, raw = call(base, "POST", path, json.loads(body))
        out = json.loads(raw)["outputs"][0]
        same = np.array_equal(np.array(out["data"], dtype=np.float32).reshape(out["shape"]), direct)
        for fn in (served, lambda: session.run(["scores"], {"ids": ids})):
            timed_calls(fn, 20)  # warm-up
        through_mlserver, in_process = [], []
        for _ in range(args.requests // 50):  # taking turns, so load from other processes spreads over both
            through_mlserver += timed_calls(served, 50)
            in_process += timed_calls(lambda: session.run(["scores"], {"ids": ids}), 50)
        conn.close()
        rss = Path(f"/proc/{record.pid}/status").read_text().split("VmRSS:")[1].split()[0]
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=60)
    cold = [cold_mlserver(models[-1], ids, free_port("127.0.0.1")) for _ in range(3)]

    ms = 1000.0
    m50, m99 = percentiles(through_mlserver)
    d50, d99 = percentiles(in_process)
    print(f"bench_serving: {platform.python_version()}, MLServer {_version('mlserver')}, onnxruntime {ort.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(f"model: embedding-bag classifier, {size_mb:.1f} MB ONNX; batch {args.batch} x {TOKENS} token ids")
    print(f"merge -> answering (local target, MLServer repository load): median {statistics.median(merge_to_answer):.2f} s "
          f"over {len(merge_to_answer)} updates (min {min(merge_to_answer):.2f}, max {max(merge_to_answer):.2f}); goal <= 3 s")
    print(f"  vs a fresh `mlserver start` with the model until it answers: median {statistics.median(cold):.2f} s over {len(cold)}")
    print(f"inference over {len(through_mlserver)} requests: MLServer (V2 REST/JSON, keep-alive) p50 {m50 * ms:.2f} ms p99 {m99 * ms:.2f} ms; "
          f"onnxruntime in-process p50 {d50 * ms:.3f} ms p99 {d99 * ms:.3f} ms; serving hop +{(m50 - d50) * ms:.2f} ms at p50")
    print(f"same predictions through MLServer as in-process: {same}; MLServer RSS {int(rss) / 1024:.0f} MB")
    print("command: python benchmarks/bench_serving.py " + " ".join(sys.argv[1:]))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    raise SystemExit(main())
