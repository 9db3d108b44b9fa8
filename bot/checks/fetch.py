"""Describe an artifact for its manifest, and bring its bytes to this machine, checked.

`describe_artifact` runs when a person proposes a model: it streams the bytes once for
the sha256 the manifest pins. `materialize` gives the checks and the deploy a local file
whose sha256 is verified while it is copied (remote URIs) or hashed in place (local paths).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from bot.checks import artifacts
from bot.manifests import FORMATS, Artifact

# measure.detect_format's names -> the manifest's format names
_FORMAT_NAMES = {"torch": "pytorch", "h5": "keras", "npy": "numpy", "npz": "numpy"}


class ArtifactError(ValueError):
    """The artifact cannot be read or is not what the manifest says."""


def normalize_uri(uri: str, cwd: Path | None = None) -> str:
    """Plain paths become absolute file:// URIs, so any process can find them later."""
    if "://" in uri:
        return uri
    path = (cwd or Path.cwd()) / Path(uri).expanduser()
    return path.resolve().as_uri()


def _format_of(path: Path, declared: str) -> str:
    from bot.checks.measure import detect_format

    name = detect_format(path, declared or None)
    name = _FORMAT_NAMES.get(name, name)
    return name if name in FORMATS else "other"


def describe_artifact(uri: str, declared_format: str = "") -> Artifact:
    if declared_format and declared_format not in FORMATS:
        raise ArtifactError(f"--format {declared_format!r} is not one of {', '.join(FORMATS)}")
    uri = normalize_uri(uri)
    try:
        if not artifacts.exists(uri):
            raise ArtifactError(f"artifact {uri} does not exist")
        if artifacts.is_dir(uri):
            raise ArtifactError(f"artifact {uri} is a folder; give the model file")
        digest = artifacts.sha256_of(uri)
        size = artifacts.size_of(uri)
    except ArtifactError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        raise ArtifactError(f"cannot read artifact {uri}: {exc}") from None
    local = artifacts.local_path(uri)
    fmt = _format_of(Path(local), declared_format) if local else (declared_format or "other")
    return Artifact(uri=uri, sha256=digest, format=fmt, size=size)


def file_name(uri: str) -> str:
    name = os.path.basename(urlsplit(uri).path) if "://" in uri else os.path.basename(uri)
    return name or "model"


def materialize(uri: str, sha256: str, cache: Path) -> Path:
    """A local path holding exactly the bytes with that sha256."""
    local = artifacts.local_path(uri)
    if local is not None:
        if not os.path.exists(local):
            raise ArtifactError(f"artifact {uri} does not exist any more")
        actual = artifacts.sha256_of(local)
        if actual != sha256:
            raise ArtifactError(
                f"artifact {uri} changed: sha256 is {actual}, the manifest pins {sha256}"
            )
        return Path(local)
    target = cache / sha256 / file_name(uri)
    if target.exists():
        return target
    copy_verified(uri, sha256, target)
    return target


def dataset_file(uri: str, sha256: str, cache: Path) -> Path:
    """A local file for a data set: a pinned digest is checked; an unpinned remote file is
    downloaded once into the cache, under the digest of what arrived."""
    if sha256:
        return materialize(uri, sha256, cache)
    local = artifacts.local_path(uri)
    if local is not None:
        return Path(local)
    partial = cache / "incoming" / file_name(uri)
    digest = copy_verified(uri, None, partial)
    target = cache / digest / file_name(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    return target


def copy_verified(uri: str, sha256: str | None, target: Path) -> str:
    """Stream the artifact to target, hashing as it goes; nothing is left if the digest is
    not the expected one (None: any). Returns the digest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    h = hashlib.sha256()
    try:
        with artifacts.open_stream(uri) as src, open(partial, "wb") as dst:
            while block := src.read(artifacts.BLOCK_SIZE):
                h.update(block)
                dst.write(block)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"cannot read artifact {uri}: {exc}") from None
    if sha256 is not None and h.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ArtifactError(
            f"artifact {uri} has sha256 {h.hexdigest()}, the manifest pins {sha256}"
        )
    os.replace(partial, target)
    return h.hexdigest()
