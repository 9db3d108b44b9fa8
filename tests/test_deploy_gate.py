"""The deploy gate: bytes run only if they are exactly what the trusted key signed and
what passed the checks. Each case pushes straight to the default branch, as someone with
push rights could, bypassing the pull request: the target must still refuse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from bot import lifecycle
from bot.app import Context
from bot.checks.sign import generate_key, sign_model
from bot.config import load_settings
from bot.deploy.reconcile import reconcile
from tests.conftest import ModelFiles, Run


@pytest.fixture
def in_dev(aimodel: Run, created: str) -> str:
    aimodel("deploy", "fraud", "--env", "dev", "--as", "dev")
    aimodel("pr", "merge", "2", "--as", "dev")
    return "fraud"


def _push_to_main(home: Path, changes: dict[str, bytes | None]) -> None:
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        base = ctx.workspace.head_of()
        commit = ctx.workspace.commit_change(base, changes, "pushed by hand")
        ctx.workspace.push(commit, "main", expect=base)
        lifecycle.deploy(ctx, commit, None, lambda: reconcile(ctx))
        lifecycle.deploy(ctx, commit, None, lambda: reconcile(ctx))  # a second pass (a retry) must not forget what runs


def _promote(home: Path, env: str) -> dict[str, bytes | None]:
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        text = ctx.workspace.read_file(ctx.workspace.head_of(), "apps/payments.yaml")
    assert text is not None
    doc = yaml.safe_load(text)
    doc["spec"]["environments"][env] = {"fraud": "1.0.0"}  # the application's release there pins it
    return {"apps/payments.yaml": yaml.safe_dump(doc, sort_keys=False).encode()}


def _state(home: Path, env: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / "deploy" / env / "_state.json").read_text())
    return data


def test_a_one_byte_change_to_the_artifact_is_refused(in_dev: str, home: Path, model_files: ModelFiles, aimodel: Run) -> None:
    # The registry keeps the bytes: the copy to change is the stored object, not the source.
    stored = home / "artifacts" / "sha256" / hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    _push_to_main(home, _promote(home, "test"))
    state = _state(home, "test")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed"
    assert f"the stored object sha256/{stored.name} does not match its digest" in state["reason"]
    assert not (home / "deploy" / "test" / "fraud" / "1.0.0").exists()
    assert not (home / "deploy" / "test" / "_releases" / "payments.json").exists()
    listed = aimodel("list", "--json").json[0]["environments"]
    assert listed["test"]["state"] == "failed"
    assert listed["dev"] == {"version": "1.0.0", "state": "running"}  # what ran keeps running


def _kept(home: Path, model_files: ModelFiles, suffix: str) -> Path:
    """What the sign check kept beside the stored bytes (bot.store: sha256/<digest><suffix>)."""
    return home / "artifacts" / "sha256" / (hashlib.sha256(model_files.onnx.read_bytes()).hexdigest() + suffix)


def test_a_signature_by_an_untrusted_key_is_refused(in_dev: str, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    key = generate_key(tmp_path / "mallory.pem")
    bundle = sign_model(model_files.onnx, key, bundle_path=tmp_path / "forged.sig")
    # Someone with write access to the store swaps the bundle: the gate checks who signed it.
    _kept(home, model_files, ".sig").write_bytes(bundle.read_bytes())
    _push_to_main(home, _promote(home, "test"))
    state = _state(home, "test")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed" and "untrusted key" in state["reason"]


def test_a_missing_bundle_is_refused(in_dev: str, home: Path, model_files: ModelFiles) -> None:
    sig = _kept(home, model_files, ".sig")
    sig.unlink()
    _push_to_main(home, _promote(home, "test"))
    state = _state(home, "test")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed" and "no signature bundle" in state["reason"]
    assert f"sha256/{sig.name} in the artifact store" in state["reason"]


def test_an_attestation_of_another_version_is_refused(in_dev: str, home: Path, model_files: ModelFiles) -> None:
    """Attestations are kept per model version: one for 1.0.0 does not vouch for 1.0.1."""
    att = _kept(home, model_files, ".fraud@1.0.0.att.json")
    assert json.loads(att.read_bytes())["dsseEnvelope"]
    att.rename(att.with_name(att.name.replace("@1.0.0", "@1.0.1")))
    _push_to_main(home, _promote(home, "test"))
    state = _state(home, "test")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed" and "no attestation of check results" in state["reason"]


def test_an_older_repository_with_its_bundles_in_git_still_deploys(in_dev: str, home: Path, model_files: ModelFiles) -> None:
    """Before the store kept them, the sign check committed model.sig and checks.sig beside
    the manifest: such a repository keeps deploying, verified the same way."""
    sig, att = _kept(home, model_files, ".sig"), _kept(home, model_files, ".fraud@1.0.0.att.json")
    changes = _promote(home, "test")
    changes["models/fraud/model.sig"], changes["models/fraud/checks.sig"] = sig.read_bytes(), att.read_bytes()
    sig.unlink()
    att.unlink()
    _push_to_main(home, changes)
    assert _state(home, "test")["models"]["fraud"]["state"] == "running"  # type: ignore[index]
    assert (home / "deploy" / "test" / "fraud" / "1.0.0" / "model.sig").read_bytes() == changes["models/fraud/model.sig"]
    # ... and a forged one in git is refused like one in the store
    key = generate_key(home.parent / "mallory.pem")
    forged = sign_model(model_files.onnx, key, bundle_path=home.parent / "forged.sig").read_bytes()
    changes = _promote(home, "prod")
    changes["models/fraud/model.sig"] = forged
    _push_to_main(home, changes)
    state = _state(home, "prod")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed" and "untrusted key" in state["reason"]


def test_refused_update_keeps_the_last_good_release(in_dev: str, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    """A new version whose signature does not cover its bytes: the application stays on 1.0.0, whole."""
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        head = ctx.workspace.head_of()
        model = ctx.workspace.read_file(head, "models/fraud/model.yaml")
        app = ctx.workspace.read_file(head, "apps/payments.yaml")
    assert model is not None and app is not None
    import hashlib

    other = model_files.onnx_v2
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    old_digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    new_model = model.replace(b"version: 1.0.0", b"version: 1.1.0").replace(old_digest.encode(), digest.encode())
    new_model = new_model.replace(model_files.onnx.as_uri().encode(), other.as_uri().encode())
    _push_to_main(home, {"models/fraud/model.yaml": new_model, "apps/payments.yaml": app.replace(b"fraud: 1.0.0", b"fraud: 1.1.0")})
    state = _state(home, "dev")["models"]["fraud"]  # type: ignore[index]
    assert state["state"] == "failed" and state["version"] == "1.0.0"
    assert "1.1.0" in state["reason"]
    release = json.loads((home / "deploy" / "dev" / "_releases" / "payments.json").read_text())
    assert release["models"] == {"fraud": "1.0.0"}
    assert (home / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx").exists()
