"""`aimodel rollback APP --env ENV [--to RELEASE]`: a pull request that restores an earlier
release's pins; after the merge that release is live again, its bytes from the store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ModelFiles, Run


def _deploy_dev(aimodel: Run) -> None:
    number = str(aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")


def test_rollback_restores_the_release_before_and_history_shows_all_three(
    aimodel: Run, home: Path, created: str, model_files: ModelFiles
) -> None:
    refused = aimodel("rollback", "payments", "--env", "dev", "--as", "eve", expect=1)
    assert "application 'payments' has no release in dev" in refused.err
    _deploy_dev(aimodel)
    refused = aimodel("rollback", "payments", "--env", "dev", "--as", "eve", expect=1)
    assert "has had one release in dev: there is nothing earlier to restore" in refused.err

    number = str(aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")
    _deploy_dev(aimodel)
    releases = home / "deploy" / "dev" / "_releases" / "payments.json"
    assert json.loads(releases.read_text())["models"] == {"fraud": "1.0.1"}

    refused = aimodel("rollback", "payments", "--env", "dev", "--to", "dev-payments-9", "--as", "eve", expect=1)
    assert "there is no release 'dev-payments-9' of payments in dev" in refused.err
    opened = aimodel("rollback", "payments", "--env", "dev", "--as", "eve", "--json").json
    pr = aimodel("pr", "show", str(opened["pr"]), "--json").json
    assert pr["title"] == "rollback payments in dev to dev-payments-1"
    assert pr["environments"] == ["dev"]
    aimodel("pr", "merge", str(opened["pr"]), "--as", "eve")
    assert json.loads(releases.read_text())["models"] == {"fraud": "1.0.0"}
    assert aimodel("list", "--json").json[0]["environments"]["dev"] == {"version": "1.0.0", "state": "running"}
    deployed = home / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx"
    assert deployed.read_bytes() == model_files.onnx.read_bytes()

    history = aimodel("history", "payments", "--env", "dev", "--json").json
    rows = [(r["id"], r["models"]["fraud"]["version"], r["pr"]) for r in history]
    assert rows == [("dev-payments-3", "1.0.0", int(opened["pr"])), ("dev-payments-2", "1.0.1", int(number) + 1),
                    ("dev-payments-1", "1.0.0", 2)]
    # the same release again is nothing to do
    again = aimodel("rollback", "payments", "--env", "dev", "--to", "dev-payments-3", "--as", "eve", expect=1)
    assert "Nothing to do: payments in dev already pins what release dev-payments-3 ran" in again.err
