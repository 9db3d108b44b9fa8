"""The trust checks on real pull requests: a malicious model is blocked (and never run),
an SLA is measured, not declared, and a team can extend the scan allow-list by config."""

from __future__ import annotations

import pickle
from pathlib import Path

import yaml

from bot.app import Context
from bot.config import load_settings
from tests.conftest import ModelFiles, Run
from tests.model_samples import linear_classifier, write_csv
from tests.scan_samples import evil_pickle, global_pickle


def _create(aimodel: Run, artifact: Path, data: Path, sla: str = "", name: str = "fraud", expect: int = 0) -> int:
    args = ["create", name, "--app", "payments", "--dataset", "transactions", "--artifact", str(artifact),
            "--dataset-uri", str(data), "--label-column", "label", "--as", "ada", "--json"]
    if sla:
        args += ["--SLA", sla]
    number: int = aimodel(*args, expect=expect).json["pr"]
    return number


def _checks(aimodel: Run, number: int) -> dict[str, dict[str, str]]:
    checks: dict[str, dict[str, str]] = aimodel("pr", "show", str(number), "--json").json["checks"]
    return checks


def test_a_malicious_pickle_is_blocked_and_never_executed(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(evil_pickle(marker))
    number = _create(aimodel, artifact, model_files.data)
    checks = _checks(aimodel, number)
    assert checks["scan"]["state"] == "failure"
    assert "posix.system" in checks["scan"]["summary"] or "os.system" in checks["scan"]["summary"]
    assert "at byte" in checks["scan"]["summary"]
    assert checks["sign"]["state"] == "skipped"
    assert not marker.exists()
    refused = aimodel("pr", "merge", str(number), "--as", "ada", expect=1)
    assert "check scan failed" in refused.err
    scanned = aimodel("scan", str(artifact), "--json", expect=1).json
    assert not marker.exists()
    assert scanned["ok"] is False and scanned["files"][0]["findings"][0]["severity"] == "critical"


def test_the_sla_is_measured_not_declared(aimodel: Run, home: Path, tmp_path: Path) -> None:
    model = linear_classifier(tmp_path / "weak.onnx")
    data = tmp_path / "tx.csv"
    write_csv(data, rows=100, right=82)
    number = _create(aimodel, model, data, sla="accuracy>=0.9,latency_p95_ms<=1000")
    validate = _checks(aimodel, number)["validate"]
    assert validate["state"] == "failure"
    assert "accuracy 0.82 < 0.9" in validate["summary"]
    assert "| `accuracy` | `>=0.9` | 0.82 | 100 | measured | **FAIL** |" in validate["details"]
    assert "_quality metrics on all 100 rows of the data set;" in validate["details"]
    assert "| `latency_p95_ms` | `<=1000` |" in validate["details"]
    assert _checks(aimodel, number)["sign"]["state"] == "skipped"


def test_an_unmeasurable_format_needs_the_environment_to_accept_declared_metrics(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    artifact = tmp_path / "weights.pkl"
    artifact.write_bytes(pickle.dumps({"w": [0.1, 0.2, 0.3]}, protocol=4))
    number = _create(aimodel, artifact, model_files.data, sla="accuracy>=0.9")
    validate = _checks(aimodel, number)["validate"]
    assert validate["state"] == "failure" and "accuracy" in validate["summary"]
    aimodel("pr", "close", str(number), "--as", "ada")

    # The team's policy, changed on the default branch: dev accepts declared metrics.
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        head = ctx.workspace.head_of()
        config = yaml.safe_load(ctx.workspace.read_file(head, ".aimodel/config.yaml") or b"")
        config["environments"]["dev"]["accept_declared_metrics"] = True
        commit = ctx.workspace.commit_change(head, {".aimodel/config.yaml": yaml.safe_dump(config).encode()}, "dev accepts declared metrics")
        ctx.workspace.push(commit, "main", expect=head)
        # A person edits the manifest to declare the metric (a new version runs in dev first).
        number = _create(aimodel, artifact, model_files.data, sla="accuracy>=0.9", name="legacy")
        pr = ctx.forge.get_pr(number)
        text = ctx.workspace.read_file(pr.head, "models/legacy/model.yaml") or b""
        doc = yaml.safe_load(text)
        doc["spec"]["versions"][-1]["metrics"] = {"accuracy": 0.93}
        edited = ctx.workspace.commit_change(pr.head, {"models/legacy/model.yaml": yaml.safe_dump(doc, sort_keys=False).encode()}, "declare accuracy")
        ctx.workspace.push(edited, pr.branch)
        ctx.forge.update_head(number, edited)
        ctx.jobs.drain()
    checks = _checks(aimodel, number)
    assert checks["validate"]["state"] == "success", checks["validate"]
    assert "declared" in checks["validate"]["details"]
    assert checks["sign"]["state"] == "success"


def test_the_team_can_extend_the_scan_allow_list(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    artifact = tmp_path / "custom.pkl"
    artifact.write_bytes(global_pickle("acme_layers", "Gate"))
    number = _create(aimodel, artifact, model_files.data)
    assert _checks(aimodel, number)["scan"]["state"] == "failure"
    aimodel("pr", "close", str(number), "--as", "ada")
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        head = ctx.workspace.head_of()
        config = yaml.safe_load(ctx.workspace.read_file(head, ".aimodel/config.yaml") or b"")
        config["scan"]["allow"] = ["acme_layers.*"]
        commit = ctx.workspace.commit_change(head, {".aimodel/config.yaml": yaml.safe_dump(config).encode()}, "allow our layers")
        ctx.workspace.push(commit, "main", expect=head)
    number = _create(aimodel, artifact, model_files.data)
    assert _checks(aimodel, number)["scan"]["state"] == "success"
