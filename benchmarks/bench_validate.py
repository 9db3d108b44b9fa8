"""How long does validating a model against its SLA take on a large data set?

Builds a CSV of `--rows` rows (default 3,000,000) with 4 float features and a class label,
and a real ONNX classifier (probabilities over 3 classes), then times, each in its own
process so the peak memory (max RSS) is its own:

  aimodel        measure_model + evaluate_sla: every row through onnxruntime in chunks
                 (accuracy, precision/recall/F1 per class and macro, ROC AUC), latency timed on
                 a sample; pyarrow's CSV reader
  aimodel-numpy  the same with pyarrow hidden (a default install): numpy's number parser
  pandas         what a user would write: pandas.read_csv, onnxruntime on all rows in one
                 batch, scikit-learn.metrics for the same figures (no latency)
  loadtxt        the same with numpy.loadtxt instead of pandas

    python benchmarks/bench_validate.py [--rows 3000000] [--repeat 3] [--only aimodel,pandas]

Needs the test extra (onnx, onnxruntime, numpy, pyarrow, scikit-learn, pandas). Not part of
the test run; the numbers depend on the machine and its load, so compare runs of one session.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLA_TEXT = "accuracy>=0.85,f1_macro>=0.85,roc_auc>=0.9,latency_p95_ms<=50"
MODES = ("aimodel", "aimodel-numpy", "pandas", "loadtxt")


def make_data(path: Path, rows: int) -> None:
    """Rows of class k carry a 2..3 value in feature k (others 0..1); 10% labelled wrong."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tests.model_samples import class_feature

    rng = np.random.default_rng(42)
    k = rng.integers(0, 3, rows)
    x = np.round(rng.random((rows, 4)), 4)
    reads = np.array([class_feature(c, 4, 3) for c in range(3)])  # linear_classifier's weights
    x[np.arange(rows), reads[k]] += 2.0
    wrong = rng.random(rows) < 0.1
    label = np.where(wrong, (k + 1) % 3, k)
    table = pa.table(
        {"f0": x[:, 0], "f1": x[:, 1], "label": label, "f2": x[:, 2], "f3": x[:, 3]}
    )
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(quoting_style="none"))


def child(mode: str, model: Path, data: Path) -> dict[str, object]:
    start = time.perf_counter()
    if mode.startswith("aimodel"):
        if mode == "aimodel-numpy":
            sys.modules["pyarrow.csv"] = None  # type: ignore[assignment]
        from bot.checks.measure import measure_model
        from bot.checks.sla_report import evaluate_sla
        from bot.sla import parse_sla

        m = measure_model(model, data, "label")
        report = evaluate_sla(parse_sla(SLA_TEXT), m)
        figures = {k: m.metrics[k] for k in ("accuracy", "f1_macro", "roc_auc")}
        rows, summary = m.rows, report.summary()
    else:
        import numpy as np
        import onnxruntime as ort
        from sklearn import metrics as skm

        if mode == "pandas":
            import pandas as pd

            frame = pd.read_csv(data)
            x = frame[["f0", "f1", "f2", "f3"]].to_numpy(np.float32)
            y = frame["label"].to_numpy()
        else:
            table = np.loadtxt(data, delimiter=",", skiprows=1)
            x = table[:, [0, 1, 3, 4]].astype(np.float32)
            y = table[:, 2].astype(np.int64)
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        (proba,) = session.run(None, {session.get_inputs()[0].name: x})
        pred = proba.argmax(axis=1)
        figures = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "f1_macro": float(skm.f1_score(y, pred, average="macro")),
            "roc_auc": float(skm.roc_auc_score(y, proba, multi_class="ovr")),
        }
        skm.precision_recall_fscore_support(y, pred, zero_division=0)
        rows, summary = int(y.shape[0]), ""
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "wall_s": wall, "peak_mib": peak_mib, "rows": rows,
            "figures": figures, "summary": summary}


def run_child(mode: str, model: Path, data: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--model", str(model), "--data", str(data)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.model), Path(args.data))))
        return 0
    from tests.model_samples import linear_classifier

    modes = [m for m in args.only.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = linear_classifier(folder / "model.onnx", 4, 3, output="probabilities")
        data = folder / "data.csv"
        start = time.perf_counter()
        make_data(data, args.rows)
        made = time.perf_counter() - start
        size_mb = data.stat().st_size / 1e6
        results: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
        for _ in range(args.repeat):  # interleaved, so load changes hit every mode alike
            for mode in modes:
                results[mode].append(run_child(mode, model, data))
    summary = []
    for mode, runs in results.items():
        walls = [float(str(r["wall_s"])) for r in runs]
        peaks = [float(str(r["peak_mib"])) for r in runs]
        summary.append({
            "mode": mode, "rows": runs[0]["rows"], "wall_s_median": statistics.median(walls),
            "wall_s_min": min(walls), "peak_mib_max": max(peaks), "figures": runs[0]["figures"],
            "sla": runs[0]["summary"],
        })
    command = "python benchmarks/bench_validate.py " + " ".join(sys.argv[1:])
    if args.json:
        print(json.dumps({"command": command, "csv_mb": size_mb, "results": summary}, indent=2))
        return 0
    print(f"{args.rows} rows, 4 features + label, {size_mb:.0f} MB CSV (written in {made:.1f} s); "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    base = {r["mode"]: r["wall_s_median"] for r in summary}
    for r in summary:
        figures = r["figures"]
        assert isinstance(figures, dict)
        ratio = ""
        if "pandas" in base and r["mode"] != "pandas":
            ratio = f"  ({float(str(r['wall_s_median'])) / float(str(base['pandas'])):.2f}x pandas)"
        print(
            f"{r['mode']:<14} wall median {r['wall_s_median']:.2f} s (min {r['wall_s_min']:.2f} s), "
            f"peak RSS {r['peak_mib_max']:.0f} MiB{ratio}\n"
            f"{'':<14} accuracy {figures['accuracy']:.6f}  f1_macro {figures['f1_macro']:.6f}  "
            f"roc_auc {figures['roc_auc']:.6f}  {r['sla']}"
        )
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
