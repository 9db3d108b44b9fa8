"""A model that is a folder (the Hugging Face layout): kept file by file plus a file list,
scanned file by file, signed as a folder, deployed with its files. Through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.checks.folders import FolderError, parse_file_list
from tests.conftest import ModelFiles, Run
from tests.scan_samples import evil_pickle

CHECKS = ("manifest", "scan", "validate", "sign")


def hf_folder(root: Path) -> Path:
    """A small model folder as `huggingface-cli download` leaves it: config, tokenizer, weights."""
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["TinyModel"], "hidden_size": 2}))
    (root / "tokenizer" / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "WordLevel"}}))
    (root / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4))
    (root / ".git").mkdir()  # a clone's history is not the model
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def _create(aimodel: Run, folder: Path, data: Path, name: str = "tiny") -> int:
    number: int = aimodel("create", name, "--app", "chat", "--dataset", "prompts", "--artifact", str(folder),
                          "--dataset-uri", str(data), "--label-column", "label", "--as", "ada", "--json").json["pr"]
    return number


def _checks(aimodel: Run, number: int) -> dict[str, dict[str, str]]:
    checks: dict[str, dict[str, str]] = aimodel("pr", "show", str(number), "--json").json["checks"]
    return checks


def _manifest(home: Path, name: str, ref: str) -> dict[str, object]:
    text = subprocess.run(["git", "show", f"{ref}:models/{name}/model.yaml"], cwd=home / "repo.git",
                          capture_output=True, check=True, text=True).stdout
    doc: dict[str, object] = yaml.safe_load(text)
    return doc


def test_a_folder_model_is_kept_scanned_signed_and_deployed_with_its_files(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path
) -> None:
    folder = hf_folder(tmp_path / "tiny-model")
    number = _create(aimodel, folder, model_files.data)
    checks = _checks(aimodel, number)
    assert {n: c["state"] for n, c in checks.items()} == dict.fromkeys(CHECKS, "success"), checks
    assert "(folder of 4 files): clean" in checks["scan"]["details"]
    aimodel("pr", "merge", str(number), "--as", "ada")

    art = _manifest(home, "tiny", "main")["spec"]["versions"][-1]["artifact"]  # type: ignore[index]
    assert art["layout"] == "folder" and art["format"] == "safetensors" and art["source"] == folder.as_uri()
    assert art["size"] == sum(len(b) for b in _files(folder).values())
    # uri and sha256 name the stored file list; each file is stored by its own digest
    listed = (home / "artifacts" / "sha256" / art["sha256"]).read_bytes()
    assert hashlib.sha256(listed).hexdigest() == art["sha256"] and art["uri"] == f"store:sha256/{art['sha256']}"
    entries = {e.path: e for e in parse_file_list(listed)}
    assert sorted(entries) == sorted(_files(folder))  # .git left out
    for rel, data in _files(folder).items():
        assert (home / "artifacts" / "sha256" / entries[rel].sha256).read_bytes() == data
    assert (home / "artifacts" / "sha256" / f"{art['sha256']}.sig").is_file()  # the signature covers the folder
    assert aimodel("verify", "tiny").out.startswith("tiny: verified")

    # the source can go away: the folder is deployed from the store, every file verified
    expected = _files(folder)
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    deploy = aimodel("deploy", "tiny", "--env", "dev", "--as", "eve", "--json").json["pr"]
    aimodel("pr", "approve", str(deploy), "--as", "dev")
    aimodel("pr", "merge", str(deploy), "--as", "dev")
    deployed = home / "deploy" / "dev" / "tiny" / "1.0.0"
    assert _files(deployed / "model") == expected
    assert (deployed / "model.sig").read_bytes() == (home / "artifacts" / "sha256" / f"{art['sha256']}.sig").read_bytes()


def test_a_pickle_dropped_into_a_folder_fails_the_scan(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    folder = hf_folder(tmp_path / "tiny-model")
    marker = tmp_path / "PWNED"
    (folder / "tokenizer" / "extra.bin").write_bytes(evil_pickle(marker))
    number = _create(aimodel, folder, model_files.data)
    checks = _checks(aimodel, number)
    assert checks["scan"]["state"] == "failure"
    assert "system" in checks["scan"]["summary"] and "at byte" in checks["scan"]["summary"]
    assert checks["sign"]["state"] == "skipped" and not marker.exists()


def test_a_folder_tampered_in_the_store_is_refused(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    folder = hf_folder(tmp_path / "tiny-model")
    aimodel("pr", "merge", str(_create(aimodel, folder, model_files.data)), "--as", "ada")
    deploy = aimodel("deploy", "tiny", "--env", "dev", "--as", "eve", "--json").json["pr"]
    assert _checks(aimodel, deploy)["manifest"]["state"] == "success"
    # one stored file of the folder changes between the checks and the deploy
    weights = home / "artifacts" / "sha256" / hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    os.chmod(weights, 0o644)
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    aimodel("pr", "approve", str(deploy), "--as", "dev")
    merged = aimodel("pr", "merge", str(deploy), "--as", "dev", expect=1)
    assert f"the stored object sha256/{weights.name} does not match its digest" in merged.out
    assert not (home / "deploy" / "dev" / "tiny" / "1.0.0").exists()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "a\\b", "", "./x", "a//b"])
def test_a_file_list_naming_a_path_outside_the_folder_is_refused(path: str) -> None:
    doc = {"kind": "aimodel-gitops/file-list/v1", "files": [{"path": path, "sha256": "0" * 64, "size": 1}]}
    with pytest.raises(FolderError, match="leaves the folder"):
        parse_file_list(json.dumps(doc).encode())


def test_a_file_list_naming_a_file_and_a_folder_alike_is_refused() -> None:
    files = [{"path": "a", "sha256": "0" * 64, "size": 1}, {"path": "a/b", "sha256": "1" * 64, "size": 1}]
    with pytest.raises(FolderError, match="named twice"):
        parse_file_list(json.dumps({"kind": "aimodel-gitops/file-list/v1", "files": files}).encode())


def test_a_link_in_the_folder_is_judged_by_where_it_leads(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    folder = hf_folder(tmp_path / "tiny-model")
    secret = home / "secret.txt"  # inside the bot's home: no URI may reach it
    secret.write_text("not for a model\n")
    (folder / "notes.txt").symlink_to(secret)
    refused = aimodel("create", "tiny", "--app", "chat", "--dataset", "prompts", "--artifact", str(folder),
                      "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada", expect=1)
    assert "tiny-model/notes.txt does not exist or is not in an allowed source" in refused.err
    assert "Traceback" not in refused.err and "not for a model" not in refused.err
    (folder / "notes.txt").unlink()
    (folder / "weights").symlink_to(tmp_path, target_is_directory=True)
    refused = aimodel("create", "tiny", "--app", "chat", "--dataset", "prompts", "--artifact", str(folder),
                      "--dataset-uri", str(model_files.data), "--label-column", "label", "--as", "ada", expect=1)
    assert "holds a link to a folder (weights)" in refused.err


def test_a_data_set_stays_one_file(aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    rows.mkdir()
    refused = aimodel("create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model_files.onnx),
                      "--dataset-uri", str(rows), "--label-column", "label", "--as", "ada", expect=1)
    assert f"data set {rows.as_uri()} is a folder; a data set is one file" in refused.err


def test_a_folder_in_an_fsspec_store_comes_back_with_exactly_its_files(tmp_path: Path) -> None:
    import uuid

    from bot.checks.fetch import copy_folder_verified, describe_artifact
    from bot.manifests import Sources
    from bot.sources import Guard
    from bot.store import open_store

    pytest.importorskip("fsspec", reason="fsspec is the remote extra")
    folder = hf_folder(tmp_path / "tiny-model")
    store = open_store(f"memory://registry-{uuid.uuid4().hex}")
    art = describe_artifact(str(folder), "", Guard().for_main(Sources()), store)
    assert art.layout == "folder" and art.format == "safetensors" and store.exists(art.sha256)
    out = tmp_path / "deployed" / "model"
    copy_folder_verified(art.sha256, out, store)
    assert _files(out) == _files(folder)
    (out / "stray.pkl").write_bytes(b"left behind")  # a copy over an older one keeps no stray file
    copy_folder_verified(art.sha256, out, store)
    assert _files(out) == _files(folder)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no partial folder left
