"""How long does validating against the SLA take? (measure_model + evaluate_sla)

Builds tiny real ONNX models and CSV data sets with fixed seeds (needs the test extra:
onnx, onnxruntime, numpy), then times measure_model end to end: reading the data set,
loading the model, per-row latency over up to LATENCY_ROWS rows, and the batched run.

    python benchmarks/bench_validate.py [--rows 10000] [--repeat 3] [--json]

Not part of the test run. The numbers depend on the machine; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.checks.measure import measure_model  # noqa: E402
from bot.checks.sla_report import evaluate_sla  # noqa: E402
from bot.sla import parse_sla  # noqa: E402
from tests import model_samples as samples  # noqa: E402

SLA = parse_sla("accuracy>=0.9,latency_p95_ms<=50,throughput_rps>=100,size_mb<=100")


def run(rows: int, repeat: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "data.csv"
        samples.write_csv(data, rows=rows, right=rows * 9 // 10, features=16, classes=4)
        models = {
            "linear-16x4": samples.linear_classifier(folder / "linear.onnx", 16, 4),
            "matmul-chain-256x24": samples.slow_model(
                folder / "slow.onnx", 16, 4, hidden=256, layers=24
            ),
        }
        for name, model in models.items():
            walls: list[float] = []
            last = None
            for _ in range(repeat):
                start = time.perf_counter()
                last = measure_model(model, data, "label", max_rows=rows)
                walls.append(time.perf_counter() - start)
            assert last is not None
            report = evaluate_sla(SLA, last)
            results.append(
                {
                    "model": name,
                    "rows": last.rows,
                    "wall_s_median": round(statistics.median(walls), 4),
                    "wall_s_min": round(min(walls), 4),
                    "sla": report.summary(),
                    "metrics": {k: round(v, 6) for k, v in last.metrics.items()},
                }
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = run(args.rows, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        metrics = r["metrics"]
        assert isinstance(metrics, dict)
        print(
            f"{r['model']:<22} rows={r['rows']:<6} wall median {r['wall_s_median']:.3f}s "
            f"(min {r['wall_s_min']:.3f}s)  p50 {metrics['latency_p50_ms']:.4f} ms  "
            f"p95 {metrics['latency_p95_ms']:.4f} ms  {metrics['throughput_rps']:.0f} rows/s"
        )
        print(f"{'':<22} {r['sla']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
