"""`aimodel history` after real releases: three merged pull requests release `payments` to
dev through the real CLI, real git and the local forge; history lists them with their pull
requests and approvers, newest first, and `--at` between two releases answers the earlier."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ModelFiles, Run

pytestmark = pytest.mark.timeout(240)


def _release_to_dev(aimodel: Run, artifact: Path, author: str, approver: str) -> int:
    """A new version of fraud running in dev: `update` (and, when the update only registers the
    version, `deploy --env dev`), approved by someone else, merged. Returns the PR that released it."""
    number = aimodel("update", "fraud", "--artifact", str(artifact), "--as", author, "--json").json["pr"]
    if not aimodel("pr", "show", str(number), "--json").json["environments"]:
        aimodel("pr", "merge", str(number), "--as", author)
        number = aimodel("deploy", "fraud", "--env", "dev", "--as", author, "--json").json["pr"]
    aimodel("pr", "approve", str(number), "--as", approver)
    aimodel("pr", "merge", str(number), "--as", author)
    return int(number)


def test_three_releases_read_back_newest_first_with_prs_and_approvers(aimodel: Run, created: str, model_files: ModelFiles, tmp_path: Path) -> None:
    from tests.model_samples import linear_classifier

    first = int(aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "approve", str(first), "--as", "alan")
    aimodel("pr", "merge", str(first), "--as", "eve")
    second = _release_to_dev(aimodel, model_files.onnx_v2, "eve", "dev")
    third = _release_to_dev(aimodel, linear_classifier(tmp_path / "files" / "fraud-v3.onnx", output="labels"), "dev", "alan")

    records = aimodel("history", "payments", "--env", "dev", "--json").json
    assert [r["id"] for r in records] == ["dev-payments-3", "dev-payments-2", "dev-payments-1"]
    assert [r["pr"] for r in records] == [third, second, first]
    assert [r["approvers"] for r in records] == [["alan"], ["dev"], ["alan"]]
    assert [r["result"] for r in records] == ["ok", "ok", "ok"]
    assert records[0]["author"] == "dev" and records[2]["author"] == "eve"
    assert len({r["models"]["fraud"]["sha256"] for r in records}) == 3  # three different model files

    out = aimodel("history", "payments", "--env", "dev").out
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[4:]]  # heading, blank, "dev:", header
    assert [(r[0], r[4], r[7]) for r in rows] == [
        ("dev-payments-3", f"#{third}", "alan"), ("dev-payments-2", f"#{second}", "dev"), ("dev-payments-1", f"#{first}", "alan"),
    ]
    assert rows[0][3] == f"fraud {records[0]['models']['fraud']['version']} @{records[0]['models']['fraud']['sha256'][:8]}"

    between = (records[1]["finished"] + records[0]["finished"]) / 2
    at = datetime.fromtimestamp(between, UTC).isoformat()
    then = aimodel("history", "payments", "--env", "dev", "--at", at, "--json").json
    assert [r["id"] for r in then] == ["dev-payments-2"]
    assert aimodel("history", "fraud", "--at", at).out.count("dev-payments-2") == 1

    bad = aimodel("history", "payments", "--at", "last tuesday", expect=2)
    assert "2026-11-30T12:00Z" in bad.err and bad.out == ""
