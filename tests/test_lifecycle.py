"""The pull request's lifecycle: the core never imports the faces, the faces register
themselves, and the checks run once per head a person pushed, with one notification each."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ModelFiles, Run

ROOT = Path(__file__).resolve().parent.parent


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_the_core_never_imports_the_faces() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "bot").rglob("*.py"))
        for line, name in _imports(ast.parse(path.read_text(), str(path)))
        if name == "handlers" or name.startswith("handlers.")
    ]
    assert offending == []
    assert len(list((ROOT / "bot").rglob("*.py"))) > 40  # the walk saw the package


def test_the_import_rule_catches_an_indented_import() -> None:
    source = "def f():\n    from handlers.slack import register\n    import handlers.github as g\n"
    assert [name for _line, name in _imports(ast.parse(source))] == ["handlers.slack", "handlers.github"]


# --------------------------------------------------------------------------- faces


def test_a_face_that_cannot_be_loaded_is_a_clear_usage_error(aimodel: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_FACES", "handlers.faces,no_such_face_module")
    result = aimodel("list", "--as", "ada", expect=2)
    assert "AIMODEL_FACES names no_such_face_module, which cannot be imported" in result.err
    assert "Traceback" not in result.err


def test_a_face_name_that_is_not_a_module_name_fails_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="AIMODEL_FACES: 'os;rm' is not a Python module name"):
        load_settings({"AIMODEL_HOME": str(tmp_path), "AIMODEL_FACES": "os;rm"})
    assert load_settings({"AIMODEL_HOME": str(tmp_path)}).faces == ("handlers.faces",)


# --------------------------------------------------------------------------- checks once per pushed head


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    from tests import recording_face

    monkeypatch.setenv("AIMODEL_FACES", "handlers.faces,tests.recording_face")
    recording_face.RECORDED.clear()
    yield recording_face.RECORDED
    recording_face.RECORDED.clear()


def _checks_of(recorded: list[tuple[str, dict[str, Any]]], number: int) -> list[dict[str, Any]]:
    return [data for kind, data in recorded if kind == "checks" and data["pr"] == number]


def test_one_update_runs_the_checks_once_and_says_so_once(aimodel: Run, created: str, model_files: ModelFiles,
                                                          recorded: list[tuple[str, dict[str, Any]]], home: Path) -> None:
    number = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"]
    # the CLI ran the queue before it returned: the run on the person's head is behind us
    [told] = _checks_of(recorded, number)
    pr = aimodel("pr", "show", str(number), "--json").json
    log = subprocess.run(["git", "log", "--format=%an", f"main..{pr['branch']}"], cwd=home / "repo.git", capture_output=True, text=True, check=True)
    assert log.stdout.split() == ["eve"]  # the head is the person's commit: the bot committed nothing
    assert {n: c["state"] for n, c in told["checks"].items()} == dict.fromkeys(("manifest", "scan", "validate", "sign"), "success")
    assert "waiting" not in told["text"] and told["text"].startswith(f"Checks on #{number}:\n  manifest  ok")
    assert [kind for kind, data in recorded if data["pr"] == number] == ["checks", "ready"]

    # a person pushes to the branch: one more run, one more notification, for that head
    from bot.app import Context
    from bot.config import load_settings

    with Context(load_settings()) as ctx:
        before = ctx.forge.get_pr(number)
        ctx.workspace.fetch()
        pushed = ctx.workspace.commit_change(before.head, {"README.md": b"# notes by a person\n"}, "notes")
        ctx.workspace.push(pushed, before.branch, expect=before.head)
        ctx.forge.update_head(number, pushed)
        ctx.jobs.drain()
        after = ctx.forge.get_pr(number)
    assert after.head == pushed and {c.commit for c in after.checks.values()} == {pushed}
    told_all = _checks_of(recorded, number)
    assert len(told_all) == 2
    assert {n: c["state"] for n, c in told_all[1]["checks"].items()} == dict.fromkeys(("manifest", "scan", "validate", "sign"), "success")


def _older_bots_signature_commit(ctx: Any, number: int) -> Any:
    """What a bot from before the store kept signatures did once it had signed: commit the
    bundle on the pull request's branch and record it in the metadata. A pull request opened
    then may still be open after an upgrade; its signature commit is still recognised."""
    from bot.forges.meta import SignResult

    pr = ctx.forge.get_pr(number)
    signed = ctx.workspace.commit_change(pr.head, {"models/fraud/model.sig": b"{}"}, "Sign models that passed scan and validate")
    result = SignResult("success", "fraud 1.0.1: signed", "")
    ctx.forge.update_meta(number, lambda m: dataclasses.replace(m, signed_head=signed, checked_head=pr.head, sign_result=result))
    ctx.workspace.push(signed, pr.branch, expect=pr.head)
    ctx.forge.update_head(number, signed)
    return ctx.forge.get_pr(number)


def test_a_retried_run_that_signed_finishes_the_carry_over(aimodel: Run, created: str, model_files: ModelFiles,
                                                           recorded: list[tuple[str, dict[str, Any]]], home: Path) -> None:
    """An older bot's run that signed stopped after pushing its commit (the worker died): the
    task's retry, on the head it checked, reports the results on the signature commit once."""
    from bot import lifecycle
    from bot.app import Context
    from bot.config import load_settings
    from bot.forges.base import CheckResult

    number = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"]
    with Context(load_settings()) as ctx:
        pr = _older_bots_signature_commit(ctx, number)
        checked = pr.meta.checked_head
        for name in ("manifest", "scan", "validate", "sign"):  # as if the carry-over never happened
            ctx.forge.set_check(number, CheckResult(name, "success" if name != "sign" else "pending", "as checked", "", checked))
        recorded.clear()
        ran: list[Any] = []
        lifecycle.checks(ctx, number, pr.head, ran.append)  # the event of the signature commit: nothing to run
        lifecycle.checks(ctx, number, checked, ran.append)  # the retried task of the signing run
        ctx.jobs.drain()
        done = ctx.forge.get_pr(number)
    assert ran == []
    assert {n: (c.state, c.commit) for n, c in done.checks.items()} == {
        n: ("success", pr.head) for n in ("manifest", "scan", "validate", "sign")
    }
    assert done.checks["sign"].summary.startswith("fraud 1.0.1: signed")
    assert len(_checks_of(recorded, number)) == 1


def test_a_commit_that_only_looks_like_the_bots_is_checked(aimodel: Run, created: str, model_files: ModelFiles, home: Path) -> None:
    """A commit authored as the bot that changes more than signatures is checked like any push."""
    from bot import lifecycle
    from bot.app import Context
    from bot.config import load_settings

    number = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"]
    with Context(load_settings()) as ctx:
        pr = _older_bots_signature_commit(ctx, number)
        assert lifecycle.own_signature(ctx.workspace, pr) == pr.meta.checked_head
        sneaky = ctx.workspace.commit_change(pr.meta.checked_head, {"models/fraud/model.sig": b"{}", "README.md": b"x"}, "Sign models")
        ctx.forge.update_meta(number, lambda m: dataclasses.replace(m, signed_head=sneaky))
        ctx.workspace.push(sneaky, pr.branch, force=True)
        pr.head, pr.meta = sneaky, dataclasses.replace(pr.meta, signed_head=sneaky)
        assert lifecycle.own_signature(ctx.workspace, pr) == ""


def _meta(home: Path, number: int) -> dict[str, Any]:
    import json

    meta: dict[str, Any] = json.loads((home / "forge" / "prs" / f"{number}.json").read_text())["meta"]
    return meta


def test_a_run_overtaken_by_a_push_says_nothing(aimodel: Run, created: str, model_files: ModelFiles,
                                                recorded: list[tuple[str, dict[str, Any]]]) -> None:
    """Only the run on the pull request's current head reports; an older one would be stale."""
    from bot import lifecycle
    from bot.app import Context
    from bot.config import load_settings

    number = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"]
    with Context(load_settings()) as ctx:
        pr = ctx.forge.get_pr(number)
        recorded.clear()
        lifecycle.checks_finished(ctx, number, pr.meta.checked_head)  # the head before the signature
        assert recorded == [] and ctx.jobs.drain() == 0  # and no evaluation was queued either
        lifecycle.checks_finished(ctx, number, pr.head)
        assert ctx.jobs.drain() == 3  # the checks notification, the evaluation, its "ready" notification
    assert [kind for kind, _ in recorded] == ["checks", "ready"]
