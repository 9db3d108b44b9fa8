"""Is the command grammar linear in its input? parse_text and the grammar behind it, at
1 KB, 4 KB and 3 MB of adversarial text, against shlex.split (what the grammar used before).

    python benchmarks/bench_grammar.py [--repeat 5] [--json]

Shapes: one long word, many short words, many options (argparse re-scans the rest of the
line after each option), a long quoted string, and a long unknown verb ("did you mean").
`parse_text` refuses text over commands.MAX_TEXT before reading it; the rows marked
"grammar" feed the same text to split_words + parse directly, to show the reading itself
is linear beyond the cap (the CLI's argv has no such cap). shlex.split runs only up to
1 MB: at 3 MB its quadratic copying takes minutes.

Not part of the test run. The numbers depend on the machine; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import commands as c  # noqa: E402

SIZES = {"1 KB": 1_000, "4 KB": 4_000, "1 MB": 1_000_000, "3 MB": 3_000_000}

SHAPES: dict[str, Callable[[int], str]] = {
    "one long word": lambda n: "list --app " + "a" * (n - 11),
    "many words": lambda n: "scan " + "m " * ((n - 5) // 2),
    "many options": lambda n: "list " + "--json " * ((n - 5) // 7),
    "long quoted": lambda n: 'create fraud -m "' + "x" * (n - 18) + '"',
    "long unknown verb": lambda n: "creat" + "e" * (n - 5),
}


def grammar(text: str) -> object:
    """What parse_text does after its length check."""
    try:
        return c.parse(c.split_words(text), surface="slack")
    except ValueError as exc:
        return exc


def timed(fn: Callable[[str], object], text: str, repeat: int) -> float:
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(text)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for shape, make in SHAPES.items():
        for label, n in SIZES.items():
            text = make(n)
            row: dict[str, object] = {"shape": shape, "size": label, "chars": len(text)}
            row["parse_text_ms"] = round(timed(c.parse_text, text, args.repeat) * 1000, 3)
            row["grammar_ms"] = round(timed(grammar, text, args.repeat) * 1000, 3)
            row["shlex_split_ms"] = round(timed(shlex.split, text, 1) * 1000, 3) if n <= 1_000_000 else None
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'shape':<18} {'size':>5} {'parse_text ms':>14} {'grammar ms':>11} {'us/KB':>7} {'shlex.split ms':>15}")
    for row in rows:
        per_kb = float(row["grammar_ms"]) * 1000 / (int(row["chars"]) / 1000)  # type: ignore[arg-type]
        shl = "-" if row["shlex_split_ms"] is None else f"{row['shlex_split_ms']:.3f}"
        print(f"{row['shape']:<18} {row['size']:>5} {row['parse_text_ms']:>14.3f} {row['grammar_ms']:>11.3f} {per_kb:>7.1f} {shl:>15}")
    print(f"\nparse_text caps the text at {c.MAX_TEXT:,} characters and {c.MAX_OPTIONS} options.")
    print(f"reproduce: python benchmarks/bench_grammar.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
