"""Describe an artifact for its manifest, and bring its bytes to this machine, checked.

Every function here first asks the `Access` it is given whether the URI may be read
(`bot.sources`: the repository's `sources`, who reads, the paths no URI may reach); only
then does a byte move. Network reads go through `bot.netguard`.

`describe_artifact` runs when a person proposes a model: it streams the bytes once into the
artifact store (bot.store), hashing as it copies, and the manifest records the store URI, the
digest, the size and the source as provenance (`keep_dataset` does the same for a data set).
`materialize` gives the checks and the deploy a local file whose sha256 is verified while it
is copied (store and remote URIs) or hashed in place (older manifests' local paths).
A model may be a local folder: it is kept file by file plus a file list (bot.checks.folders),
every file admitted on its own (a link is judged by where it leads), and copied out the same
way, each file verified (`copy_folder_verified`). No message here quotes the bytes it read.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from bot import netguard
from bot.checks import artifacts, folders
from bot.manifests import FORMATS, Artifact
from bot.messages import sources as msg
from bot.messages import store as store_msg
from bot.sources import BUCKET_PROTOCOLS, Access, Canonical, SourceRefused
from bot.store import ReadsInto, Store, StoreError, copy_hashing, digest_of, is_store_uri, store_uri

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
            if stat.S_ISDIR(mode):  # a model folder is kept by describe_artifact; a data set is one file
                raise ArtifactError(store_msg.dataset_is_folder(c.uri) if kind == "dataset" else msg.is_folder(c.uri))
            raise ArtifactError(msg.source_unavailable(kind, c.uri))
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


class _Reading:
    """Marks errors raised by the source (not by the store) as the source's."""

    def __init__(self, src: ByteStream) -> None:
        self.src = src
        self.failed: BaseException | None = None

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self.src.read(size)
        except (OSError, ValueError) as exc:
            self.failed = exc
            raise


class _ReadingInto(_Reading):
    """The same, for a source that fills a buffer (the store's fast path keeps working)."""

    def __init__(self, src: ReadsInto) -> None:
        super().__init__(src)  # type: ignore[arg-type]
        self.into = src

    def readinto(self, buffer: bytearray, /) -> int | None:
        try:
            return self.into.readinto(buffer)
        except (OSError, ValueError) as exc:
            self.failed = exc
            raise


class _ReadingFile(_ReadingInto):
    """The same, for a local file: the store's kernel copy reads it by its descriptor
    (bot/store.py copy_hashing). The kernel does not say which side of a copy failed, so a
    read error there is reported as the store's: still an error, and nothing is kept."""

    def __init__(self, src: io.BufferedReader) -> None:
        super().__init__(src)
        self.file = src

    def fileno(self) -> int:
        return self.file.fileno()

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self.file.seek(offset, whence)


def _keep(c: Canonical, access: Access, kind: str, store: Store | None) -> tuple[str, int]:
    """Read the admitted source once: into the store when there is one, else only hashed."""
    src = open_checked(c, access, kind)
    try:
        if store is None:
            h, size = hashlib.sha256(), 0
            while block := src.read(artifacts.BLOCK_SIZE):
                h.update(block)
                size += len(block)
            return h.hexdigest(), size
        reading: _Reading
        if isinstance(src, io.BufferedReader):  # a local file (open_checked)
            reading = _ReadingFile(src)
        else:
            reading = _ReadingInto(src) if isinstance(src, ReadsInto) else _Reading(src)
        try:
            return store.put(reading)
        except (OSError, ValueError) as exc:
            if reading.failed is not None:
                raise
            why = str(exc) if isinstance(exc, StoreError) else _why(exc)
            raise ArtifactError(store_msg.cannot_keep(msg.WHAT.get(kind, kind), c.uri, why)) from None
    except ArtifactError:
        raise
    except (OSError, ValueError) as exc:
        raise ArtifactError(msg.unreadable(kind, c.uri, _why(exc))) from None
    finally:
        src.close()


def describe_artifact(uri: str, declared_format: str, access: Access, store: Store | None = None) -> Artifact:
    """Admit the source (bot.sources, always first), then keep its bytes in the store."""
    if declared_format and declared_format not in FORMATS:
        raise ArtifactError(f"--format {declared_format!r} is not one of {', '.join(FORMATS)}")
    c = admit(uri, "artifact", access)
    if c.local and os.path.isdir(c.path):
        return _describe_folder(c, declared_format, access, store)
    digest, size = _keep(c, access, "artifact", store)
    # The format is read from the source while it is still there (its suffix helps).
    fmt = _format_of(Path(c.path), declared_format) if c.local else (declared_format or "other")
    if store is None:
        return Artifact(uri=c.uri, sha256=digest, format=fmt, size=size)
    return Artifact(uri=store_uri(digest), sha256=digest, format=fmt, size=size, source=c.uri)


def _describe_folder(c: Canonical, declared_format: str, access: Access, store: Store | None) -> Artifact:
    if store is None:
        raise ArtifactError(store_msg.folder_needs_store())
    try:
        files = folders.walk(Path(c.path))
    except folders.FolderError as exc:
        raise ArtifactError(str(exc)) from None
    except OSError as exc:
        raise ArtifactError(msg.unreadable("artifact", c.uri, _why(exc))) from None
    entries = []
    for rel, path in files:
        # Each file is admitted on its own: a link inside the folder is judged by where it leads.
        digest, size = _keep(admit(str(path), "artifact", access), access, "artifact", store)
        entries.append(folders.Entry(rel, digest, size))
    try:
        digest, _ = store.put(io.BytesIO(folders.file_list(entries)))
    except (OSError, ValueError) as exc:
        why = str(exc) if isinstance(exc, StoreError) else _why(exc)
        raise ArtifactError(store_msg.cannot_keep("artifact", c.uri, why)) from None
    fmt = folders.format_of([e.path for e in entries], declared_format)
    return Artifact(
        uri=store_uri(digest), sha256=digest, format=fmt, size=sum(e.size for e in entries), source=c.uri, layout="folder"
    )


def keep_dataset(uri: str, access: Access, store: Store) -> tuple[str, str, str]:
    """(store URI, sha256, canonical source) of a data set, pinned and kept at registration.
    A relative path is resolved here, where the person typed it (access.cwd or this process's)."""
    c = admit(uri, "dataset", access)
    digest, _ = _keep(c, access, "dataset", store)
    return store_uri(digest), digest, c.uri


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


def stored_name(uri: str, source: str, fallback: str = "model") -> str:
    """The file name a stored object gets when copied out: its source's, so the deployed
    folder and the signature name the same file the person registered."""
    if is_store_uri(uri):
        return file_name(source) if source else fallback
    return file_name(uri)


def materialize(
    uri: str, sha256: str, cache: Path, access: Access, kind: str = "artifact", *, store: Store | None = None, name: str = "",
    layout: str = "file",
) -> Path:
    """A local path holding exactly the bytes with that sha256 (a folder: exactly the files
    its stored file list names)."""
    if layout == "folder":
        if digest_of(uri) != sha256:
            raise ArtifactError(msg.digest_mismatch(uri, sha256))
        target = cache / sha256 / (name or "model")
        copy_folder_verified(sha256, target, store)
        return target
    if is_store_uri(uri):
        # Copied out and verified on every call: a cached copy would hide a damaged store.
        target = cache / sha256 / (name or "model")
        copy_verified(uri, sha256, target, access, kind, store=store)
        return target
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


def dataset_file(uri: str, sha256: str, cache: Path, access: Access, *, store: Store | None = None, name: str = "") -> Path:
    """A local file for a data set: a pinned digest is checked; an unpinned remote file is
    downloaded once into the cache, under the digest of what arrived."""
    if sha256:
        return materialize(uri, sha256, cache, access, "dataset", store=store, name=name)
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


def _copy_stored(uri: str, sha256: str | None, target: Path, store: Store | None) -> str:
    digest = digest_of(uri)
    if digest is None or (sha256 is not None and digest != sha256):
        raise ArtifactError(msg.digest_mismatch(uri, sha256 or ""))
    if store is None:
        raise ArtifactError(store_msg.object_missing(digest))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        src = store.open(digest)
        try:
            with open(partial, "w+b") as dst:  # readable back: the kernel copies (store.copy_hashing)
                actual, _ = copy_hashing(src, dst)
        finally:
            src.close()
    except StoreError as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactError(str(exc)) from None
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactError(store_msg.store_unreadable(digest, _why(exc))) from None
    if actual != digest:
        partial.unlink(missing_ok=True)
        raise ArtifactError(store_msg.object_tampered(digest))
    os.replace(partial, target)
    return digest


def _read_stored(digest: str, store: Store, limit: int) -> bytes:
    """A small stored object, whole, verified against its digest."""
    try:
        with store.open(digest) as src:
            data = src.read(limit + 1)
    except StoreError as exc:
        raise ArtifactError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(store_msg.store_unreadable(digest, _why(exc))) from None
    if len(data) > limit or hashlib.sha256(data).hexdigest() != digest:
        raise ArtifactError(store_msg.object_tampered(digest))
    return data


def copy_folder_verified(digest: str, target: Path, store: Store | None) -> list[folders.Entry]:
    """Copy the folder whose file list is the stored object `digest` to `target`, each file
    verified as it is copied. Built beside the target and renamed into place: `target` is the
    old folder or the new one, whole, and never holds a file the list does not name."""
    if store is None:
        raise ArtifactError(store_msg.object_missing(digest))
    try:
        entries = folders.parse_file_list(_read_stored(digest, store, folders.MAX_LIST_BYTES))
    except folders.FolderError as exc:
        raise ArtifactError(str(exc)) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:12]}")
    try:
        for e in entries:
            _copy_stored(store_uri(e.sha256), e.sha256, partial / e.path, store)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # an older copy: whatever it holds now is not trusted
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return entries


def copy_verified(
    uri: str, sha256: str | None, target: Path, access: Access, kind: str = "artifact", *, store: Store | None = None
) -> str:
    """Stream the artifact to target, hashing as it goes; nothing is left if the digest is
    not the expected one (None: any). Returns the digest. A store URI reads the store, by
    digest: the person's source is never read again."""
    if is_store_uri(uri):
        return _copy_stored(uri, sha256, target, store)
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
