"""Open model artifacts as byte streams, wherever they live, and compute their digests.

Plain paths and ``file://`` URIs open with :func:`open` (no fsspec import, so local scans start
fast); ``s3://``, ``gs://``, ``https://`` and any other protocol fsspec knows go through fsspec,
imported lazily. Nothing here reads a whole file into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

BLOCK_SIZE = 1 << 20  # 1 MiB


class DigestMismatch(ValueError):
    """The artifact's SHA-256 is not the one its manifest pins."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"{uri}: sha256 {actual} does not match the expected {expected}")
        self.uri = uri
        self.expected = expected
        self.actual = actual


def local_path(uri: str) -> str | None:
    """The filesystem path of a plain path or ``file://`` URI, else ``None``."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(uri)
        return unquote(parts.path) if not parts.netloc or parts.netloc == "localhost" else None
    if "://" in uri:
        return None
    return uri


def _fs(uri: str) -> tuple[Any, str]:
    import fsspec  # lazy: only remote URIs pay for it

    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def open_stream(uri: str) -> IO[bytes]:
    """Open ``uri`` for binary reading as a seekable-if-possible stream."""
    path = local_path(uri)
    if path is not None:
        return open(path, "rb")
    fs, p = _fs(uri)
    f: IO[bytes] = fs.open(p, "rb", block_size=BLOCK_SIZE)
    return f


def exists(uri: str) -> bool:
    path = local_path(uri)
    if path is not None:
        return os.path.exists(path)
    fs, p = _fs(uri)
    return bool(fs.exists(p))


def size_of(uri: str) -> int:
    path = local_path(uri)
    if path is not None:
        return os.path.getsize(path)
    fs, p = _fs(uri)
    return int(fs.size(p))


def is_dir(uri: str) -> bool:
    path = local_path(uri)
    if path is not None:
        return os.path.isdir(path)
    fs, p = _fs(uri)
    return bool(fs.isdir(p))


def walk_files(uri: str) -> list[str]:
    """Every file under ``uri`` (a folder) or ``[uri]`` itself, sorted, as URIs of the same kind."""
    path = local_path(uri)
    if path is not None:
        if not os.path.isdir(path):
            return [uri]
        out: list[str] = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            out.extend(os.path.join(root, name) for name in files)
        out.sort()
        if uri.startswith("file://"):
            return ["file://" + p for p in out]
        return out
    fs, p = _fs(uri)
    if not fs.isdir(p):
        return [uri]
    return [str(fs.unstrip_protocol(f)) for f in sorted(fs.find(p))]


def iter_blocks(uri: str, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    with open_stream(uri) as f:
        while True:
            block = f.read(block_size)
            if not block:
                return
            yield block


def sha256_of(uri: str) -> str:
    """The hex SHA-256 of the artifact, streamed in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    for block in iter_blocks(uri):
        h.update(block)
    return h.hexdigest()


def verify_digest(uri: str, expected: str) -> str:
    """Raise :class:`DigestMismatch` unless the artifact's SHA-256 is ``expected``.

    ``expected`` may carry a ``sha256:`` prefix. Returns the digest on success.
    """
    want = expected.lower().removeprefix("sha256:").strip()
    actual = sha256_of(uri)
    if actual != want:
        raise DigestMismatch(uri, want, actual)
    return actual
