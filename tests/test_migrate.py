"""`aimodel migrate`: a repository written by the earlier schema (aimodel.dev/v1) is read no
more, says how to upgrade, and is upgraded through a reviewed pull request that keeps what
runs where."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot import lifecycle
from bot.app import Context
from bot.config import load_settings
from bot.deploy.reconcile import reconcile
from tests.conftest import ModelFiles, Run


def _as_v1(home: Path) -> None:
    """Rewrite main as the earlier release wrote it: one version on the model and the
    environments it runs in; the application pins that version."""
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        base = ctx.workspace.head_of()
        model = yaml.safe_load(ctx.workspace.read_file(base, "models/fraud/model.yaml") or b"")
        newest = model["spec"]["versions"][-1]
        model["apiVersion"] = "aimodel.dev/v1"
        model["spec"] = {
            "version": newest["version"], "application": "payments", "dataset": "transactions",
            "artifact": newest["artifact"], "sla": model["spec"]["sla"], "environments": ["dev"],
        }
        app = yaml.safe_load(ctx.workspace.read_file(base, "apps/payments.yaml") or b"")
        app["apiVersion"] = "aimodel.dev/v1"
        app["spec"] = {"version": app["spec"]["version"], "models": {"fraud": newest["version"]}}
        config = (ctx.workspace.read_file(base, ".aimodel/config.yaml") or b"").replace(b"aimodel.dev/v2", b"aimodel.dev/v1")
        schema = (ctx.workspace.read_file(base, "schemas/aimodel.schema.json") or b"").replace(b"aimodel.dev/v2", b"aimodel.dev/v1")
        files = {
            "models/fraud/model.yaml": yaml.safe_dump(model, sort_keys=False).encode(),
            "apps/payments.yaml": yaml.safe_dump(app, sort_keys=False).encode(),
            ".aimodel/config.yaml": config,
            "schemas/aimodel.schema.json": schema,
        }
        commit = ctx.workspace.commit_change(base, files, "as the earlier release wrote it")
        ctx.workspace.push(commit, "main", expect=base)
        lifecycle.deploy(ctx, commit, None, lambda: reconcile(ctx))


def test_a_v1_repository_is_upgraded_by_a_reviewed_pull_request(aimodel: Run, home: Path, created: str, model_files: ModelFiles) -> None:
    number = str(aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")
    _as_v1(home)

    # read no more, and the refusal says what to do; what runs keeps running
    refused = aimodel("deploy", "fraud", "--env", "test", "--as", "eve", expect=1)
    assert "models/fraud/model.yaml:1: apiVersion: aimodel.dev/v1 manifests are read no more; `aimodel migrate` opens a pull request" in refused.err
    shown = aimodel("pr", "list", "--json")  # the rest of the CLI still answers
    assert shown.code == 0
    assert (home / "deploy" / "dev" / "_releases" / "payments.json").exists()

    opened = aimodel("migrate", "--as", "eve", "--json").json
    pr = aimodel("pr", "show", str(opened["pr"]), "--json").json
    assert pr["title"] == "migrate manifests to aimodel.dev/v2"
    assert pr["checks"]["manifest"]["state"] == "success", pr["checks"]
    assert ".aimodel/config.yaml" in pr["policy"]  # the schemas and config change: the rules' owners review it
    blocked = aimodel("pr", "merge", str(opened["pr"]), "--as", "dev", expect=1)
    assert "approval" in blocked.err
    aimodel("pr", "approve", str(opened["pr"]), "--as", "dev")
    aimodel("pr", "merge", str(opened["pr"]), "--as", "dev")

    listed = aimodel("list", "--json").json
    assert listed[0]["environments"] == {"dev": {"version": "1.0.0", "state": "running"}}
    assert "Nothing to do: every manifest is already aimodel.dev/v2" in aimodel("migrate", "--as", "eve", expect=1).err
    # and the upgraded repository works as any other: the next environment takes what runs in dev
    number = str(aimodel("deploy", "fraud", "--env", "test", "--as", "eve", "--json").json["pr"])
    assert aimodel("pr", "show", number, "--json").json["title"] == "deploy fraud 1.0.0 to test"
