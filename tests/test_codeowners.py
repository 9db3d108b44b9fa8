"""CODEOWNERS follows the repository config: written at init, kept in step on every PR that
changes the config."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.app import Context
from bot.config import load_settings
from tests.conftest import Run


def test_init_writes_codeowners_from_the_config(aimodel: Run, home: Path) -> None:
    text = (home / "work" / "CODEOWNERS").read_text()
    assert "Edit the config, not this file" in text
    assert "# /models/" in text  # nobody has a GitHub login yet


def test_a_pr_that_changes_the_config_gets_codeowners_in_step(aimodel: Run, created: str, home: Path) -> None:
    number = aimodel("update", "fraud", "--SLA", "accuracy>=0.8", "--as", "eve", "--json").json["pr"]
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        pr = ctx.forge.get_pr(number)
        config = yaml.safe_load(ctx.workspace.read_file(pr.head, ".aimodel/config.yaml") or b"")
        config["people"]["ada"]["github"] = "ada-lovelace"
        config["people"]["dev"]["github"] = "devops-dan"
        head = ctx.workspace.commit_change(pr.head, {".aimodel/config.yaml": yaml.safe_dump(config).encode()}, "github logins")
        ctx.workspace.push(head, pr.branch)
        ctx.forge.update_head(number, head)
        ctx.jobs.drain()
        pr = ctx.forge.get_pr(number)
        owners = (ctx.workspace.read_file(pr.head, "CODEOWNERS") or b"").decode()
    assert "/models/     @ada-lovelace" in owners
    assert "/.aimodel/   @devops-dan" in owners
    assert "/apps/       @devops-dan" in owners
    checks = aimodel("pr", "show", str(number), "--json").json["checks"]
    assert {n: c["state"] for n, c in checks.items()} == {"manifest": "success", "scan": "success", "validate": "success", "sign": "success"}
