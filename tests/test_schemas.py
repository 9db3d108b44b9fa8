"""The JSON Schemas shipped in the template agree with the parser on what the bot writes
and on what it refuses, so an editor that validates with them tells the truth."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.init_repo import TEMPLATE
from bot.manifests import (
    AIModel,
    Application,
    Artifact,
    Dataset,
    ManifestError,
    ModelVersion,
    dump_manifest,
    manifest_path,
    parse_config,
    parse_manifest,
)
from bot.sla import parse_sla

SCHEMAS = TEMPLATE / "schemas"


def _schema(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


GOOD = [
    ("aimodel", AIModel(name="fraud", version="1.1.0", owner="ada", application="payments", dataset="tx",
                        artifact=Artifact("file:///m.onnx", "a" * 64, "onnx", 10), sla=parse_sla("accuracy>=0.9"),
                        metrics={"accuracy": 0.93},
                        previous=(ModelVersion("1.0.0", Artifact("store:sha256/" + "c" * 64, "c" * 64, "onnx", 9, "s3://m/fraud.onnx")),))),
    ("application", Application(name="payments", version="2.1.0", owner="alan", models=("fraud",),
                                environments={"dev": {"fraud": "1.1.0"}, "prod": {"fraud": "1.0.0"}}, canary={"dev": {"fraud": 10}},
                                image="ghcr.io/acme/payments:2.1.0")),
    ("dataset", Dataset(name="tx", uri="s3://data/tx.csv", label_column="label", sha256="b" * 64)),
]


@pytest.mark.parametrize(("schema", "manifest"), GOOD, ids=[g[0] for g in GOOD])
def test_what_the_bot_writes_is_valid_for_both(schema: str, manifest: AIModel | Application | Dataset) -> None:
    text = dump_manifest(manifest)
    jsonschema.validate(yaml.safe_load(text), _schema(schema))
    assert parse_manifest(text, manifest_path(manifest.kind, manifest.name)) == manifest.__class__(**{**manifest.__dict__, "path": manifest_path(manifest.kind, manifest.name)})


BAD = [
    ("aimodel", "spec.versions[0].version", lambda d: d["spec"]["versions"][0].update(version="not a version!")),
    ("aimodel", "spec.versions", lambda d: d["spec"].update(versions=[])),
    ("aimodel", "metadata.name", lambda d: d["metadata"].update(name="Bad_Name")),
    ("aimodel", "spec.versions[1].artifact.sha256", lambda d: d["spec"]["versions"][1]["artifact"].update(sha256="xyz")),
    ("aimodel", "spec.extra", lambda d: d["spec"].update(extra=1)),
    ("aimodel", "spec.sla", lambda d: d["spec"].update(sla={"accuracy": "about 0.9"})),
    ("application", "spec.models", lambda d: d["spec"].update(models=["Fraud"])),
    ("application", "spec.canary.dev.fraud", lambda d: d["spec"]["canary"]["dev"].update(fraud=100)),
    ("application", "spec.environments.dev", lambda d: d["spec"]["environments"].update(dev={"fraud": "not a version!"})),
    ("dataset", "spec.format", lambda d: d["spec"].update(format="xlsx")),
]


@pytest.mark.parametrize(("schema", "field", "breaks"), BAD, ids=[f"{b[0]}:{b[1]}" for b in BAD])
def test_what_the_parser_refuses_the_schema_refuses(schema: str, field: str, breaks: object) -> None:
    manifest = dict(GOOD)[schema]
    doc = yaml.safe_load(dump_manifest(manifest))
    breaks(doc)  # type: ignore[operator]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema(schema))
    with pytest.raises(ManifestError):
        parse_manifest(yaml.safe_dump(doc), manifest_path(manifest.kind, manifest.name))


def test_the_template_config_is_valid_for_both() -> None:
    text = (TEMPLATE / ".aimodel" / "config.yaml").read_text()
    jsonschema.validate(yaml.safe_load(text), _schema("config"))
    config = parse_config(text)
    assert config.environments["prod"].approvals == 1
    assert config.environments["prod"].approvers == ("devops-engineer",)
    assert config.permissions["create"] == ("data-scientist", "application-developer")


def test_template_files_are_all_shipped() -> None:
    names = {p.relative_to(TEMPLATE).as_posix() for p in Path(TEMPLATE).rglob("*") if p.is_file()}
    assert {"README.md", "CODEOWNERS", ".aimodel/config.yaml", "schemas/aimodel.schema.json"} <= names
