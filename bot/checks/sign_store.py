"""Signature bundles and check attestations, kept in the artifact store beside the bytes they cover.

The sign check puts them there (`keep`): a bundle by the digest of the bytes it signs, an
attestation by that digest and the model version it vouches for. Nothing is committed to a
person's pull request. The deploy gate and `aimodel verify` fetch them by digest and verify
them against the repository's trusted keys (`verify_kept`): where a bundle was found says
nothing about whether it is good.

A repository from before the store kept them holds them as files on its default branch
(`models/<name>/model.sig` and `checks.sig`); those are read when the store has none, and
verified in exactly the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import messages
from bot.store import Store, attestation_key, signature_key

if TYPE_CHECKING:  # the signing code (cryptography) is loaded by the verbs that sign or verify
    from bot.checks.sign import PrivateKey, PublicKey

CHECKS_PREDICATE = "https://aimodel-gitops.dev/check-results/v1"
SIGNATURE_FILE = "model.sig"
ATTESTATION_FILE = "checks.sig"


def signature_path(model: str) -> str:
    """Where a repository from before the store kept signatures held a model's bundle."""
    return f"models/{model}/{SIGNATURE_FILE}"


def attestation_path(model: str) -> str:
    return f"models/{model}/{ATTESTATION_FILE}"


class NotVerified(Exception):
    """The bytes are not vouched for; the message says why and is safe to show."""


@dataclass(frozen=True)
class Kept:
    signature: str  # the store keys, for the report
    attestation: str


def keep(
    store: Store,
    local: Path,
    digest: str,
    model: str,
    version: str,
    key: PrivateKey,
    facts: Mapping[str, Any],
    *,
    work: Path,
    serialization: str,
) -> Kept:
    """Sign the model at `local` (a file, or a folder: every file in it) and attest that its
    bytes passed the checks; keep both in the store. `facts` joins the attestation's predicate
    (the checked commit, the scan and validate reports). Raises OSError when the store cannot
    take them."""
    from bot.checks.sign import sign_attestation, sign_model

    bundle = sign_model(local, key, bundle_path=work / SIGNATURE_FILE, serialization=serialization)
    predicate = {
        "model": model,
        "version": version,
        "passed": True,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **facts,
    }
    att = sign_attestation(digest, model, CHECKS_PREDICATE, predicate, key)
    store.put_signature(digest, bundle.read_bytes())
    store.put_attestation(digest, model, version, (json.dumps(att, separators=(",", ":")) + "\n").encode())
    return Kept(signature_key(digest), attestation_key(digest, model, version))


def verify_kept(
    store: Store,
    local: Path,
    digest: str,
    model: str,
    version: str,
    keys: Sequence[PublicKey],
    *,
    bundle_at: Path,
    legacy: tuple[bytes | None, bytes | None] = (None, None),
) -> tuple[str, dict[str, Any]]:
    """Check that the model at `local` is exactly what a trusted key signed and that these
    bytes passed the checks as `model` at `version`. The bundle is written to `bundle_at` (the
    deployed folder keeps it). `legacy`: the bundle and attestation files of an older
    repository, used only when the store has none. Returns the signer's key fingerprint and
    the checks' predicate; raises NotVerified."""
    from bot.checks.sign import SignatureError, verify_attestation, verify_model

    try:
        bundle = store.signature(digest) or legacy[0]
        attestation = store.attestation(digest, model, version) or legacy[1]
    except OSError as exc:
        raise NotVerified(messages.signature_refused(str(exc))) from None
    if bundle is None:
        raise NotVerified(messages.no_signature(f"{signature_key(digest)} in the artifact store"))
    if attestation is None:
        raise NotVerified(messages.no_attestation(f"{attestation_key(digest, model, version)} in the artifact store"))
    if not keys:
        raise NotVerified(messages.no_trusted_key())
    bundle_at.write_bytes(bundle)
    try:
        verified = verify_model(local, bundle_at, keys)
        predicate = verify_attestation(attestation, keys, subject_digest=digest, predicate_type=CHECKS_PREDICATE)
    except SignatureError as exc:
        raise NotVerified(messages.signature_refused(str(exc))) from None
    if not predicate.get("passed") or predicate.get("version") != version:
        raise NotVerified(messages.checks_for_other_version(predicate.get("version"), version))
    if predicate.get("model") != model:
        raise NotVerified(messages.signature_refused(f"the signed check results are for the model {predicate.get('model')}, not {model}"))
    return verified.key_fingerprint, predicate
