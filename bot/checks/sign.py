"""Sign and verify model artifacts as OpenSSF model_signing bundles.

A signature is a Sigstore bundle v0.3 (JSON) holding a DSSE envelope around an in-toto
Statement v1. The statement is byte-for-byte the shape that ``model_signing`` 1.x writes
with its "key" method:

* ``subject``: one entry, the model's name (the last path component) and a root digest,
  sha256 over the concatenated raw digests of every resource, in resource order;
* ``predicateType``: ``https://model_signing/signature/v1.0``;
* ``predicate.serialization`` and ``predicate.resources``: by file (one sha256 per file,
  model_signing's default) or by shard (one sha256 per fixed-size piece of each file, so
  one large file is hashed on every core), as ``model_manifest`` describes; ``sign_model``
  picks shards where they are faster.

The envelope is signed with an EC key (P-256 with SHA-256, P-384 with SHA-384, P-521 with
SHA-512) over the DSSE pre-authentication encoding; the DER signature is base64 encoded.
``verificationMaterial.publicKey.hint`` is the sha256 (hex) of the public key's PEM
SubjectPublicKeyInfo, as ``model_signing`` writes it.

So a bundle made here verifies with model_signing's library and a bundle it makes (either
serialization) verifies here. Its 1.1 command line, ``model_signing verify key``, checks
by file only (it sets a by-file hashing configuration before it reads the bundle): it
accepts our by-file bundles and refuses shard bundles, its own included.
``model_signing`` itself is not imported: it is a test dependency only; this module needs
``cryptography`` and the standard library.

The same envelope also carries attestations of check results (``sign_attestation`` /
``verify_attestation``): a deploy gate can check that these exact bytes passed these checks.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.checks.hashing import sha256_files, usable_cores
from bot.checks.model_manifest import (
    AUTO,
    DEFAULT_IGNORED,
    DEFAULT_SHARD_SIZE,
    FILES,
    MODEL_SIGNING_PREDICATE_TYPE,
    SHARDS,
    check_files,
    choose_method,
    files_of,
    hash_resources,
    list_files,
    model_name,
    normalize_ignore,
    parse_statement,
    root_digest,
    serialization_of,
)
from bot.checks.sign_errors import SignatureError

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "CHECK_RESULTS_PREDICATE_TYPE",
    "DEFAULT_IGNORED",
    "DEFAULT_SHARD_SIZE",
    "MODEL_SIGNING_PREDICATE_TYPE",
    "PrivateKey",
    "PublicKey",
    "SignatureError",
    "VerifiedModel",
    "default_bundle_path",
    "generate_key",
    "hash_model",
    "load_private_key",
    "load_public_key",
    "public_key_fingerprint",
    "run_sign_command",
    "run_verify_command",
    "sign_attestation",
    "sign_model",
    "verify_attestation",
    "verify_model",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
CHECK_RESULTS_PREDICATE_TYPE = "https://aimodel-gitops.dev/check-results/v1"

DEFAULT_BUNDLE_NAME = "model.sig"

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclasses.dataclass(frozen=True)
class VerifiedModel:
    """What a successful ``verify_model`` established."""

    model_path: Path
    bundle_path: Path
    key_fingerprint: str  # sha256 hex of the signer's DER SubjectPublicKeyInfo
    model_name: str  # the subject name recorded in the bundle (informative only)
    root_digest: str  # the subject's sha256: one digest for the whole model
    # resource name -> sha256 hex: by file, the file's name (relative, POSIX; "." for a
    # single file); by shard, "<file>:<start>:<end>"
    digests: Mapping[str, str]
    serialization: str = FILES  # "files" or "shards"
    shard_size: int | None = None  # "shards" only

    @property
    def files(self) -> list[str]:
        """The files the signature covers (an empty file is not covered by shards)."""
        if self.shard_size is None:
            return list(self.digests)
        return list(dict.fromkeys(name.rsplit(":", 2)[0] for name in self.digests))


# --------------------------------------------------------------------------------------
# keys


def _check_curve(key: PrivateKey | PublicKey) -> str:
    name = _CURVE_NAMES.get(key.curve.name)
    if name is None:
        raise SignatureError(f"unsupported key curve {key.curve.name}: use P-256, P-384 or P-521")
    return name


def _hash_for(key: PrivateKey | PublicKey) -> hashes.HashAlgorithm:
    size = key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    raise SignatureError(f"unsupported key size {size}")


def load_private_key(path: str | Path, password: bytes | None = None) -> PrivateKey:
    """Load an EC private key from a PEM file (PKCS#8 or SEC1)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"private key file {p} does not exist") from None
    except OSError as err:
        raise SignatureError(f"cannot read private key file {p}: {err.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise SignatureError(f"private key {p} is encrypted: a password is needed") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{p} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SignatureError(f"private key {p} is not an elliptic-curve key (P-256/P-384)")
    _check_curve(key)
    return key


def load_public_key(path_or_pem: str | Path | bytes) -> PublicKey:
    """Load an EC public key from a PEM file path or PEM text.

    A private key PEM is accepted too (its public half is used).
    """
    source: str
    if isinstance(path_or_pem, bytes):
        data, source = path_or_pem, "the given PEM"
    elif isinstance(path_or_pem, str) and path_or_pem.lstrip().startswith("-----BEGIN"):
        data, source = path_or_pem.encode(), "the given PEM"
    else:
        p = Path(path_or_pem)
        source = str(p)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise SignatureError(f"public key file {p} does not exist") from None
        except OSError as err:
            raise SignatureError(f"cannot read public key file {p}: {err.strerror}") from None
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SignatureError(f"{source} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(f"public key in {source} is not an elliptic-curve key")
    _check_curve(key)
    return key


def _as_public(key: PrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key


def public_key_fingerprint(key: PrivateKey | PublicKey) -> str:
    """sha256 (hex) of the DER SubjectPublicKeyInfo of the (public half of the) key."""
    der = _as_public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _key_hint(key: PublicKey) -> str:
    """The publicKey hint model_signing writes: sha256 (hex) of the PEM SPKI."""
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def generate_key(path: Path, curve: str = "P-256", *, overwrite: bool = False) -> Path:
    """Write a new EC private key (PEM PKCS#8, mode 0600) to PATH and its public key to PATH.pub.

    Returns PATH. Refuses to overwrite existing files unless ``overwrite``.
    """
    if curve not in _CURVES:
        raise ValueError(f"unknown curve {curve!r}: choose one of {', '.join(_CURVES)}")
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    key = ec.generate_private_key(_CURVES[curve])
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # so the new file is created with 0600, not an old mode
    elif pub_path.exists():
        raise FileExistsError(f"{pub_path} already exists")
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    pub_path.write_bytes(public_pem)
    return path


# --------------------------------------------------------------------------------------
# hashing a model the way model_signing does by default (by file, sha256)


def hash_model(
    model_path: Path, *, ignore: Iterable[str] = (), max_workers: int | None = None
) -> dict[str, str]:
    """{file name: sha256 hex} for a model, with model_signing's names and default ignores."""
    root = Path(model_path)
    files = list_files(root, normalize_ignore(root, [*DEFAULT_IGNORED, *ignore]))
    digests = sha256_files([f.path for f in files], max_workers)
    return {f.name: d.hex() for f, d in zip(files, digests, strict=True)}


# --------------------------------------------------------------------------------------
# DSSE envelope and Sigstore bundle


def _pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _pae_compat(payload: bytes) -> bytes:
    # model_signing 0.2 signed this (buggy) encoding; its verifier still accepts it.
    return f"DSSEV1 {len(PAYLOAD_TYPE)} {PAYLOAD_TYPE} {len(payload)} {payload!r}".encode()


def _statement_bytes(statement: Mapping[str, Any]) -> bytes:
    # model_signing serialises the statement with protobuf's MessageToJson: indent 2,
    # non-ASCII kept as UTF-8.
    try:
        return json.dumps(statement, indent=2, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SignatureError("a file name is not valid UTF-8; rename it before signing") from None


def _make_bundle(statement: Mapping[str, Any], key: PrivateKey) -> dict[str, Any]:
    _check_curve(key)
    payload = _statement_bytes(statement)
    sig = key.sign(_pae(payload), ec.ECDSA(_hash_for(key)))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": _key_hint(key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode("ascii"), "keyid": ""}],
        },
    }


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"malformed bundle: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"malformed bundle: {what} is not base64") from None


def _verify_envelope(
    bundle: Mapping[str, Any], public_keys: Sequence[PublicKey]
) -> tuple[dict[str, Any], str]:
    """Check the bundle's signature against the trusted keys.

    Returns the in-toto statement and the fingerprint of the key that signed it.
    """
    if not isinstance(bundle, Mapping):
        raise SignatureError("malformed bundle: not a JSON object")
    media_type = bundle.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise SignatureError(
            f"unsupported bundle media type {media_type!r}, expected {BUNDLE_MEDIA_TYPE}"
        )
    material = bundle.get("verificationMaterial")
    if not isinstance(material, Mapping):
        raise SignatureError("malformed bundle: verificationMaterial is missing")
    if "publicKey" not in material:
        kinds = ", ".join(sorted(k for k in material if k != "tlogEntries")) or "nothing"
        raise SignatureError(
            f"bundle is not signed with a key (it carries {kinds}); only key-signed "
            "bundles (model_signing 'key' method) are accepted"
        )
    pk = material["publicKey"]
    hint = pk.get("hint") if isinstance(pk, Mapping) else None
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, Mapping):
        raise SignatureError("malformed bundle: dsseEnvelope is missing")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureError(
            f"unsupported DSSE payload type {envelope.get('payloadType')!r}, expected {PAYLOAD_TYPE}"
        )
    payload = _b64(envelope.get("payload"), "dsseEnvelope.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("malformed bundle: the envelope has no signature")
    sigs = [_b64(s.get("sig") if isinstance(s, Mapping) else None, "signature") for s in signatures]
    if not public_keys:
        raise SignatureError("no trusted public key configured: cannot verify the signature")
    candidates = [k for k in public_keys if not hint or _key_hint(k) == hint]
    if not candidates:
        raise SignatureError(
            f"signed by an untrusted key (key hint {hint} matches none of the "
            f"{len(public_keys)} trusted key(s))"
        )
    for key in candidates:
        algo = ec.ECDSA(_hash_for(key))
        for sig in sigs:
            for message in (_pae(payload), _pae_compat(payload)):
                try:
                    key.verify(sig, message, algo)
                except InvalidSignature:
                    continue
                return _parse_statement(payload), public_key_fingerprint(key)
    if hint:
        raise SignatureError(
            "the signature does not verify with the trusted key it names: the bundle "
            "was altered after signing"
        )
    raise SignatureError("signed by an untrusted key (no trusted key verifies the signature)")


def _parse_statement(payload: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("malformed bundle: the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        got = statement.get("_type") if isinstance(statement, dict) else None
        raise SignatureError(f"signed payload is not an in-toto {STATEMENT_TYPE} (got {got!r})")
    return statement


def _read_bundle(bundle_path: Path) -> dict[str, Any]:
    try:
        text = bundle_path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"no bundle: {bundle_path} does not exist") from None
    except IsADirectoryError:
        raise SignatureError(f"no bundle: {bundle_path} is a folder") from None
    except OSError as err:
        raise SignatureError(f"cannot read bundle {bundle_path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError(f"bundle {bundle_path} is not JSON") from None
    if not isinstance(data, dict):
        raise SignatureError(f"bundle {bundle_path} is not a JSON object")
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------
# models


def default_bundle_path(model_path: Path) -> Path:
    """model.sig inside a folder; FILE.sig beside a single file."""
    model_path = Path(model_path)
    if model_path.is_dir():
        return model_path / DEFAULT_BUNDLE_NAME
    return model_path.with_name(model_path.name + ".sig")


def _bundle_ignore(root: Path, bundle_path: Path) -> list[str]:
    """The bundle's own path, relative to the model root, when it lies inside the model."""
    if not root.is_dir():
        return []
    try:
        rel = bundle_path.resolve().relative_to(root.resolve())
    except ValueError:
        return []
    return [rel.as_posix()]


def _as_private_key(key: PrivateKey | str | Path) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    if isinstance(key, str | Path):
        return load_private_key(key)
    raise SignatureError("the signing key must be an EC private key or a path to one")


def _as_public_keys(keys: Sequence[PublicKey | str | Path | bytes]) -> list[PublicKey]:
    if isinstance(keys, ec.EllipticCurvePublicKey | str | bytes | Path):
        keys = [keys]
    return [k if isinstance(k, ec.EllipticCurvePublicKey) else load_public_key(k) for k in keys]


def sign_model(
    model_path: Path,
    private_key: PrivateKey | str | Path,
    *,
    bundle_path: Path | None = None,
    ignore: Sequence[str] = (),
    serialization: str = AUTO,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_workers: int | None = None,
) -> Path:
    """Sign a model file or folder; write the bundle and return its path.

    The default bundle path is ``model.sig`` inside a folder, ``FILE.sig`` beside a file,
    as the model_signing CLI would be told to write it. ``ignore`` lists paths relative to
    the model root to leave out (``.git``, ``.gitattributes``, ``.github``, ``.gitignore``
    and the bundle itself are always left out, as model_signing does).

    ``serialization`` is ``"files"`` (one sha256 per file), ``"shards"`` (one sha256 per
    ``shard_size`` bytes of each file, so one large file is hashed on every core) or
    ``"auto"``: shards where they are faster on this machine, files otherwise
    (``model_manifest.choose_method``). Either verifies with model_signing's library.
    """
    out, _ = _sign_model(
        model_path, private_key, bundle_path, ignore, serialization, shard_size, max_workers
    )
    return out


def _sign_model(
    model_path: Path,
    private_key: PrivateKey | str | Path,
    bundle_path: Path | None,
    ignore: Sequence[str],
    serialization: str = AUTO,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_workers: int | None = None,
) -> tuple[Path, dict[str, Any]]:
    if serialization not in (AUTO, FILES, SHARDS):
        raise ValueError(f"unknown serialization {serialization!r}: use auto, files or shards")
    if shard_size <= 0:
        raise ValueError(f"shard size must be positive, got {shard_size}")
    key = _as_private_key(private_key)
    root = Path(model_path)
    if not root.exists() and not root.is_symlink():
        raise SignatureError(f"{root} does not exist")
    out = Path(bundle_path) if bundle_path is not None else default_bundle_path(root)
    ignored = normalize_ignore(root, [*DEFAULT_IGNORED, *ignore, *_bundle_ignore(root, out)])
    files = list_files(root, ignored)
    method = serialization
    if method == AUTO:
        method = choose_method(files, max_workers or usable_cores(), shard_size)
    resources = hash_resources(files, method, shard_size, max_workers)
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": model_name(root),
                "digest": {"sha256": root_digest(r["digest"] for r in resources)},
            }
        ],
        "predicateType": MODEL_SIGNING_PREDICATE_TYPE,
        "predicate": {
            "serialization": serialization_of(method, shard_size, ignored),
            "resources": resources,
        },
    }
    bundle = _make_bundle(statement, key)
    _write_atomic(out, json.dumps(bundle, separators=(",", ":")).encode("utf-8"))
    return out, statement


def verify_model(
    model_path: Path,
    bundle_path: Path,
    public_keys: Sequence[PublicKey | str | Path | bytes],
    *,
    ignore: Sequence[str] = (),
    max_workers: int | None = None,
) -> VerifiedModel:
    """Check that the model at MODEL_PATH is exactly what a trusted key signed.

    Accepts bundles signed by file or by shard, ours or model_signing's. Raises
    SignatureError when the bundle is missing or malformed, the signer is not one of
    ``public_keys``, or any file differs, is missing, or is not covered by the signature.
    """
    root = Path(model_path)
    bpath = Path(bundle_path)
    bundle = _read_bundle(bpath)
    statement, fingerprint = _verify_envelope(bundle, _as_public_keys(public_keys))
    signed = parse_statement(statement)
    if not root.exists() and not root.is_symlink():
        raise SignatureError(f"the model {root} does not exist")
    ignored = normalize_ignore(
        root, [*DEFAULT_IGNORED, *signed.ignore_paths, *ignore, *_bundle_ignore(root, bpath)]
    )
    files = list_files(root, ignored)
    problems, actual = check_files(files, signed, root.name, max_workers)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise SignatureError("; ".join(problems[:5]) + more, problems)
    return VerifiedModel(
        model_path=root,
        bundle_path=bpath,
        key_fingerprint=fingerprint,
        model_name=signed.model_name,
        root_digest=signed.root_digest,
        digests={name: actual[name] for name in signed.resources},
        serialization=signed.method,
        shard_size=signed.shard_size,
    )


# --------------------------------------------------------------------------------------
# attestations of check results


def _split_digest(subject_digest: str) -> str:
    algo, sep, value = subject_digest.partition(":")
    if not sep:
        algo, value = "sha256", subject_digest
    value = value.lower()
    if (
        algo.lower() != "sha256"
        or len(value) != 64
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise SignatureError(f"subject digest must be a sha256 hex digest, got {subject_digest!r}")
    return value


def sign_attestation(
    subject_digest: str,
    subject_name: str,
    predicate_type: str,
    predicate: dict[str, Any],
    key: PrivateKey | str | Path,
) -> dict[str, Any]:
    """Sign an in-toto Statement v1 about one artifact; return the Sigstore bundle as a dict.

    ``subject_digest`` is the artifact's sha256 (hex, optionally ``sha256:``-prefixed), e.g.
    a file's sha256 or a model's root digest (``VerifiedModel.root_digest``).
    """
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": _split_digest(subject_digest)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return _make_bundle(statement, _as_private_key(key))


def verify_attestation(
    bundle: Mapping[str, Any] | str | bytes,
    public_keys: Sequence[PublicKey | str | Path | bytes],
    *,
    subject_digest: str | None = None,
    predicate_type: str | None = None,
) -> dict[str, Any]:
    """Verify an attestation bundle and return its predicate.

    With ``subject_digest`` / ``predicate_type`` given, also refuse an attestation about
    other bytes or of another kind.
    """
    data: Any = bundle
    if isinstance(bundle, str | bytes):
        try:
            data = json.loads(bundle)
        except (ValueError, UnicodeDecodeError):
            raise SignatureError("attestation bundle is not JSON") from None
    if not data:
        raise SignatureError("no bundle: the attestation is empty")
    statement, _ = _verify_envelope(data, _as_public_keys(public_keys))
    if predicate_type is not None and statement.get("predicateType") != predicate_type:
        raise SignatureError(
            f"attestation is of type {statement.get('predicateType')!r}, expected {predicate_type!r}"
        )
    if subject_digest is not None:
        want = _split_digest(subject_digest)
        subjects = statement.get("subject") or []
        got = [
            str(s.get("digest", {}).get("sha256", "")).lower()
            for s in subjects
            if isinstance(s, Mapping) and isinstance(s.get("digest"), Mapping)
        ]
        if want not in got:
            raise SignatureError(
                f"attestation is about other bytes (sha256 {', '.join(got) or 'none'}), "
                f"not sha256 {want}"
            )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise SignatureError("attestation has no predicate")
    return predicate


# --------------------------------------------------------------------------------------
# CLI verbs: `aimodel sign` and `aimodel verify`


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _how(shard_size: int | None, resources: int) -> str:
    """' (in 16 shards of 64 MiB)' for a shard signature, '' for a by-file one."""
    if shard_size is None:
        return ""
    size = f"{shard_size >> 20} MiB" if shard_size % (1 << 20) == 0 else f"{shard_size} bytes"
    return f" (in {resources} shard{'s' if resources != 1 else ''} of {size})"


def run_sign_command(path: str, *, key: str, bundle: str | None) -> int:
    """`aimodel sign PATH --key KEY.pem [--bundle OUT]`: 0 signed, 1 failed, 2 usage.

    Without ``key``, the path in AIMODEL_SIGNING_KEY is used.
    """
    model = Path(path)
    if not model.exists():
        _err(f"aimodel sign: {path} does not exist")
        return 2
    from bot.config import signing_key_env

    key = key or signing_key_env()
    if not key:
        _err("aimodel sign: --key KEY.pem is required (or set AIMODEL_SIGNING_KEY)")
        return 2
    if not Path(key).is_file():
        _err(f"aimodel sign: key file {key} does not exist")
        return 2
    try:
        private_key = load_private_key(key)
    except SignatureError as err:
        _err(f"aimodel sign: {err}")
        return 2
    try:
        out, statement = _sign_model(model, private_key, Path(bundle) if bundle else None, ())
    except (SignatureError, OSError) as err:
        _err(f"aimodel sign: not signed: {err}")
        return 1
    signed = parse_statement(statement)
    n = len(files_of(signed))
    how = _how(signed.shard_size, len(signed.resources))
    print(f"signed {path}: {n} file{'s' if n != 1 else ''}{how}, sha256 {signed.root_digest}")
    print(f"key {public_key_fingerprint(private_key)} ({_check_curve(private_key)})")
    print(f"bundle written to {out}")
    return 0


def run_verify_command(path: str, *, bundle: str, public_key: str) -> int:
    """`aimodel verify PATH --bundle B --public-key KEY.pub`: 0 verified, 1 refused, 2 usage."""
    for what, value in (("model", path), ("bundle", bundle), ("public key", public_key)):
        if not value or not Path(value).exists():
            _err(f"aimodel verify: {what} {value or '(not given)'} does not exist")
            return 2
    try:
        key = load_public_key(public_key)
    except SignatureError as err:
        _err(f"aimodel verify: {err}")
        return 2
    try:
        result = verify_model(Path(path), Path(bundle), [key])
    except SignatureError as err:
        print(f"REFUSED {path}: {err}")
        return 1
    except OSError as err:
        print(f"REFUSED {path}: {err}")
        return 1
    n = len(result.files)
    how = _how(result.shard_size, len(result.digests))
    print(
        f"verified {path}: {n} file{'s' if n != 1 else ''}{how} match bundle {bundle}, "
        f"sha256 {result.root_digest}, signed by key {result.key_fingerprint}"
    )
    return 0
