"""Interoperability with OpenSSF model_signing 1.x (key method), in both directions.

model_signing is a test dependency only. Its 1.1 release imports pyOpenSSL (for the
certificate method) without declaring it; when pyOpenSSL is absent we give it an empty
stand-in module, which is enough for the key method these tests use.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from bot.checks import sign
from bot.checks.sign import SignatureError


def _import_model_signing() -> Any:
    with warnings.catch_warnings():
        # Whatever model_signing or its dependencies warn about at import time is not
        # ours to fix; keep the global "warnings are errors" setting for everything else.
        warnings.simplefilter("ignore")
        return importlib.import_module("model_signing")


ms = _import_model_signing()


def _ms_sign(model: Path, key: Path, signature: Path, ignore: list[str] | None = None) -> None:
    """Sign as `model_signing sign key MODEL --private_key KEY --signature SIG` does."""
    ignored = [Path(p) for p in ignore or []]
    if model.is_dir() and signature.resolve().is_relative_to(model.resolve()):
        ignored.append(signature.resolve().relative_to(model.resolve()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
            ms.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
        ).sign(model, signature)


def _ms_verify(model: Path, pub: Path, signature: Path) -> None:
    """Verify as `model_signing verify key MODEL --public_key PUB --signature SIG` does."""
    ignored = []
    if model.is_dir():
        try:
            ignored = [signature.resolve().relative_to(model.resolve())]
        except ValueError:
            ignored = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms.verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(
            ms.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
        ).verify(model, signature)


def _statement(bundle_path: Path) -> dict[str, Any]:
    data = json.loads(bundle_path.read_text())
    statement: dict[str, Any] = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
    return statement


@pytest.fixture(params=["P-256", "P-384"])
def key(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return sign.generate_key(tmp_path / f"{request.param}.pem", request.param)


def _pub_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    m = tmp_path / "my-model"
    (m / "a").mkdir(parents=True)
    (m / "a" / "b.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    (m / "a-c.txt").write_text("dash sorts before slash as a string")
    (m / "a.d").write_text("dot")
    (m / "Zed.json").write_text("{}")
    (m / "unicodé.txt").write_text("non-ASCII name")
    (m / "deep" / "er" / "still").mkdir(parents=True)
    (m / "deep" / "er" / "still" / "leaf").write_bytes(b"")
    (m / ".git").mkdir()
    (m / ".git" / "config").write_text("[core]\n")
    (m / ".gitignore").write_text("*.tmp\n")
    return m


def test_model_signing_verifies_our_folder_bundle(model_dir: Path, key: Path) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(key))
    _ms_verify(model_dir, _pub_path(key), bundle)


def test_model_signing_verifies_our_single_file_bundle(tmp_path: Path, key: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(os.urandom(5 * 1024 * 1024 + 1))
    bundle = sign.sign_model(f, sign.load_private_key(key))
    _ms_verify(f, _pub_path(key), bundle)


def test_model_signing_refuses_our_bundle_after_a_byte_flip(model_dir: Path, key: Path) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(key))
    data = bytearray((model_dir / "a" / "b.bin").read_bytes())
    data[len(data) // 2] ^= 0x80
    (model_dir / "a" / "b.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Hash mismatch for") as err:
        _ms_verify(model_dir, _pub_path(key), bundle)
    assert "a/b.bin" in str(err.value)  # (its message is a list's repr: quoting varies)


def test_we_verify_model_signing_folder_bundle(model_dir: Path, key: Path) -> None:
    bundle = model_dir / "model.sig"
    _ms_sign(model_dir, key, bundle)
    result = sign.verify_model(model_dir, bundle, [sign.load_public_key(_pub_path(key))])
    assert result.key_fingerprint == sign.public_key_fingerprint(sign.load_private_key(key))
    assert result.model_name == "my-model"
    assert set(result.digests) == {
        "a/b.bin",
        "a-c.txt",
        "a.d",
        "Zed.json",
        "unicodé.txt",
        "deep/er/still/leaf",
    }
    assert result.root_digest == _statement(bundle)["subject"][0]["digest"]["sha256"]


def test_we_verify_model_signing_single_file_bundle(tmp_path: Path, key: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"\x08\x07" * 4096)
    bundle = tmp_path / "model.onnx.sig"
    _ms_sign(f, key, bundle)
    result = sign.verify_model(f, bundle, [sign.load_public_key(_pub_path(key))])
    assert list(result.digests) == ["."]


def test_we_refuse_model_signing_bundle_on_tampering(model_dir: Path, key: Path) -> None:
    bundle = model_dir / "model.sig"
    _ms_sign(model_dir, key, bundle)
    pub = [sign.load_public_key(_pub_path(key))]
    (model_dir / "a.d").write_text("dOt")
    with pytest.raises(SignatureError, match=r"file a\.d differs from the signed digest"):
        sign.verify_model(model_dir, bundle, pub)
    (model_dir / "a.d").write_text("dot")
    (model_dir / "deep" / "extra.bin").write_bytes(b"x")
    with pytest.raises(SignatureError, match=r"extra file deep/extra\.bin not covered"):
        sign.verify_model(model_dir, bundle, pub)
    (model_dir / "deep" / "extra.bin").unlink()
    (model_dir / "Zed.json").unlink()
    with pytest.raises(SignatureError, match=r"file Zed\.json is missing"):
        sign.verify_model(model_dir, bundle, pub)


def test_we_refuse_model_signing_bundle_from_another_key(
    model_dir: Path, key: Path, tmp_path: Path
) -> None:
    bundle = model_dir / "model.sig"
    _ms_sign(model_dir, key, bundle)
    other = sign.generate_key(tmp_path / "other.pem")
    with pytest.raises(SignatureError, match="signed by an untrusted key"):
        sign.verify_model(model_dir, bundle, [sign.load_public_key(_pub_path(other))])


def test_same_manifest_and_root_digest_as_model_signing(
    model_dir: Path, key: Path, tmp_path: Path
) -> None:
    """Same resources (names, order, digests), same subject, same ignore paths."""
    theirs_path = tmp_path / "theirs.sig"
    _ms_sign(model_dir, key, theirs_path)
    ours_path = sign.sign_model(
        model_dir, sign.load_private_key(key), bundle_path=tmp_path / "o.sig"
    )
    theirs, ours = _statement(theirs_path), _statement(ours_path)
    assert ours["_type"] == theirs["_type"]
    assert ours["predicateType"] == theirs["predicateType"]
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    their_ser = dict(theirs["predicate"]["serialization"])
    our_ser = dict(ours["predicate"]["serialization"])
    assert sorted(their_ser.pop("ignore_paths")) == our_ser.pop("ignore_paths")
    assert our_ser == their_ser
    their_bundle = json.loads(theirs_path.read_text())
    our_bundle = json.loads(ours_path.read_text())
    assert our_bundle["verificationMaterial"] == their_bundle["verificationMaterial"]
    assert list(our_bundle) == list(their_bundle)
    assert list(our_bundle["dsseEnvelope"]) == list(their_bundle["dsseEnvelope"])


def test_same_single_file_manifest_as_model_signing(tmp_path: Path, key: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(100_000))
    _ms_sign(f, key, tmp_path / "theirs.sig")
    ours = _statement(sign.sign_model(f, sign.load_private_key(key)))
    theirs = _statement(tmp_path / "theirs.sig")
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    assert sorted(theirs["predicate"]["serialization"]["ignore_paths"]) == sorted(
        ours["predicate"]["serialization"]["ignore_paths"]
    )


def test_hash_model_matches_model_signing_hash(model_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = ms.hashing.hash(model_dir)
    theirs = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    assert sign.hash_model(model_dir) == theirs
    assert list(sign.hash_model(model_dir)) == list(theirs)


# --------------------------------------------------------------------------------------
# by shard (model_signing's "shards" serialization)

MIB = 1 << 20


def _ms_sign_shards(model: Path, key: Path, signature: Path, shard_size: int) -> None:
    """Sign as model_signing's library does with `use_shard_serialization(shard_size=...)`."""
    ignored = []
    if model.is_dir() and signature.resolve().is_relative_to(model.resolve()):
        ignored.append(signature.resolve().relative_to(model.resolve()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = ms.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
        ms.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
            config.use_shard_serialization(shard_size=shard_size)
        ).sign(model, signature)


def _ms_verify_as_signed(model: Path, pub: Path, signature: Path) -> None:
    """Verify with model_signing's library, letting it read the serialization from the bundle.

    (Its `verify key` command line cannot do this: it always hashes by file.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(model, signature)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture()
def big_model(tmp_path: Path) -> Path:
    m = tmp_path / "sharded-model"
    (m / "a").mkdir(parents=True)
    (m / "a" / "w.bin").write_bytes(os.urandom(2 * MIB + MIB // 3))  # 3 shards, a short last
    (m / "a-c.bin").write_bytes(os.urandom(MIB))  # exactly one shard
    (m / "Zed.json").write_text("{}")
    (m / ".git").mkdir()
    (m / ".git" / "config").write_text("[core]\n")
    return m


def test_model_signing_verifies_our_shard_bundles(
    big_model: Path, key: Path, tmp_path: Path
) -> None:
    bundle = sign.sign_model(big_model, key, serialization="shards", shard_size=MIB)
    assert _statement(bundle)["predicate"]["serialization"]["method"] == "shards"
    _ms_verify_as_signed(big_model, _pub_path(key), bundle)

    f = tmp_path / "one.safetensors"
    f.write_bytes(os.urandom(3 * MIB + 5))
    single = sign.sign_model(f, key, serialization="shards", shard_size=MIB)
    _ms_verify_as_signed(f, _pub_path(key), single)
    _flip(f, MIB + MIB // 2)  # the middle of the second shard
    with pytest.raises(ValueError, match="Signature mismatch") as err:
        _ms_verify_as_signed(f, _pub_path(key), single)
    assert f".:{MIB}:{2 * MIB}" in str(err.value)


def test_model_signing_verifies_our_auto_bundle_of_one_large_file(
    tmp_path: Path, key: Path
) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(os.urandom(4 * MIB))
    bundle = sign.sign_model(f, key, shard_size=MIB, max_workers=2)
    assert len(_statement(bundle)["predicate"]["resources"]) == 4
    _ms_verify_as_signed(f, _pub_path(key), bundle)


def test_we_verify_model_signing_shard_bundles(big_model: Path, key: Path, tmp_path: Path) -> None:
    bundle = big_model / "model.sig"
    _ms_sign_shards(big_model, key, bundle, MIB)
    # model_signing writes the statement through a protobuf Struct: the size is a double
    assert _statement(bundle)["predicate"]["serialization"]["shard_size"] == float(MIB)
    pub = [sign.load_public_key(_pub_path(key))]
    result = sign.verify_model(big_model, bundle, pub)
    assert (result.serialization, result.shard_size) == ("shards", MIB)
    assert result.files == ["Zed.json", "a/w.bin", "a-c.bin"]
    assert result.root_digest == _statement(bundle)["subject"][0]["digest"]["sha256"]
    _flip(big_model / "a" / "w.bin", 2 * MIB + 100)  # inside the short last shard
    with pytest.raises(SignatureError) as err:
        sign.verify_model(big_model, bundle, pub)
    assert err.value.reasons == ["file a/w.bin differs from the signed digest"]

    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(MIB * 5 // 2))
    _ms_sign_shards(f, key, tmp_path / "w.bin.sig", MIB)
    assert sign.verify_model(f, tmp_path / "w.bin.sig", pub).files == ["."]
    _flip(f, MIB // 2)
    with pytest.raises(SignatureError, match=r"file w\.bin differs from the signed digest"):
        sign.verify_model(f, tmp_path / "w.bin.sig", pub)


def test_same_shard_manifest_as_model_signing(big_model: Path, key: Path, tmp_path: Path) -> None:
    """Same shard names, order, algorithm, digests and subject for the same shard size."""
    _ms_sign_shards(big_model, key, tmp_path / "theirs.sig", MIB)
    ours_path = sign.sign_model(
        big_model, key, bundle_path=tmp_path / "ours.sig", serialization="shards", shard_size=MIB
    )
    theirs, ours = _statement(tmp_path / "theirs.sig"), _statement(ours_path)
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    their_ser = dict(theirs["predicate"]["serialization"])
    our_ser = dict(ours["predicate"]["serialization"])
    assert sorted(their_ser.pop("ignore_paths")) == our_ser.pop("ignore_paths")
    assert our_ser == their_ser  # (MIB == float(MIB))
    assert isinstance(our_ser["shard_size"], int)


def test_model_signing_command_line_verifies_by_file_only(
    big_model: Path, key: Path, tmp_path: Path
) -> None:
    """Why "auto" keeps by-file signatures where shards gain nothing.

    `model_signing verify key` (1.1) hashes by file whatever the bundle says, so it accepts
    our by-file bundles and refuses every shard bundle, model_signing's own included.
    """
    pub = str(_pub_path(key))

    def cli(signature: Path) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "model_signing", "verify", "key", str(big_model)]
        cmd += ["--signature", str(signature), "--public_key", pub]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    by_file = sign.sign_model(
        big_model, key, bundle_path=tmp_path / "files.sig", serialization="files"
    )
    ok = cli(by_file)
    assert ok.returncode == 0, ok.stderr
    assert "Verification succeeded" in ok.stdout
    ours = sign.sign_model(
        big_model, key, bundle_path=tmp_path / "ours.sig", serialization="shards", shard_size=MIB
    )
    _ms_sign_shards(big_model, key, tmp_path / "theirs.sig", MIB)
    for bundle in (ours, tmp_path / "theirs.sig"):
        refused = cli(bundle)
        assert refused.returncode == 1
        assert "Signature mismatch" in refused.stderr
