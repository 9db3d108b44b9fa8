"""The configuration and vocabulary files of a model folder (Hugging Face layout) are data:
JSON and plain text are clean by name and content; code, binary look-alikes and polyglots are not."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from bot.checks.scan import scan_paths
from tests.scan_samples import evil_pickle


def _scan(path: Path) -> tuple[str, str, str | None]:
    [report] = scan_paths([str(path)]).files
    return report.format, report.status, report.error


def test_a_model_folders_text_files_are_clean(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.numpy", reason="safetensors is a test dependency")
    import numpy as np

    folder = tmp_path / "tiny"
    folder.mkdir()
    safetensors.save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "hidden_size": 2}, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, "unk_token": "[UNK]"}))
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\nhéllo\n")
    (folder / "merges.txt").write_text("#version: 0.2\nh e\n")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Tiny\n")
    report = scan_paths([str(folder)])
    assert report.ok, [(f.path, f.status, f.error) for f in report.files]
    assert sorted(f.format for f in report.files) == ["json", "json", "safetensors", "text", "text", "text"]


def test_code_and_look_alikes_stay_blocked(tmp_path: Path) -> None:
    code = tmp_path / "modeling_tiny.py"  # transformers runs it with trust_remote_code
    code.write_text("import os\nos.system('id')\n")
    assert _scan(code)[1] == "blocked"
    broken = tmp_path / "config.json"
    broken.write_text('{"not": json')
    assert _scan(broken)[1] == "blocked"
    binary = tmp_path / "vocab.txt"
    binary.write_bytes(b"[PAD]\x00\xff\xfe")
    assert _scan(binary)[1] == "blocked"
    pickle0 = tmp_path / "notes.txt"  # protocol-0 pickle text: read as the pickle it is
    pickle0.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    fmt, status, _ = _scan(pickle0)
    assert fmt == "pickle" and status != "clean"


def test_json_with_an_archive_behind_it_is_not_clean(tmp_path: Path) -> None:
    """Python's zipfile reads an archive after any prefix: config.json = JSON + a zip holding a
    pickle would load as both. (A zip's end record holds NUL bytes, which no text file here has.)"""
    import io

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", evil_pickle(tmp_path / "PWNED"))
    config = tmp_path / "config.json"
    config.write_bytes(json.dumps({"hidden_size": 2}).encode() + archive.getvalue())
    [report] = scan_paths([str(config)]).files
    assert report.status == "findings" and report.format == "torch"  # the archive a torch.load would read
    assert any("system" in f.name for f in report.findings) and not (tmp_path / "PWNED").exists()
