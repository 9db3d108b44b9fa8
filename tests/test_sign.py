"""Signing and verification of model artifacts (bot/checks/sign.py), without model_signing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bot.checks import hashing, sign
from bot.checks.model_manifest import ModelFile, choose_method
from bot.checks.sign import SignatureError

# --------------------------------------------------------------------------------------
# helpers and fixtures


def _payload(bundle: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


def _read_statement(bundle_path: Path) -> dict[str, Any]:
    return _payload(json.loads(bundle_path.read_text()))


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "keys"
    d.mkdir()
    return {
        "trusted": sign.generate_key(d / "trusted.pem"),
        "other": sign.generate_key(d / "other.pem"),
        "p384": sign.generate_key(d / "p384.pem", "P-384"),
    }


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    (m / "weights").mkdir(parents=True)
    (m / "weights" / "w0.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (m / "weights" / "w1.bin").write_bytes(b"\x00" * 1000)
    (m / "config.json").write_text('{"layers": 3}')
    (m / "README.md").write_text("readme")
    (m / "empty").write_bytes(b"")
    (m / ".git").mkdir()
    (m / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (m / ".gitattributes").write_text("*.bin filter=lfs\n")
    return m


def _pub(keys: dict[str, Path], name: str) -> sign.PublicKey:
    return sign.load_public_key(Path(str(keys[name]) + ".pub"))


# --------------------------------------------------------------------------------------
# keys


def test_generate_key_writes_private_0600_and_public(tmp_path: Path) -> None:
    path = sign.generate_key(tmp_path / "k.pem")
    assert path == tmp_path / "k.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    pub = tmp_path / "k.pem.pub"
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    priv = sign.load_private_key(path)
    assert isinstance(priv.curve, ec.SECP256R1)
    assert sign.public_key_fingerprint(priv) == sign.public_key_fingerprint(
        sign.load_public_key(pub)
    )


def test_generate_key_refuses_to_overwrite_and_rejects_unknown_curve(tmp_path: Path) -> None:
    path = sign.generate_key(tmp_path / "k.pem", "P-384")
    assert isinstance(sign.load_private_key(path).curve, ec.SECP384R1)
    with pytest.raises(FileExistsError):
        sign.generate_key(path)
    sign.generate_key(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="unknown curve"):
        sign.generate_key(tmp_path / "x.pem", "secp256k1")


def test_fingerprint_is_sha256_of_der_spki(keys: dict[str, Path]) -> None:
    priv = sign.load_private_key(keys["trusted"])
    der = priv.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert sign.public_key_fingerprint(priv) == hashlib.sha256(der).hexdigest()
    assert sign.public_key_fingerprint(priv.public_key()) == hashlib.sha256(der).hexdigest()


def test_load_public_key_from_path_bytes_text_and_private_pem(keys: dict[str, Path]) -> None:
    pub_path = Path(str(keys["trusted"]) + ".pub")
    want = sign.public_key_fingerprint(sign.load_public_key(pub_path))
    assert sign.public_key_fingerprint(sign.load_public_key(str(pub_path))) == want
    assert sign.public_key_fingerprint(sign.load_public_key(pub_path.read_bytes())) == want
    assert sign.public_key_fingerprint(sign.load_public_key(pub_path.read_text())) == want
    assert sign.public_key_fingerprint(sign.load_public_key(keys["trusted"])) == want


def test_load_key_errors_say_why(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="does not exist"):
        sign.load_private_key(tmp_path / "nope.pem")
    with pytest.raises(SignatureError, match="does not exist"):
        sign.load_public_key(tmp_path / "nope.pub")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(SignatureError, match="not a PEM private key"):
        sign.load_private_key(junk)
    with pytest.raises(SignatureError, match="not a PEM public key"):
        sign.load_public_key(junk)
    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SignatureError, match="not an elliptic-curve key"):
        sign.load_private_key(rsa_pem)
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_pem = ed.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SignatureError, match="not an elliptic-curve key"):
        sign.load_public_key(ed_pem)
    k1 = ec.generate_private_key(ec.SECP256K1())
    k1_pem = tmp_path / "k1.pem"
    k1_pem.write_bytes(
        k1.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SignatureError, match="unsupported key curve"):
        sign.load_private_key(k1_pem)
    enc = tmp_path / "enc.pem"
    enc.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(SignatureError, match="password"):
        sign.load_private_key(enc)
    assert isinstance(sign.load_private_key(enc, password=b"pw"), ec.EllipticCurvePrivateKey)


# --------------------------------------------------------------------------------------
# signing a folder and a file


def test_sign_and_verify_folder(model_dir: Path, keys: dict[str, Path]) -> None:
    key = sign.load_private_key(keys["trusted"])
    bundle = sign.sign_model(model_dir, key)
    assert bundle == model_dir / "model.sig"
    result = sign.verify_model(model_dir, bundle, [_pub(keys, "other"), _pub(keys, "trusted")])
    assert result.key_fingerprint == sign.public_key_fingerprint(key)
    assert result.model_name == "model"
    assert list(result.digests) == [
        "README.md",
        "config.json",
        "empty",
        "weights/w0.bin",
        "weights/w1.bin",
    ]
    for name, digest in result.digests.items():
        assert digest == hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    root = hashlib.sha256(b"".join(bytes.fromhex(d) for d in result.digests.values()))
    assert result.root_digest == root.hexdigest()
    assert result.files == list(result.digests)


def test_bundle_layout_matches_model_signing(model_dir: Path, keys: dict[str, Path]) -> None:
    key = sign.load_private_key(keys["trusted"])
    bundle_path = sign.sign_model(model_dir, key, ignore=["README.md"])
    raw = bundle_path.read_text()
    assert not raw.endswith("\n") and ", " not in raw  # compact JSON, as model_signing writes
    bundle = json.loads(raw)
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": hashlib.sha256(pem).hexdigest()},
        "tlogEntries": [],
    }
    env = bundle["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert len(env["signatures"]) == 1 and env["signatures"][0]["keyid"] == ""
    payload = base64.b64decode(env["payload"])
    statement = json.loads(payload)
    assert payload == json.dumps(statement, indent=2).encode()  # MessageToJson's shape
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [
            ".git",
            ".gitattributes",
            ".github",
            ".gitignore",
            "README.md",
            "model.sig",
        ],
    }
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["config.json", "empty", "weights/w0.bin", "weights/w1.bin"]
    assert all(r["algorithm"] == "sha256" for r in statement["predicate"]["resources"])
    # DSSE PAE, ECDSA over SHA-256, DER signature, base64
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    key.public_key().verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256())
    )
    # README.md is left out by the signer, so the verifier must leave it out as well: it is
    # recorded in the bundle, and verification honours it even after README.md changes.
    (model_dir / "README.md").write_text("changed")
    sign.verify_model(model_dir, bundle_path, [key.public_key()])


def test_resources_sorted_like_purepath_and_root_digest(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    m = tmp_path / "m"
    (m / "a").mkdir(parents=True)
    (m / "a" / "b").write_text("1")
    (m / "a-c").write_text("2")
    (m / "a.d").write_text("3")
    (m / "B").write_text("4")
    bundle = sign.sign_model(m, sign.load_private_key(keys["trusted"]))
    statement = _read_statement(bundle)
    resources = statement["predicate"]["resources"]
    # component-wise order ("a" < "a-c"), not plain string order ("a-c" < "a/b")
    assert [r["name"] for r in resources] == ["B", "a/b", "a-c", "a.d"]
    want = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert statement["subject"] == [{"name": "m", "digest": {"sha256": want}}]


def test_sign_single_file(tmp_path: Path, keys: dict[str, Path]) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx" * 1000)
    bundle = sign.sign_model(f, sign.load_private_key(keys["p384"]))
    assert bundle == tmp_path / "model.onnx.sig"
    statement = _read_statement(bundle)
    assert statement["subject"][0]["name"] == "model.onnx"
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert statement["predicate"]["resources"] == [
        {"name": ".", "algorithm": "sha256", "digest": digest}
    ]
    result = sign.verify_model(f, bundle, [_pub(keys, "p384")])
    assert result.digests == {".": digest}
    assert result.root_digest == hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    f.write_bytes(b"onnx" * 999 + b"onnX")
    with pytest.raises(SignatureError, match=r"file model\.onnx differs from the signed digest"):
        sign.verify_model(f, bundle, [_pub(keys, "p384")])


def test_p384_signature_uses_sha384(tmp_path: Path, keys: dict[str, Path]) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"x")
    bundle = json.loads(sign.sign_model(f, sign.load_private_key(keys["p384"])).read_text())
    env = bundle["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    _pub(keys, "p384").verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA384())
    )


def test_bundle_outside_the_model_and_keys_given_as_paths(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sigs" / "m.sig"
    assert sign.sign_model(model_dir, keys["trusted"], bundle_path=out) == out
    statement = _read_statement(out)
    assert "model.sig" not in statement["predicate"]["serialization"]["ignore_paths"]
    sign.verify_model(model_dir, out, [Path(str(keys["trusted"]) + ".pub")])
    sign.verify_model(model_dir, out, [(Path(str(keys["trusted"]) + ".pub")).read_text()])


def test_git_files_and_own_bundle_are_not_signed(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    names = {r["name"] for r in _read_statement(bundle)["predicate"]["resources"]}
    assert not any(n.startswith(".git") or n == "model.sig" for n in names)
    # changing git metadata or re-writing the bundle name does not break verification
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    (model_dir / ".gitignore").write_text("*.tmp\n")
    sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


def test_symlink_is_refused(model_dir: Path, keys: dict[str, Path]) -> None:
    (model_dir / "link.bin").symlink_to(model_dir / "weights" / "w1.bin")
    with pytest.raises(SignatureError, match=re.escape("link.bin is a symbolic link")):
        sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))


def test_missing_model_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(SignatureError, match="does not exist"):
        sign.sign_model(tmp_path / "nope", sign.load_private_key(keys["trusted"]))


def test_hash_model_many_small_and_some_large_files(tmp_path: Path) -> None:
    m = tmp_path / "m"
    m.mkdir()
    want = {}
    for i in range(300):
        data = os.urandom(i * 7)
        (m / f"f{i:03d}").write_bytes(data)
        want[f"f{i:03d}"] = hashlib.sha256(data).hexdigest()
    for i in range(3):
        data = os.urandom(9 * 1024 * 1024 + i)  # > one 4 MiB block, > the small-file limit
        (m / f"big{i}").write_bytes(data)
        want[f"big{i}"] = hashlib.sha256(data).hexdigest()
    assert sign.hash_model(m) == want
    assert sign.hash_model(m, max_workers=1) == want


# --------------------------------------------------------------------------------------
# what deploy refuses


def test_refuses_missing_bundle(model_dir: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(SignatureError, match="no bundle"):
        sign.verify_model(model_dir, model_dir / "model.sig", [_pub(keys, "trusted")])


def test_refuses_untrusted_key(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["other"]))
    with pytest.raises(SignatureError, match="signed by an untrusted key"):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted"), _pub(keys, "p384")])
    with pytest.raises(SignatureError, match="no trusted public key"):
        sign.verify_model(model_dir, bundle, [])


def test_refuses_untrusted_key_without_hint(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["other"]))
    data = json.loads(bundle.read_text())
    data["verificationMaterial"]["publicKey"] = {}  # older model_signing wrote no hint
    bundle.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match="signed by an untrusted key"):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])
    sign.verify_model(model_dir, bundle, [_pub(keys, "trusted"), _pub(keys, "other")])


def test_refuses_forged_hint(model_dir: Path, keys: dict[str, Path]) -> None:
    """Claiming the trusted key's hint does not help a signature made by another key."""
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["other"]))
    data = json.loads(bundle.read_text())
    trusted = json.loads(
        sign.sign_model(
            model_dir, keys["trusted"], bundle_path=model_dir.parent / "t.sig"
        ).read_text()
    )
    data["verificationMaterial"] = trusted["verificationMaterial"]
    bundle.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match="altered"):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_refuses_one_byte_flip_in_a_large_file(
    tmp_path: Path, keys: dict[str, Path], where: str
) -> None:
    m = tmp_path / "big"
    m.mkdir()
    size = 40 * 1024 * 1024 + 5  # several 4 MiB read blocks, and a partial last one
    (m / "weights.bin").write_bytes(os.urandom(size))
    (m / "config.json").write_text("{}")
    bundle = sign.sign_model(m, sign.load_private_key(keys["trusted"]))
    sign.verify_model(m, bundle, [_pub(keys, "trusted")])
    offset = {"first": 0, "middle": size // 2 + 12345, "last": size - 1}[where]
    with open(m / "weights.bin", "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(SignatureError) as err:
        sign.verify_model(m, bundle, [_pub(keys, "trusted")])
    assert str(err.value) == "file weights.bin differs from the signed digest"
    assert err.value.reasons == ["file weights.bin differs from the signed digest"]


def test_refuses_inconsistent_root_digest(model_dir: Path, keys: dict[str, Path]) -> None:
    """Even a trusted key's bundle is refused when its resources do not add up to its subject."""
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    statement = _read_statement(bundle)
    statement["subject"][0]["digest"]["sha256"] = "00" * 32
    forged = sign._make_bundle(statement, sign.load_private_key(keys["trusted"]))
    bundle.write_text(json.dumps(forged))
    with pytest.raises(SignatureError, match="do not add up to the signed root digest"):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


def test_refuses_added_file(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    (model_dir / "weights" / "w2.bin").write_bytes(b"new")
    with pytest.raises(
        SignatureError, match=re.escape("extra file weights/w2.bin not covered by the signature")
    ):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


def test_refuses_removed_file(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    (model_dir / "weights" / "w1.bin").unlink()
    with pytest.raises(SignatureError, match=re.escape("file weights/w1.bin is missing")):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


def test_refuses_renamed_empty_file_and_reports_every_problem(
    model_dir: Path, keys: dict[str, Path]
) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    (model_dir / "empty").rename(model_dir / "empty2")
    (model_dir / "config.json").write_text('{"layers": 4}')
    with pytest.raises(SignatureError) as err:
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])
    assert err.value.reasons == [
        "file empty is missing",
        "extra file empty2 not covered by the signature",
        "file config.json differs from the signed digest",
    ]


def test_ignore_at_verify_time_hides_a_file(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    (model_dir / "notes.txt").write_text("local notes")
    sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")], ignore=["notes.txt"])


def test_refuses_tampered_payload(model_dir: Path, keys: dict[str, Path]) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    data = json.loads(bundle.read_text())
    statement = _payload(data)
    statement["predicate"]["resources"] = statement["predicate"]["resources"][1:]
    data["dsseEnvelope"]["payload"] = base64.b64encode(
        json.dumps(statement, indent=2).encode()
    ).decode()
    bundle.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match="altered"):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(mediaType="application/json"), "unsupported bundle media type"),
        (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope is missing"),
        (
            lambda b: b.update(verificationMaterial={"certificate": {"rawBytes": "AA=="}}),
            "not signed with a key",
        ),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "no signature"),
        (lambda b: b["dsseEnvelope"].update(payload="%%%"), "not base64"),
        (lambda b: b["dsseEnvelope"].update(payloadType="text/plain"), "payload type"),
    ],
)
def test_refuses_malformed_bundles(
    model_dir: Path, keys: dict[str, Path], mutate: Any, message: str
) -> None:
    bundle = sign.sign_model(model_dir, sign.load_private_key(keys["trusted"]))
    data = json.loads(bundle.read_text())
    mutate(data)
    bundle.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match=message):
        sign.verify_model(model_dir, bundle, [_pub(keys, "trusted")])


def test_refuses_bundle_that_is_not_json(model_dir: Path, keys: dict[str, Path]) -> None:
    (model_dir / "model.sig").write_text("garbage")
    with pytest.raises(SignatureError, match="not JSON"):
        sign.verify_model(model_dir, model_dir / "model.sig", [_pub(keys, "trusted")])


def test_refuses_an_attestation_as_a_model_signature(
    model_dir: Path, keys: dict[str, Path]
) -> None:
    att = sign.sign_attestation("ab" * 32, "model", "https://example.com/x", {}, keys["trusted"])
    (model_dir / "model.sig").write_text(json.dumps(att))
    with pytest.raises(SignatureError, match="not a model signature"):
        sign.verify_model(model_dir, model_dir / "model.sig", [_pub(keys, "trusted")])


# --------------------------------------------------------------------------------------
# attestations of check results


def _reports() -> dict[str, Any]:
    return {
        "scan": {"status": "passed", "findings": []},
        "validate": {
            "status": "passed",
            "sla": {"accuracy>=0.9": True, "latency_p95_ms<=50": True},
        },
    }


def test_attestation_round_trip(tmp_path: Path, keys: dict[str, Path]) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"bytes of the model")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    key = sign.load_private_key(keys["trusted"])
    bundle = sign.sign_attestation(
        digest, "model.onnx", sign.CHECK_RESULTS_PREDICATE_TYPE, _reports(), key
    )
    assert bundle["mediaType"] == sign.BUNDLE_MEDIA_TYPE
    statement = _payload(bundle)
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model.onnx", "digest": {"sha256": digest}}],
        "predicateType": "https://aimodel-gitops.dev/check-results/v1",
        "predicate": _reports(),
    }
    trusted = [_pub(keys, "trusted")]
    assert sign.verify_attestation(bundle, trusted) == _reports()
    assert (
        sign.verify_attestation(
            json.dumps(bundle),
            trusted,
            subject_digest=f"sha256:{digest}",
            predicate_type=sign.CHECK_RESULTS_PREDICATE_TYPE,
        )
        == _reports()
    )


def test_attestation_refusals(keys: dict[str, Path]) -> None:
    digest = "0f" * 32
    bundle = sign.sign_attestation(
        f"sha256:{digest}", "m", sign.CHECK_RESULTS_PREDICATE_TYPE, _reports(), keys["trusted"]
    )
    trusted = [_pub(keys, "trusted")]
    with pytest.raises(SignatureError, match="untrusted key"):
        sign.verify_attestation(bundle, [_pub(keys, "other")])
    with pytest.raises(SignatureError, match="about other bytes"):
        sign.verify_attestation(bundle, trusted, subject_digest="1f" * 32)
    with pytest.raises(SignatureError, match=re.escape("expected 'https://example.com/other'")):
        sign.verify_attestation(bundle, trusted, predicate_type="https://example.com/other")
    with pytest.raises(SignatureError, match="no bundle"):
        sign.verify_attestation({}, trusted)
    forged = json.loads(json.dumps(bundle))
    statement = _payload(forged)
    statement["predicate"]["scan"]["status"] = "failed-but-hidden"
    forged["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError, match="altered"):
        sign.verify_attestation(forged, trusted)
    with pytest.raises(SignatureError, match="sha256 hex digest"):
        sign.sign_attestation("md5:abc", "m", "t", {}, keys["trusted"])


# --------------------------------------------------------------------------------------
# CLI verbs


def test_run_sign_and_verify_commands(
    model_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sign.run_sign_command(str(model_dir), key=str(keys["trusted"]), bundle=None) == 0
    out = capsys.readouterr().out
    assert f"signed {model_dir}: 5 files" in out
    assert f"bundle written to {model_dir / 'model.sig'}" in out
    pub = str(keys["trusted"]) + ".pub"
    bundle = str(model_dir / "model.sig")
    assert sign.run_verify_command(str(model_dir), bundle=bundle, public_key=pub) == 0
    assert "verified" in capsys.readouterr().out
    (model_dir / "config.json").write_text("{}")
    assert sign.run_verify_command(str(model_dir), bundle=bundle, public_key=pub) == 1
    assert "REFUSED" in (out := capsys.readouterr().out) and "config.json differs" in out
    other = str(keys["other"]) + ".pub"
    assert sign.run_verify_command(str(model_dir), bundle=bundle, public_key=other) == 1
    assert "untrusted key" in capsys.readouterr().out


def test_run_commands_usage_errors(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(keys["trusted"])
    pub = key + ".pub"
    assert sign.run_sign_command(str(tmp_path / "nope"), key=key, bundle=None) == 2
    assert sign.run_sign_command(str(model_dir), key=str(tmp_path / "no.pem"), bundle=None) == 2
    assert sign.run_sign_command(str(model_dir), key="", bundle=None) == 2
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    assert sign.run_sign_command(str(model_dir), key=str(bad), bundle=None) == 2
    assert "not a PEM private key" in capsys.readouterr().err
    (model_dir / "link").symlink_to(model_dir / "config.json")
    assert sign.run_sign_command(str(model_dir), key=key, bundle=None) == 1
    assert "not signed: link is a symbolic link" in capsys.readouterr().err
    (model_dir / "link").unlink()
    out = tmp_path / "out.sig"
    assert sign.run_sign_command(str(model_dir), key=key, bundle=str(out)) == 0
    assert out.exists()
    assert sign.run_verify_command(str(model_dir), bundle=str(tmp_path / "x"), public_key=pub) == 2
    assert sign.run_verify_command(str(tmp_path / "x"), bundle=str(out), public_key=pub) == 2
    assert sign.run_verify_command(str(model_dir), bundle=str(out), public_key=str(bad)) == 2
    assert "does not exist" in capsys.readouterr().err


def test_module_import_stays_light() -> None:
    code = (
        "import sys, bot.checks.sign\n"
        "heavy = [m for m in ('slack_sdk', 'slack_bolt', 'github', 'flask', 'huey', 'numpy',"
        " 'model_signing', 'sigstore') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


# --------------------------------------------------------------------------------------
# by shard: one large file on every core (model_signing's "shards" serialization)

MIB = 1 << 20


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_shard_bundle_layout(tmp_path: Path, keys: dict[str, Path]) -> None:
    m = tmp_path / "m"
    (m / "sub").mkdir(parents=True)
    data = os.urandom(2 * MIB + MIB // 2)  # not a multiple of the shard size
    (m / "sub" / "w.bin").write_bytes(data)
    (m / "a.txt").write_text("small")
    bundle = sign.sign_model(
        m, keys["trusted"], serialization="shards", shard_size=MIB, max_workers=2
    )
    statement = _read_statement(bundle)
    assert statement["predicate"]["serialization"] == {
        "method": "shards",
        "hash_type": "sha256",
        "shard_size": MIB,
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
    }
    ranges = [(0, MIB), (MIB, 2 * MIB), (2 * MIB, len(data))]
    want = [
        {
            "name": "a.txt:0:5",
            "algorithm": f"sha256-sharded-{MIB}",
            "digest": hashlib.sha256(b"small").hexdigest(),
        }
    ] + [
        {
            "name": f"sub/w.bin:{s}:{e}",
            "algorithm": f"sha256-sharded-{MIB}",
            "digest": hashlib.sha256(data[s:e]).hexdigest(),
        }
        for s, e in ranges
    ]
    assert statement["predicate"]["resources"] == want
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in want)).hexdigest()
    assert statement["subject"] == [{"name": "m", "digest": {"sha256": root}}]

    result = sign.verify_model(m, bundle, [_pub(keys, "trusted")], max_workers=2)
    assert result.serialization == "shards" and result.shard_size == MIB
    assert result.files == ["a.txt", "sub/w.bin"]
    assert result.digests == {r["name"]: r["digest"] for r in want}
    assert result.root_digest == root


@pytest.mark.parametrize("offset", [MIB + MIB // 2, MIB - 1, 2 * MIB, 3 * MIB + 6])
def test_shard_bundle_refuses_one_byte_change(
    tmp_path: Path, keys: dict[str, Path], offset: int
) -> None:
    """In the middle of a shard, at a shard's last and first byte, in the short last shard."""
    f = tmp_path / "model.safetensors"
    f.write_bytes(os.urandom(3 * MIB + 7))
    bundle = sign.sign_model(f, keys["trusted"], serialization="shards", shard_size=MIB)
    assert len(_read_statement(bundle)["predicate"]["resources"]) == 4
    sign.verify_model(f, bundle, [_pub(keys, "trusted")])
    _flip(f, offset)
    with pytest.raises(SignatureError) as err:
        sign.verify_model(f, bundle, [_pub(keys, "trusted")])
    assert err.value.reasons == ["file model.safetensors differs from the signed digest"]


@pytest.mark.parametrize("change", ["grown", "shrunk", "emptied"])
def test_shard_bundle_refuses_another_length(
    tmp_path: Path, keys: dict[str, Path], change: str
) -> None:
    m = tmp_path / "m"
    m.mkdir()
    data = os.urandom(2 * MIB)  # an exact multiple of the shard size
    (m / "w.bin").write_bytes(data)
    bundle = sign.sign_model(m, keys["trusted"], serialization="shards", shard_size=MIB)
    new = {"grown": data + b"\0", "shrunk": data[:-1], "emptied": b""}[change]
    (m / "w.bin").write_bytes(new)
    with pytest.raises(SignatureError) as err:
        sign.verify_model(m, bundle, [_pub(keys, "trusted")])
    assert err.value.reasons == ["file w.bin differs from the signed digest"]


def test_shard_bundle_refuses_missing_and_extra_files(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    m = tmp_path / "m"
    m.mkdir()
    (m / "w.bin").write_bytes(os.urandom(MIB + 1))
    (m / "b.json").write_text("{}")
    bundle = sign.sign_model(m, keys["trusted"], serialization="shards", shard_size=MIB)
    (m / "b.json").unlink()
    (m / "c.json").write_text("{}")
    with pytest.raises(SignatureError) as err:
        sign.verify_model(m, bundle, [_pub(keys, "trusted")])
    assert err.value.reasons == [
        "file b.json is missing",
        "extra file c.json not covered by the signature",
    ]


def test_empty_files_by_shard_and_by_file(tmp_path: Path, keys: dict[str, Path]) -> None:
    """An empty file has no shard, so "auto" signs a model holding one by file."""
    m = tmp_path / "m"
    m.mkdir()
    (m / "w.bin").write_bytes(os.urandom(3 * MIB))
    (m / "empty").write_bytes(b"")
    auto = sign.sign_model(
        m, keys["trusted"], bundle_path=tmp_path / "auto.sig", shard_size=MIB, max_workers=2
    )
    names = [r["name"] for r in _read_statement(auto)["predicate"]["resources"]]
    assert names == ["empty", "w.bin"]  # by file: the empty file is covered
    (m / "empty").unlink()
    with pytest.raises(SignatureError, match="file empty is missing"):
        sign.verify_model(m, auto, [_pub(keys, "trusted")])
    (m / "empty").write_bytes(b"")

    # asked for explicitly, shards leave the empty file out, as model_signing does
    shards = sign.sign_model(
        m, keys["trusted"], bundle_path=tmp_path / "s.sig", serialization="shards", shard_size=MIB
    )
    result = sign.verify_model(m, shards, [_pub(keys, "trusted")])
    assert result.files == ["w.bin"]
    (m / "empty").write_bytes(b"now it has bytes")
    with pytest.raises(SignatureError, match="extra file empty not covered"):
        sign.verify_model(m, shards, [_pub(keys, "trusted")])

    # a model that is one empty file: no shard at all, and still only an empty file verifies
    e = tmp_path / "empty.bin"
    e.write_bytes(b"")
    bundle = sign.sign_model(e, keys["trusted"], serialization="shards", shard_size=MIB)
    statement = _read_statement(bundle)
    assert statement["predicate"]["resources"] == []
    assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(b"").hexdigest()
    assert sign.verify_model(e, bundle, [_pub(keys, "trusted")]).files == []
    e.write_bytes(b"x")
    with pytest.raises(SignatureError, match=r"extra file empty\.bin not covered"):
        sign.verify_model(e, bundle, [_pub(keys, "trusted")])


def test_auto_signs_one_large_file_by_shard(tmp_path: Path, keys: dict[str, Path]) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(4 * MIB + 1))
    bundle = sign.sign_model(f, keys["trusted"], shard_size=MIB, max_workers=2)
    names = [r["name"] for r in _read_statement(bundle)["predicate"]["resources"]]
    assert names == [f".:{i * MIB}:{min((i + 1) * MIB, 4 * MIB + 1)}" for i in range(5)]
    # on one core shards gain nothing: by file
    one = sign.sign_model(
        f, keys["trusted"], bundle_path=tmp_path / "one.sig", shard_size=MIB, max_workers=1
    )
    assert _read_statement(one)["predicate"]["serialization"]["method"] == "files"
    for b in (bundle, one):
        sign.verify_model(f, b, [_pub(keys, "trusted")])


def _mf(name: str, size: int) -> ModelFile:
    return ModelFile(name, "/nowhere/" + name, size, 0)


@pytest.mark.parametrize(
    ("sizes", "workers", "method"),
    [
        ({"w.bin": 1000}, 2, "shards"),  # one large file: the case shards exist for
        ({"w.bin": 1000}, 1, "files"),  # one core: nothing to spread over
        ({"w.bin": 100}, 2, "files"),  # no file larger than a shard
        ({"a.bin": 500, "b.bin": 500}, 2, "files"),  # already one file per core
        ({"a.bin": 500, "b.bin": 460, "c": 1}, 2, "files"),  # close enough to even
        ({"a.bin": 500, "b.bin": 400, "c": 1}, 2, "shards"),  # 11 % over an even share
        ({"a.bin": 900, "b.bin": 150}, 2, "shards"),  # one file is most of the work
        ({"w.bin": 1000, "empty": 0}, 2, "files"),  # shards would leave "empty" unsigned
        ({"w:1.bin": 1000}, 2, "files"),  # model_signing splits shard names on ":"
        ({}, 2, "files"),
    ],
)
def test_choose_method(sizes: dict[str, int], workers: int, method: str) -> None:
    files = [_mf(n, s) for n, s in sizes.items()]
    assert choose_method(files, workers, shard_size=128) == method


def test_shards_refuse_a_colon_in_a_file_name(tmp_path: Path, keys: dict[str, Path]) -> None:
    m = tmp_path / "m"
    m.mkdir()
    (m / "w:1.bin").write_bytes(b"x" * 10)
    with pytest.raises(SignatureError, match=r"w:1\.bin has ':' in its name"):
        sign.sign_model(m, keys["trusted"], serialization="shards", shard_size=4)
    assert not (m / "model.sig").exists()
    with pytest.raises(ValueError, match="unknown serialization"):
        sign.sign_model(m, keys["trusted"], serialization="tensors")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["serialization"].update(shard_size=1.5), "not a whole number"),
        (lambda s: s["serialization"].update(shard_size=0), "not positive"),
        (lambda s: s["serialization"].update(shard_size="big"), "not a number"),
        (lambda s: s["serialization"].update(method="tensors"), "unsupported serialization"),
        (lambda s: s["resources"][0].update(algorithm="sha256"), "unsupported digest algorithm"),
        (lambda s: s["resources"][0].update(name="w.bin:0"), "is not FILE:START:END"),
        (lambda s: s["resources"][0].update(name="w.bin:0:9999999"), "impossible bounds"),
    ],
)
def test_refuses_malformed_shard_statements(
    tmp_path: Path, keys: dict[str, Path], edit: Any, message: str
) -> None:
    """Signed by a trusted key and still refused: the statement itself makes no sense."""
    m = tmp_path / "m"
    m.mkdir()
    (m / "w.bin").write_bytes(os.urandom(3000))
    bundle = sign.sign_model(m, keys["trusted"], serialization="shards", shard_size=1024)
    statement = _read_statement(bundle)
    edit(statement["predicate"])
    resources = statement["predicate"]["resources"]
    root = b"".join(bytes.fromhex(r["digest"]) for r in resources)
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(root).hexdigest()
    bundle.write_text(
        json.dumps(sign._make_bundle(statement, sign.load_private_key(keys["trusted"])))
    )
    with pytest.raises(SignatureError, match=message):
        sign.verify_model(m, bundle, [_pub(keys, "trusted")])


def test_shard_bundle_through_the_commands(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(3 * MIB))
    bundle = sign.sign_model(f, keys["trusted"], serialization="shards", shard_size=MIB)
    pub = str(keys["trusted"]) + ".pub"
    assert sign.run_verify_command(str(f), bundle=str(bundle), public_key=pub) == 0
    assert f"verified {f}: 1 file (in 3 shards of 1 MiB) match bundle" in capsys.readouterr().out
    _flip(f, MIB + 5)
    assert sign.run_verify_command(str(f), bundle=str(bundle), public_key=pub) == 1
    assert f"REFUSED {f}: file w.bin differs from the signed digest" in capsys.readouterr().out


def test_a_shard_past_the_end_of_its_file_is_an_error(tmp_path: Path) -> None:
    """What a file that shrank after its size was taken looks like to the hashing."""
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 100)
    assert (
        hashing.sha256_shards([(str(f), 0, 50), (str(f), 50, 100)], max_workers=2)
        == [hashlib.sha256(b"x" * 50).digest()] * 2
    )
    with pytest.raises(hashing.HashingError, match="shrank to 100 bytes") as err:
        hashing.sha256_shards([(str(f), 0, 50), (str(f), 50, 150)], max_workers=2)
    assert err.value.path == str(f)
    assert hashing.shard_bounds(0, 10) == []
    assert hashing.shard_bounds(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert hashing.shard_bounds(20, 10) == [(0, 10), (10, 20)]
