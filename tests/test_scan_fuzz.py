"""A short differential fuzz run: mutated pickles, zips and tars go to the scanner and, when it
passes one, to pickle.load, joblib.load, np.load and torch.load in a sandboxed process.
(benchmarks/fuzz_scan.py runs the same for longer.)"""

from __future__ import annotations

from pathlib import Path

from tests import scan_samples as s


def test_no_file_a_loader_executes_is_passed_by_the_scanner(tmp_path: Path) -> None:
    mutants, clean, escapes = s.differential_fuzz(tmp_path / "fuzz", count=300, seed=9)
    assert mutants == 300
    assert clean > 0  # the loaders did see files (the benign seeds' mutants)
    assert escapes == [], escapes
