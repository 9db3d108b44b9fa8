"""Bad input gets a clear message and loses nothing: the home is byte-for-byte unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import Context
from bot.config import load_settings
from bot.manifests import ManifestError, parse_manifest
from tests.conftest import ModelFiles, Run, git_branches, tree_snapshot

CREATE = ["create", "fraud", "--app", "payments", "--dataset", "transactions"]


@pytest.mark.parametrize(
    ("who", "argv", "code", "message"),
    [
        ("ada", ["create", "Fraud_Model", "--app", "payments", "--dataset", "transactions", "--artifact", "x.onnx"], 2,
         "model name 'Fraud_Model' is not a DNS-1123 label"),
        ("ada", ["create", "fraud", "--app", "Payments!", "--dataset", "transactions", "--artifact", "x.onnx"], 2,
         "--app 'Payments!' is not a DNS-1123 label"),
        ("ada", [*CREATE, "--artifact", "missing.onnx", "--dataset-uri", "d.csv", "--label-column", "y"], 1,
         "missing.onnx does not exist"),
        ("ada", [*CREATE, "--artifact", "ARTIFACT", "--SLA", "accuracy=>0.9"], 2, "is not of the form metric>=number"),
        ("ada", [*CREATE, "--artifact", "ARTIFACT", "--SLA", "acurracy>=0.9"], 2, "did you mean accuracy?"),
        ("ada", [*CREATE, "--artifact", "ARTIFACT"], 1, "data set 'transactions' does not exist; add it in the same pull request"),
        ("eve", ["update", "nosuch", "--version", "2.0.0"], 1, "there is no model 'nosuch'; `aimodel list` shows the models"),
        ("dev", ["deploy", "nosuch", "--env", "prod"], 1, "there is no model 'nosuch'"),
        ("ada", ["craete", "fraud"], 2, "Did you mean `aimodel create`?"),
        ("ada", ["create", "fraud"], 2, "missing: --app/--application, --dataset, --artifact"),
        ("ada", ["list", "--app", "nosuch"], 1, "there is no application named 'nosuch'"),
        ("ada", ["update", "fraud"], 2, "nothing to update: give --artifact, --version or --SLA"),
    ],
)
def test_refused_commands_write_nothing(
    aimodel: Run, home: Path, model_files: ModelFiles, who: str, argv: list[str], code: int, message: str
) -> None:
    argv = [str(model_files.onnx) if a == "ARTIFACT" else a for a in argv]
    before = tree_snapshot(home)
    result = aimodel(*argv, "--as", who, expect=code)
    assert message in result.err, result.err
    assert tree_snapshot(home) == before
    assert git_branches(home) == ["main"]


def test_unknown_environment_is_refused(aimodel: Run, created: str, home: Path) -> None:
    before = tree_snapshot(home)
    result = aimodel("deploy", "fraud", "--env", "staging", "--as", "dev", expect=1)
    assert "there is no environment named 'staging'; environments: dev, test, prod" in result.err
    assert tree_snapshot(home) == before


def test_usage_and_help_exit_codes(aimodel: Run) -> None:
    assert aimodel(expect=2).err.startswith("usage: aimodel VERB")
    assert "usage: aimodel deploy NAME --env ENV" in aimodel("deploy", "--help", expect=0).out
    assert "usage: aimodel create" in aimodel("help", "create", expect=0).out


def test_commands_before_init_say_what_to_do(aimodel: Run) -> None:
    result = aimodel("list", expect=2)
    assert "run `aimodel init` first" in result.err


MANIFEST = """apiVersion: aimodel.dev/v2
kind: AIModel
metadata:
  name: fraud
spec:
  application: payments
  dataset: transactions
  versions:
  - version: 1.0.0
    artifact:
      uri: file:///m.onnx
      sha256: {sha}
"""


def test_malformed_yaml_reports_file_and_line() -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest("apiVersion: aimodel.dev/v1\nkind: AIModel\nmetadata:\n  name: [fraud\n", "models/fraud.yaml")
    assert str(err.value).startswith("models/fraud.yaml:5: invalid YAML")


def test_field_errors_name_file_line_and_field() -> None:
    bad = MANIFEST.format(sha="abc")
    with pytest.raises(ManifestError) as err:
        parse_manifest(bad, "models/fraud/model.yaml")
    assert str(err.value) == "models/fraud/model.yaml:12: spec.versions[0].artifact.sha256: expected 64 lower-case hex digits (a sha256 digest)"
    typo = MANIFEST.format(sha="0" * 64).replace("  dataset:", "  datset:")
    with pytest.raises(ManifestError) as err:
        parse_manifest(typo, "models/fraud/model.yaml")
    assert "models/fraud/model.yaml:7: spec.datset: unknown field" in str(err.value)
    wrong_name = MANIFEST.format(sha="0" * 64)
    with pytest.raises(ManifestError) as err:
        parse_manifest(wrong_name, "models/other/model.yaml")
    assert "metadata.name: 'fraud' does not match the file name" in str(err.value)


def test_alias_bomb_is_refused_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    with pytest.raises(ManifestError) as err:
        parse_manifest("\n".join(lines), "models/bomb.yaml")
    assert "models/bomb.yaml:1: YAML anchors and aliases are not allowed" in str(err.value)


def test_oversized_document_is_refused() -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest("a: " + "x" * 300_000, "models/big.yaml")
    assert "the limit is 262144" in str(err.value)


def test_broken_manifest_pushed_to_a_pr_fails_the_manifest_check_with_its_line(aimodel: Run, created: str, home: Path) -> None:
    """A person pushes a broken manifest to a pull request's branch: the check names file and line."""
    number = aimodel("update", "fraud", "--SLA", "accuracy>=0.8", "--as", "eve", "--json").json["pr"]
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        pr = ctx.forge.get_pr(number)
        text = ctx.workspace.read_file(pr.head, "models/fraud/model.yaml")
        assert text is not None
        broken = text.replace(b"application: payments", b"application: payments\n  application: twice")
        head = ctx.workspace.commit_change(pr.head, {"models/fraud/model.yaml": broken}, "edit by hand")
        ctx.workspace.push(head, pr.branch)
        ctx.forge.update_head(number, head)
        ctx.jobs.drain()
    shown = aimodel("pr", "show", str(number), "--json").json
    manifest = shown["checks"]["manifest"]
    assert manifest["state"] == "failure"
    assert "models/fraud/model.yaml:8: duplicate key 'application'" in manifest["summary"]
    assert shown["checks"]["sign"]["state"] == "skipped"
    refused = aimodel("pr", "merge", str(number), "--as", "eve", expect=1)
    assert "check manifest failed" in refused.err
