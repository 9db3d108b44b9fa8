"""Describe an artifact for its manifest, and bring its bytes to this machine, checked.

Every function here first asks the `Access` it is given whether the URI may be read
(`bot.sources`: the repository's `sources`, who reads, the paths no URI may reach); only
then does a byte move. Network reads go through `bot.netguard`.

`describe_artifact` runs when a person proposes a model: it streams the bytes once for
the sha256 the manifest pins. `materialize` gives the checks and the deploy a local file
whose sha256 is verified while it is copied (remote URIs) or hashed in place (local paths).
No message here quotes the bytes it read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from bot import netguard
from bot.checks import artifacts
from bot.manifests import FORMATS, Artifact
from bot.messages import sources as msg
from bot.sources import BUCKET_PROTOCOLS, Access, Canonical, SourceRefused

# measure.detect_format's names -> the manifest's format names
_FORMAT_NAMES = {"torch": "pytorch", "h5": "keras", "npy": "numpy", "npz": "numpy"}


class ArtifactError(ValueError):
    """The artifact cannot be read or is not what the manifest says."""


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def admit(uri: str, kind: str, access: Access) -> Canonical:
    try:
        return access.admit(uri, kind)
    except SourceRefused as exc:
        raise ArtifactError(str(exc)) from None


def _why(exc: BaseException) -> str:
    # strerror, never str(exc): a library's message may quote what a server sent back.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OSError) and exc.args and isinstance(exc.args[0], str) and type(exc) is OSError:
        return exc.args[0]  # our own (netguard) reasons
    return type(exc).__name__


def open_checked(c: Canonical, access: Access, kind: str) -> ByteStream:
    """Open an admitted URI. A missing local file reads like a refused one."""
    if c.local:
        try:
            # NOFOLLOW: a link swapped in after the check is not followed; NONBLOCK: a FIFO does not hang us
            fd = os.open(c.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            raise ArtifactError(msg.source_unavailable(kind, c.uri)) from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # a folder, a device, a pipe: never read
            os.close(fd)
            raise ArtifactError(msg.is_folder(c.uri) if stat.S_ISDIR(mode) else msg.source_unavailable(kind, c.uri))
        return os.fdopen(fd, "rb")
    try:
        if c.scheme in ("http", "https"):
            return netguard.open_http(c.uri, access.sources.protocols, access.sources.private_hosts)
        if c.scheme not in BUCKET_PROTOCOLS:
            netguard.check_url(c.uri, access.sources.private_hosts)
        stream: ByteStream = artifacts.open_stream(c.uri)
        return stream
    except SourceRefused as exc:
        raise ArtifactError(str(exc)) from None
    except (OSError, ValueError, ImportError) as exc:
        raise ArtifactError(msg.unreadable(kind, c.uri, _why(exc))) from None


def _format_of(path: Path, declared: str) -> str:
    from bot.checks.measure import detect_format

    name = detect_format(path, declared or None)
    name = _FORMAT_NAMES.get(name, name)
    return name if name in FORMATS else "other"


def describe_artifact(uri: str, declared_format: str, access: Access) -> Artifact:
    if declared_format and declared_format not in FORMATS:
        raise ArtifactError(f"--format {declared_format!r} is not one of {', '.join(FORMATS)}")
    c = admit(uri, "artifact", access)
    h, size = hashlib.sha256(), 0
    src = open_checked(c, access, "artifact")
    try:
        while block := src.read(artifacts.BLOCK_SIZE):
            h.update(block)
            size += len(block)
    except (OSError, ValueError) as exc:
        raise ArtifactError(msg.unreadable("artifact", c.uri, _why(exc))) from None
    finally:
        src.close()
    fmt = _format_of(Path(c.path), declared_format) if c.local else (declared_format or "other")
    return Artifact(uri=c.uri, sha256=h.hexdigest(), format=fmt, size=size)


def file_name(uri: str) -> str:
    name = os.path.basename(urlsplit(uri).path) if "://" in uri else os.path.basename(uri)
    return name or "model"


def _hash_local(c: Canonical, access: Access, kind: str) -> str:
    h = hashlib.sha256()
    src = open_checked(c, access, kind)
    try:
        while block := src.read(artifacts.BLOCK_SIZE):
            h.update(block)
    except (OSError, ValueError) as exc:
        raise ArtifactError(msg.unreadable(kind, c.uri, _why(exc))) from None
    finally:
        src.close()
    return h.hexdigest()


def materialize(uri: str, sha256: str, cache: Path, access: Access, kind: str = "artifact") -> Path:
    """A local path holding exactly the bytes with that sha256."""
    c = admit(uri, kind, access)
    if c.local:
        if _hash_local(c, access, kind) != sha256:
            raise ArtifactError(msg.changed(c.uri, sha256))
        return Path(c.path)
    target = cache / sha256 / file_name(c.uri)
    if target.exists():
        return target
    copy_verified(c.uri, sha256, target, access, kind)
    return target


def dataset_file(uri: str, sha256: str, cache: Path, access: Access) -> Path:
    """A local file for a data set: a pinned digest is checked; an unpinned remote file is
    downloaded once into the cache, under the digest of what arrived."""
    if sha256:
        return materialize(uri, sha256, cache, access, "dataset")
    c = admit(uri, "dataset", access)
    if c.local:
        open_checked(c, access, "dataset").close()  # missing or a folder: the same words as refused
        return Path(c.path)
    partial = cache / "incoming" / file_name(c.uri)
    digest = copy_verified(c.uri, None, partial, access, "dataset")
    target = cache / digest / file_name(c.uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    return target


def copy_verified(uri: str, sha256: str | None, target: Path, access: Access, kind: str = "artifact") -> str:
    """Stream the artifact to target, hashing as it goes; nothing is left if the digest is
    not the expected one (None: any). Returns the digest."""
    c = admit(uri, kind, access)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    h = hashlib.sha256()
    try:
        src = open_checked(c, access, kind)
        try:
            with open(partial, "wb") as dst:
                while block := src.read(artifacts.BLOCK_SIZE):
                    h.update(block)
                    dst.write(block)
        finally:
            src.close()
    except ArtifactError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactError(msg.unreadable(kind, c.uri, _why(exc))) from None
    if sha256 is not None and h.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ArtifactError(msg.digest_mismatch(c.uri, sha256))
    os.replace(partial, target)
    return h.hexdigest()
