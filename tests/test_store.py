"""The store port on real files and on a real fsspec file system (memory://)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest

from bot.store import FsspecStore, LocalPaths, LocalStore, StoreError, open_store


class BreaksAfter(io.RawIOBase):
    """A source that fails part way, as a dropped connection or a full disk would."""

    def __init__(self, good: bytes) -> None:
        self.good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        n = self.good.readinto(buffer)
        if not n:
            raise OSError("connection reset")
        return n


def test_put_keeps_the_bytes_under_their_digest_once(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "artifacts"))
    assert isinstance(store, LocalPaths)
    data = b"model bytes" * 100_000
    digest, size = store.put(io.BytesIO(data))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.local_path(digest) == tmp_path / "artifacts" / "sha256" / digest
    assert store.put(io.BytesIO(data)) == (digest, size)
    assert [p.name for p in (tmp_path / "artifacts" / "sha256").iterdir()] == [digest]
    with store.open(digest) as f:
        assert f.read() == data


@pytest.mark.parametrize("size", [0, 1, 4096, (9 << 20) + 3])
def test_a_file_is_stored_whole_from_where_it_was_opened(tmp_path: Path, size: int) -> None:
    """A real file (the kernel copies it in chunks): every byte from the file's position on,
    hashed as stored, read-only, kept once; the file object ends past what was stored."""
    store = LocalStore(tmp_path / "artifacts")
    data = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    source = tmp_path / "model.bin"
    source.write_bytes(b"header" + data)
    with open(source, "rb") as f:
        f.read(6)  # a caller that looked at the header first
        digest, stored = store.put(f)
        assert f.read() == b""
    assert (digest, stored) == (hashlib.sha256(data).hexdigest(), size)
    obj = store.local_path(digest)
    assert obj.read_bytes() == data
    assert obj.stat().st_mode & 0o222 == 0
    with open(source, "rb") as f:
        f.seek(6)
        assert store.put(f) == (digest, size)
    assert [p.name for p in (tmp_path / "artifacts" / "sha256").iterdir()] == [digest]
    assert list((tmp_path / "artifacts" / "incoming").iterdir()) == []


def test_a_failed_put_leaves_no_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    with pytest.raises(OSError, match="connection reset"):
        store.put(BreaksAfter(b"x" * (9 << 20)))
    assert list((tmp_path / "artifacts" / "sha256").iterdir()) == []
    assert list((tmp_path / "artifacts" / "incoming").iterdir()) == []


def test_a_missing_object_says_so(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    with pytest.raises(StoreError, match="missing from the artifact store"):
        store.open("0" * 64)
    with pytest.raises(StoreError, match="not a sha256 digest"):
        store.open("../../etc/passwd")


def test_an_fsspec_store_puts_and_reads_by_digest() -> None:
    store = open_store(f"memory://registry-{uuid.uuid4().hex}")
    assert isinstance(store, FsspecStore) and not isinstance(store, LocalPaths)
    data = b"weights" * 1000
    digest, size = store.put(io.BytesIO(data))
    assert store.exists(digest) and size == len(data)
    assert store.put(io.BytesIO(data)) == (digest, size)
    with store.open(digest) as f:
        assert f.read() == data
    with pytest.raises(OSError, match="connection reset"):
        store.put(BreaksAfter(b"y" * 100))
    assert not store.exists(hashlib.sha256(b"y" * 100).hexdigest())


@pytest.mark.parametrize("kind", ["local", "fsspec"])
def test_signatures_and_attestations_are_kept_beside_the_object(tmp_path: Path, kind: str) -> None:
    store = open_store(str(tmp_path / "artifacts") if kind == "local" else f"memory://registry-{uuid.uuid4().hex}")
    digest, _ = store.put(io.BytesIO(b"model"))
    assert store.signature(digest) is None and store.attestation(digest, "fraud", "1.0.0") is None
    store.put_signature(digest, b'{"bundle": 1}')
    store.put_attestation(digest, "fraud", "1.0.0", b'{"att": 1}')
    store.put_signature(digest, b'{"bundle": 2}')  # a new signing run replaces the bundle, whole
    assert store.signature(digest) == b'{"bundle": 2}'
    assert store.attestation(digest, "fraud", "1.0.0") == b'{"att": 1}'
    assert store.attestation(digest, "fraud", "1.0.1") is None  # per version
    assert store.attestation(digest, "other", "1.0.0") is None  # per model
    with store.open(digest) as f:
        assert f.read() == b"model"  # the object itself is untouched
    if kind == "local":
        names = sorted(p.name for p in (tmp_path / "artifacts" / "sha256").iterdir())
        assert names == sorted([digest, f"{digest}.sig", f"{digest}.fraud@1.0.0.att.json"])
        assert list((tmp_path / "artifacts" / "incoming").iterdir()) == []


@pytest.mark.parametrize("model,version", [("../x", "1.0.0"), ("fraud", "../../etc"), ("fraud", "1/2"), ("", "1")])
def test_a_note_key_never_leaves_the_store(tmp_path: Path, model: str, version: str) -> None:
    store = LocalStore(tmp_path / "artifacts")
    with pytest.raises(StoreError, match="is not a model name or version"):
        store.put_attestation("0" * 64, model, version, b"{}")
    with pytest.raises(StoreError, match="not a sha256 digest"):
        store.put_signature("../../x", b"{}")
    assert not (tmp_path / "x").exists()
