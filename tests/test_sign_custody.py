"""Signature bundles and check attestations live in the artifact store beside the bytes they
cover: the sign check commits nothing to the person's pull request, and the deploy gate and
`aimodel verify` fetch them by digest. End to end through the real CLI on the embedded default."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from tests.conftest import ModelFiles, Run

CHECKS = ("manifest", "scan", "validate", "sign")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kept(home: Path, digest: str, suffix: str) -> Path:
    return home / "artifacts" / "sha256" / f"{digest}{suffix}"


def _authors(home: Path, branch: str) -> list[str]:
    """Who made each commit the pull request's branch adds to main, newest first."""
    out = subprocess.run(["git", "log", "--format=%an", f"main..{branch}"], cwd=home / "repo.git",
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def _forge(bundle: bytes) -> bytes:
    """The bundle with one digest in its signed statement changed and the signature left as it was."""
    doc = json.loads(bundle)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(doc).encode()


def test_a_pull_request_is_signed_in_the_store_and_deployed_from_it(aimodel: Run, home: Path, model_files: ModelFiles) -> None:
    opened = aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
                     "--dataset-uri", str(model_files.data), "--label-column", "label", "--SLA", "accuracy>=0.9",
                     "--as", "ada", "--json").json
    pr = aimodel("pr", "show", str(opened["pr"]), "--json").json
    assert {n: c["state"] for n, c in pr["checks"].items()} == dict.fromkeys(CHECKS, "success")
    # the branch holds the person's commit only, and the checks are on it
    assert _authors(home, opened["branch"]) == ["ada"]
    assert {c["commit"] for c in pr["checks"].values()} == {pr["head"]}
    v1 = _digest(model_files.onnx)
    sig, att = _kept(home, v1, ".sig"), _kept(home, v1, ".fraud@1.0.0.att.json")
    assert json.loads(sig.read_bytes())["dsseEnvelope"] and json.loads(att.read_bytes())["dsseEnvelope"]
    assert f"sha256/{v1}.sig" in pr["checks"]["sign"]["details"]
    aimodel("pr", "merge", str(opened["pr"]), "--as", "ada")
    assert not any(path.endswith(".sig") for path in subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "main"], cwd=home / "repo.git", capture_output=True, text=True, check=True
    ).stdout.split())
    assert aimodel("verify", "fraud").out.startswith("fraud: verified (key ")

    number = aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"]
    aimodel("pr", "approve", str(number), "--as", "dev")
    aimodel("pr", "merge", str(number), "--as", "dev")
    release = home / "deploy" / "dev" / "fraud" / "1.0.0"
    assert (release / "model.sig").read_bytes() == sig.read_bytes()  # the bundle it was verified with
    assert json.loads((release / "checks.json").read_text())["version"] == "1.0.0"

    # A new version whose bundle in the store was tampered with: refused, 1.0.0 stays live.
    update = aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json
    assert _authors(home, update["branch"]) == ["eve"]
    v2 = _digest(model_files.onnx_v2)
    assert _kept(home, v2, ".fraud@1.0.1.att.json").is_file()
    _kept(home, v2, ".sig").write_bytes(_forge(_kept(home, v2, ".sig").read_bytes()))
    aimodel("pr", "merge", str(update["pr"]), "--as", "eve")  # registered: runs nowhere yet
    number = aimodel("deploy", "fraud", "--env", "dev", "--as", "eve", "--json").json["pr"]
    merged = aimodel("pr", "merge", str(number), "--as", "eve", expect=1)
    assert "dev: REFUSED fraud: signature refused" in merged.out
    releases = json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())
    assert releases["models"] == {"fraud": "1.0.0"}
    assert (release / "model.onnx").read_bytes() == model_files.onnx.read_bytes()
    assert not (home / "deploy" / "dev" / "fraud" / "1.0.1").exists()
    refused = aimodel("verify", "fraud", expect=1)
    assert refused.out.startswith("fraud: NOT verified: signature refused")
