"""The GitOps loop end to end through the real CLI, on real git and real files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ModelFiles, Run, git_branches, promote_through


def test_init_is_idempotent_and_seeds_people(aimodel: Run, tmp_path: Path) -> None:
    first = aimodel("init", "--person", "ada=data-scientist", "--json").json
    assert first["created"] is True and first["added_people"] == ["ada=data-scientist"]
    again = aimodel("init", "--person", "ada=data-scientist", "--json").json
    assert again == {"home": first["home"], "created": False, "added_people": [], "key_created": False}
    more = aimodel("init", "--person", "dev=devops-engineer", "--json").json
    assert more["added_people"] == ["dev=devops-engineer"]
    config = (tmp_path / "home" / "work").exists()
    assert config
    assert git_branches(tmp_path / "home") == ["main"]


def test_full_lifecycle(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    # create, by a Data Scientist: one PR adds the model, its new application and data set
    source = tmp_path / "upload" / "fraud-v1.onnx"
    source.parent.mkdir()
    source.write_bytes(model_files.onnx.read_bytes())
    opened = aimodel(
        "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(source),
        "--dataset-uri", str(model_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9,size_mb<=1",
        "--as", "ada", "--json",
    ).json
    assert opened["pr"] == 1 and opened["branch"].startswith("aimodel/create-fraud-")
    pr = aimodel("pr", "show", "1", "--json").json
    assert {n: c["state"] for n, c in pr["checks"].items()} == {
        "manifest": "success", "scan": "success", "validate": "success", "sign": "success",
    }
    assert "0.95" in pr["checks"]["validate"]["details"]  # measured, not declared
    assert pr["environments"] == []  # registering runs nothing anywhere: no approval needed
    merged = aimodel("pr", "merge", "1", "--as", "ada", "--json").json
    assert merged["deploy"]["ok"] is True
    listed = aimodel("list", "--json").json
    assert listed == [{"name": "fraud", "version": "1.0.0", "application": "payments", "dataset": "transactions", "environments": {}}]

    # deploy to dev (no approvals in dev): merge -> running in dev, with its application
    assert aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"] == 2
    assert _changed_files(home, aimodel("pr", "show", "2", "--json").json["branch"]) == ["apps/payments.yaml"]
    aimodel("pr", "merge", "2", "--as", "dev")
    listed = aimodel("list", "--json").json
    assert listed[0]["environments"] == {"dev": {"version": "1.0.0", "state": "running"}}
    dev = home / "deploy" / "dev"
    assert (dev / "fraud" / "1.0.0" / "model.onnx").read_bytes() == model_files.onnx.read_bytes()
    assert json.loads((dev / "_releases" / "payments.json").read_text())["models"] == {"fraud": "1.0.0"}

    # the registry keeps the bytes: the uploaded file is gone, the next environment still gets them
    source.unlink()
    number = str(aimodel("deploy", "fraud", "--env", "test", "--as", "eve", "--json").json["pr"])
    assert aimodel("pr", "show", number, "--json").json["title"] == "deploy fraud 1.0.0 to test"  # what runs in dev
    aimodel("pr", "approve", number, "--as", "alan")
    aimodel("pr", "merge", number, "--as", "eve")
    assert aimodel("list", "--json").json[0]["environments"]["test"] == {"version": "1.0.0", "state": "running"}

    # update by a Data Engineer registers 1.0.1; no environment changes
    opened = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json
    assert [f for f in _changed_files(home, opened["branch"]) if not f.endswith(".sig")] == ["models/fraud/model.yaml"]
    pr = aimodel("pr", "show", str(opened["pr"]), "--json").json
    assert pr["title"] == "update fraud 1.0.0 -> 1.0.1"
    assert pr["environments"] == []
    aimodel("pr", "merge", str(opened["pr"]), "--as", "eve")
    envs = aimodel("list", "--json").json[0]["environments"]
    assert {e: s["version"] for e, s in envs.items()} == {"dev": "1.0.0", "test": "1.0.0"}

    # a version that never ran in test does not enter prod
    refused = aimodel("deploy", "fraud", "--env", "prod", "--version", "1.0.1", "--as", "dev", expect=1)
    assert "fraud 1.0.1 has not run successfully in test" in refused.err
    assert "`aimodel deploy fraud --env test --version 1.0.1`" in refused.err

    # deploy dev without --version takes the newest: dev runs 1.0.1 while test keeps 1.0.0
    number = str(aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "dev")
    envs = aimodel("list", "--json").json[0]["environments"]
    assert {e: s["version"] for e, s in envs.items()} == {"dev": "1.0.1", "test": "1.0.0"}

    # test without --version takes what runs in dev; prod then takes what runs in test
    number = str(aimodel("deploy", "fraud", "--env", "test", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "approve", number, "--as", "alan")
    aimodel("pr", "merge", number, "--as", "eve")
    number = str(aimodel("deploy", "fraud", "--env", "prod", "--as", "eve", "--json").json["pr"])
    assert aimodel("pr", "show", number, "--json").json["title"] == "deploy fraud 1.0.1 to prod"
    refused = aimodel("pr", "merge", number, "--as", "eve", expect=1)
    assert "prod needs 1 approval(s) from DevOps Engineer; has 0" in refused.err
    own = aimodel("pr", "approve", number, "--as", "alan")  # an Application Developer's approval does not count for prod
    assert "Still waiting: prod needs 1 approval(s)" in own.out
    aimodel("pr", "approve", number, "--as", "dev")
    # approved, but prod is merged by a DevOps Engineer (the template's `mergers`), and the refusal says who
    refused = aimodel("pr", "merge", number, "--as", "eve", expect=1)
    assert refused.err.strip() == f"Refused: merging #{number} (changes prod) is for DevOps Engineer: dev; eve is Data Engineer"
    aimodel("pr", "merge", number, "--as", "dev")
    envs = aimodel("list", "--json").json[0]["environments"]
    assert {e: s["version"] for e, s in envs.items()} == {"dev": "1.0.1", "prod": "1.0.1", "test": "1.0.1"}
    assert (home / "deploy" / "prod" / "_releases" / "payments.json").exists()
    again = aimodel("deploy", "fraud", "--env", "prod", "--as", "dev", expect=1)
    assert "Nothing to do: fraud 1.0.1 is already deployed to prod" in again.err

    # destroy: refused while pinned, then with --with-apps in one PR (prod is affected: needs DevOps)
    refused = aimodel("destroy", "fraud", "--as", "eve", expect=1)
    assert "pinned by payments" in refused.err and "--with-apps" in refused.err
    number = str(aimodel("destroy", "fraud", "--with-apps", "--as", "eve", "--json").json["pr"])
    aimodel("pr", "approve", number, "--as", "dev")
    aimodel("pr", "merge", number, "--as", "dev")
    assert aimodel("list", "--json").json == []
    assert not (home / "deploy" / "prod" / "fraud").exists()
    assert not (home / "deploy" / "prod" / "_releases" / "payments.json").exists()
    assert aimodel("pr", "list", "--json").json == []
    assert git_branches(home) == ["main"]  # merged branches are deleted


def _changed_files(home: Path, branch: str) -> list[str]:
    import git

    repo = git.Repo(home / "repo.git")
    try:
        return sorted(repo.git.diff("--name-only", f"main...{branch}").split())
    finally:
        repo.close()


def test_author_cannot_approve_own_pr_and_close_releases_lock(aimodel: Run, created: str) -> None:
    promote_through(aimodel, "fraud", "test")
    number = str(aimodel("deploy", "fraud", "--env", "prod", "--as", "dev", "--json").json["pr"])
    own = aimodel("pr", "approve", number, "--as", "dev", expect=1)
    assert "author's own approval never counts" in own.err
    locked = aimodel("update", "fraud", "--version", "2.0.0", "--as", "eve", expect=1)
    assert f"model fraud is locked by PR #{number}" in locked.err
    aimodel("pr", "close", number, "--as", "dev")
    assert aimodel("update", "fraud", "--SLA", "accuracy>=0.8", "--as", "eve", "--json").json["pr"] == int(number) + 1


def test_text_output_reads_like_a_terminal_tool(aimodel: Run, created: str) -> None:
    out = aimodel("list").out.splitlines()
    assert out[0].split() == ["MODEL", "VERSION", "APPLICATION", "DATASET", "DEV", "PROD", "TEST"]
    assert out[1].split() == ["fraud", "1.0.0", "payments", "transactions", "-", "-", "-"]
    shown = aimodel("pr", "show", "1").out
    assert "state     merged" in shown and "validate  ok" in shown


def test_status_shows_one_model_and_its_lock(aimodel: Run, created: str) -> None:
    number = aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"]
    detail = aimodel("status", "fraud", "--json").json
    assert detail["locked_by"] == number and detail["signed"] is True and detail["pinned_by"] == ["payments"]
    assert detail["environments"] == {}
    text = aimodel("status", "fraud").out
    assert f"locked by    PR #{number}" in text and "(not deployed)" in text
    assert "model:fraud by #" in aimodel("status").out
    assert "there is no model 'nope'; `aimodel list` shows the models" in aimodel("status", "nope", expect=1).err
