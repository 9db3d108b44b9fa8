"""The registry keeps the bytes: a content-addressed store of artifacts and data sets.

A person's source (a path, file://, s3://, https://...) is read once, when they register it:
`put` hashes while it copies, so the bytes are read one time, and the object is written under
a temporary name and renamed to `sha256/<digest>` only when complete (a crash leaves no half
object under a digest name). The same bytes put twice are kept once. From then on checks and
deploys read the object by digest (`open`) and verify it while they copy it.

Beside an object the store keeps what vouches for it, by digest: the signature bundle
(`sha256/<digest>.sig`) and, per model version, the signed attestation that it passed the checks
(`sha256/<digest>.<model>@<version>.att.json`). The sign check writes them and the deploy gate
reads them, so the bot never commits to a person's pull request. They are small, and written
anew by every signing run (a temporary name, then a rename over the old one); what they say is
verified against the repository's trusted keys by whoever reads them, never trusted because
of where they were found.

`AIMODEL_ARTIFACT_STORE` is any fsspec URL (an S3 bucket for a team); its default is
`$AIMODEL_HOME/artifacts`. A local store also gives a path to its objects (`LocalPaths`).
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
import stat
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from bot.messages import store as msg

BLOCK_SIZE = 1 << 20  # 1 MiB: stays in the CPU cache between the read, the hash and the write
# a chunk the kernel copies while the one before is hashed: two stay in the CPU's L3 cache
KERNEL_CHUNK = 4 << 20
# the kernel cannot copy between these files (another file system on an old kernel, a file
# system without copy_file_range): the read, hash and write loop does it instead
_NOT_IN_KERNEL = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF})
SCHEME = "store:"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_URI = re.compile(r"store:sha256/([0-9a-f]{64})")
# a model name and a version, as bot.manifests admits them: never a path separator or `..`
_LABEL = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
SIGNATURE_SUFFIX = ".sig"
ATTESTATION_SUFFIX = ".att.json"
MAX_NOTE = 64 << 20  # a bundle is a few KiB (a by-shard one of a huge model a few MiB): more is not one


class StoreError(OSError):
    """The store cannot be used or an object cannot be read; the message is safe to show."""


class ByteSource(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Store(Protocol):
    def put(self, stream: ByteSource) -> tuple[str, int]: ...

    def open(self, digest: str) -> IO[bytes]: ...

    def exists(self, digest: str) -> bool: ...

    def put_signature(self, digest: str, bundle: bytes) -> None: ...

    def signature(self, digest: str) -> bytes | None: ...

    def put_attestation(self, digest: str, model: str, version: str, bundle: bytes) -> None: ...

    def attestation(self, digest: str, model: str, version: str) -> bytes | None: ...


@runtime_checkable
class LocalPaths(Protocol):
    """A store on this machine's file system: its objects have paths."""

    def local_path(self, digest: str) -> Path: ...


def store_uri(digest: str) -> str:
    return f"{SCHEME}sha256/{digest}"


def digest_of(uri: str) -> str | None:
    """The digest a store URI names; None for any other URI."""
    match = _URI.fullmatch(uri)
    return match.group(1) if match else None


def is_store_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


def _key(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise StoreError(f"{digest[:80]!r} is not a sha256 digest")
    return f"sha256/{digest}"


def signature_key(digest: str) -> str:
    """Where the signature bundle of the object `digest` is kept, beside it."""
    return _key(digest) + SIGNATURE_SUFFIX


def attestation_key(digest: str, model: str, version: str) -> str:
    """Where the checks' attestation of `model` at `version` (whose bytes are `digest`) is kept."""
    for label in (model, version):
        if not _LABEL.fullmatch(label):
            raise StoreError(f"{label[:80]!r} is not a model name or version")
    return f"{_key(digest)}.{model}@{version}{ATTESTATION_SUFFIX}"


@runtime_checkable
class ReadsInto(Protocol):
    """A source that fills a caller's buffer (files, fsspec files): no allocation per block."""

    def readinto(self, buffer: bytearray, /) -> int | None: ...


def copy_hashing(src: ByteSource, dst: IO[bytes]) -> tuple[str, int]:
    """Copy src to dst and hash the same bytes in one pass: the source is read once.

    From a regular file into a file opened for reading too ("w+b"), the kernel copies
    (copy_file_range, page cache to page cache, no trip through Python) and the hash reads
    each chunk of the copy while it is still in the CPU cache, mapped, so the digest is of
    the bytes the store holds; a worker copies the next chunk while this one is hashed.
    Any other source or destination (fsspec files, pipes, another file system on an older
    kernel) takes the read, hash and write loop. benchmarks/CUSTODY.md has the figures."""
    kernel = _kernel_copy_ends(src, dst)
    if kernel is not None:
        copied = _copy_in_kernel(*kernel)
        if copied is not None:
            return copied
    if not isinstance(src, ReadsInto):
        return _copy_blocks(src, dst)
    h, size = hashlib.sha256(), 0
    buffers = (bytearray(BLOCK_SIZE), bytearray(BLOCK_SIZE))
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        turn = 0
        while n := src.readinto(buffers[turn]):
            block = memoryview(buffers[turn])[:n]
            if pending is not None:
                pending.result()  # the other buffer is free again only once it is written
            pending = writer.submit(dst.write, block)
            h.update(block)
            size += n
            turn ^= 1
        if pending is not None:
            pending.result()
    return h.hexdigest(), size


@runtime_checkable
class OsFile(Protocol):
    """An OS file with a position (open(), fsspec's local files): the kernel can copy it."""

    def fileno(self) -> int: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def _kernel_copy_ends(src: object, dst: IO[bytes]) -> tuple[OsFile, IO[bytes]] | None:
    """src and dst as OS files the kernel can copy between, or None (then the loop copies)."""
    if sys.platform != "linux" or not isinstance(src, OsFile):
        return None
    try:
        if not dst.readable() or not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            return None
        dst.flush()
        dst.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        return None
    return src, dst


def _copy_in_kernel(src: OsFile, dst: IO[bytes]) -> tuple[str, int] | None:
    """The kernel copies chunk after chunk at explicit offsets (the file objects' positions
    are honoured, and moved past the copy at the end); this thread hashes each copied chunk
    from the destination. None when the kernel refuses the first chunk (nothing copied)."""
    s, d = src.fileno(), dst.fileno()
    s_start, d_start = src.tell(), dst.tell()

    def copy(offset: int) -> int:
        return os.copy_file_range(s, d, KERNEL_CHUNK, s_start + offset, d_start + offset)

    h, size = hashlib.sha256(), 0
    with ThreadPoolExecutor(max_workers=1) as worker:
        try:
            n = copy(0)
        except OSError as exc:
            if exc.errno in _NOT_IN_KERNEL:
                return None
            raise
        if n == 0:
            return None  # empty, or a file system that copies nothing instead of refusing (procfs)
        while n:
            ahead = worker.submit(copy, size + n)  # the next chunk, while this one is hashed
            try:
                _hash_range(h, d, d_start + size, n)
            finally:
                following = ahead.result()
            size += n
            n = following
    src.seek(s_start + size)
    dst.seek(d_start + size)
    return h.hexdigest(), size


def _hash_range(h: Any, fd: int, offset: int, length: int) -> None:
    """Hash length bytes of fd at offset, mapped (no copy into Python); the mapping must
    start on a page boundary. MAP_POPULATE maps the chunk's pages in one call, not one
    fault per 64 KiB."""
    lead = offset % mmap.ALLOCATIONGRANULARITY
    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
    mapped = mmap.mmap(fd, lead + length, flags=flags, prot=mmap.PROT_READ, offset=offset - lead)
    with mapped, memoryview(mapped) as view:  # the view is released before the mapping closes
        h.update(view[lead:])


def _copy_blocks(src: ByteSource, dst: IO[bytes]) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        while block := src.read(BLOCK_SIZE):
            if pending is not None:
                pending.result()
            pending = writer.submit(dst.write, block)
            h.update(block)
            size += len(block)
        if pending is not None:
            pending.result()
    return h.hexdigest(), size


class FsspecStore:
    """Any fsspec URL. The file system is made on first use, so a process that never touches
    the store never imports its backend."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._fs: Any = None
        self._root = ""

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs, self._root = open_filesystem(self.url)
        return self._fs, self._root

    def _path(self, digest: str) -> str:
        _, root = self._filesystem()
        return f"{root.rstrip('/')}/{_key(digest)}"

    def exists(self, digest: str) -> bool:
        fs, _ = self._filesystem()
        return bool(fs.exists(self._path(digest)))

    def open(self, digest: str) -> IO[bytes]:
        fs, _ = self._filesystem()
        path = self._path(digest)
        try:
            f: IO[bytes] = fs.open(path, "rb")
        except FileNotFoundError:
            raise StoreError(msg.object_missing(digest)) from None
        return f

    def _incoming(self) -> tuple[Any, str, str]:
        """(file system, the store's root, a fresh name under incoming/): what is written there
        is moved into place whole, so a reader never sees half of it."""
        fs, root = self._filesystem()
        base = root.rstrip("/")
        fs.makedirs(f"{base}/sha256", exist_ok=True)
        fs.makedirs(f"{base}/incoming", exist_ok=True)
        return fs, base, f"{base}/incoming/{uuid.uuid4().hex}"

    def put(self, stream: ByteSource) -> tuple[str, int]:
        fs, _base, partial = self._incoming()
        try:
            with fs.open(partial, "wb") as dst:
                digest, size = copy_hashing(stream, dst)
            final = self._path(digest)
            if fs.exists(final):
                fs.rm(partial)  # the same bytes are kept once
            else:
                fs.mv(partial, final)
        except BaseException:
            if fs.exists(partial):
                fs.rm(partial)
            raise
        return digest, size

    # ------------------------------------------------------------ what vouches for an object

    def put_signature(self, digest: str, bundle: bytes) -> None:
        self._put_note(signature_key(digest), bundle)

    def signature(self, digest: str) -> bytes | None:
        return self._note(signature_key(digest))

    def put_attestation(self, digest: str, model: str, version: str, bundle: bytes) -> None:
        self._put_note(attestation_key(digest, model, version), bundle)

    def attestation(self, digest: str, model: str, version: str) -> bytes | None:
        return self._note(attestation_key(digest, model, version))

    def _put_note(self, key: str, data: bytes) -> None:
        fs, base, partial = self._incoming()
        try:
            fs.pipe_file(partial, data)
            fs.mv(partial, f"{base}/{key}")
        except BaseException:
            if fs.exists(partial):
                fs.rm(partial)
            raise

    def _note(self, key: str) -> bytes | None:
        fs, root = self._filesystem()
        try:
            with fs.open(f"{root.rstrip('/')}/{key}", "rb") as f:
                data: bytes = f.read(MAX_NOTE + 1)
        except FileNotFoundError:
            return None
        return _bounded(key, data)


def _bounded(key: str, data: bytes) -> bytes:
    if len(data) > MAX_NOTE:
        raise StoreError(msg.note_too_big(key, MAX_NOTE))
    return data


class LocalStore(FsspecStore):
    """A store folder on this machine: plain files, an atomic rename, and paths to objects."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def local_path(self, digest: str) -> Path:
        return self.root / _key(digest)

    def exists(self, digest: str) -> bool:
        return self.local_path(digest).is_file()

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self.local_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(msg.object_missing(digest)) from None

    def put(self, stream: ByteSource) -> tuple[str, int]:
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        incoming = self.root / "incoming"
        incoming.mkdir(exist_ok=True)
        partial = incoming / uuid.uuid4().hex
        try:
            # readable too: the hash reads the copy (copy_hashing)
            with open(partial, "w+b") as dst:
                digest, size = copy_hashing(stream, dst)
            final = self.local_path(digest)
            if final.is_file():
                partial.unlink()  # the same bytes are kept once
            else:
                os.chmod(partial, 0o444)  # an object never changes; a slip of the hand should not change it
                os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return digest, size

    def _put_note(self, key: str, data: bytes) -> None:
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        incoming = self.root / "incoming"
        incoming.mkdir(exist_ok=True)
        partial = incoming / uuid.uuid4().hex
        try:
            partial.write_bytes(data)
            os.replace(partial, self.root / key)  # a reader sees the old bundle or the new one, whole
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _note(self, key: str) -> bytes | None:
        try:
            with open(self.root / key, "rb") as f:
                return _bounded(key, f.read(MAX_NOTE + 1))
        except FileNotFoundError:
            return None


def _backend_package(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"[Ii]nstall (?:the )?['\"]?([A-Za-z0-9_.-]+)", text)
    return match.group(1) if match else ""


def open_filesystem(url: str) -> tuple[Any, str]:
    import fsspec  # lazy: a local store never needs it

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise StoreError(msg.backend_missing(url, _backend_package(exc))) from None
    except ValueError as exc:
        if "protocol" in str(exc).lower():
            raise StoreError(msg.store_unusable(url, "unknown protocol")) from None
        raise StoreError(msg.store_unusable(url, type(exc).__name__)) from None
    return fs, str(root)


def open_store(url: str) -> FsspecStore:
    """The store a URL names: a plain path or file:// is a LocalStore; anything else goes
    through fsspec, whose backend must be installed (checked now, so the error comes early)."""
    if "://" not in url:
        return LocalStore(Path(url).expanduser())
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return LocalStore(Path(unquote(urlsplit(url).path)))
    store = FsspecStore(url)
    store._filesystem()
    return store
