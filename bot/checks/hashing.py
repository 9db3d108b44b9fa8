"""sha256 of whole files and of file shards, on every core.

Two kinds of work, one scheduler: worker threads (one per usable core) pull the next
index from a shared counter, so many small files cost a lock and a read each (no future
per file) and a few large pieces keep every core busy. Threads, not processes: hashlib
and ``os.preadv`` release the GIL on large buffers, so threads hash in parallel without
paying for process start-up or copying data between processes (benchmarks/SIGN.md has the
figures of both).

A shard is read with ``os.preadv`` into a reused per-thread buffer; it is never memory
mapped, because a file truncated while mapped kills the process with SIGBUS, and a
worker must survive whatever happens to the files it signs.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
from collections.abc import Callable, Sequence

__all__ = [
    "HashingError",
    "Shard",
    "sha256_files",
    "sha256_shards",
    "shard_bounds",
    "usable_cores",
]

# Files up to this size are read with one read() call; larger ones stream through a
# reused per-thread buffer of _BLOCK bytes (no allocation per block).
_SMALL_FILE = 1 << 20
_BLOCK = 1 << 20

Shard = tuple[str, int, int]  # (path, start offset included, end offset excluded)


class HashingError(Exception):
    """A file changed (shrank) while it was being hashed; ``path`` names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every platform has affinity masks
        return max(1, os.cpu_count() or 1)


def shard_bounds(size: int, shard_size: int) -> list[tuple[int, int]]:
    """(start, end) of each shard of a file of SIZE bytes, as model_signing cuts them.

    Equal shards of ``shard_size`` bytes and a shorter last one; an empty file has none.
    """
    if shard_size <= 0:
        raise ValueError(f"shard size must be positive, got {shard_size}")
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


_local = threading.local()


def _buffer() -> memoryview:
    buf: memoryview | None = getattr(_local, "buf", None)
    if buf is None:
        buf = memoryview(bytearray(_BLOCK))
        _local.buf = buf
    return buf


def _sha256_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        # a small file: one read() gets it all; the loop below then only sees the end
        # (and still catches a short read or a file that grew)
        h = hashlib.sha256(os.read(fd, size + 1)) if size <= _SMALL_FILE else hashlib.sha256()
        buf = _buffer()
        while n := os.readv(fd, (buf,)):
            h.update(buf[:n])
        return h.digest()
    finally:
        os.close(fd)


def _sha256_range(path: str, start: int, end: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        h = hashlib.sha256()
        buf = _buffer()
        pos = start
        while pos < end:
            n = os.preadv(fd, (buf[: min(len(buf), end - pos)],), pos)
            if n == 0:
                raise HashingError(path, f"{path} shrank to {pos} bytes while it was being hashed")
            h.update(buf[:n])
            pos += n
        return h.digest()
    finally:
        os.close(fd)


def _workers(n: int, max_workers: int | None) -> int:
    # one thread per core: sha256 runs outside the GIL, so more threads only add contention
    return max(1, min(max_workers or usable_cores(), n))


def _in_parallel(
    n: int, task: Callable[[int], bytes], workers: int, order: Sequence[int] | None = None
) -> list[bytes]:
    """[task(0), ..., task(n - 1)], computed by WORKERS threads pulling the next index.

    ORDER is the order in which indexes are handed out (default 0, 1, ...).
    """
    if workers <= 1:
        return [task(i) for i in range(n)]
    out: list[bytes] = [b""] * n
    indexes = iter(order if order is not None else range(n))
    lock = threading.Lock()
    failed = threading.Event()

    def work() -> None:
        while not failed.is_set():
            with lock:
                i = next(indexes, -1)
            if i < 0:
                return
            try:
                out[i] = task(i)
            except BaseException:
                failed.set()  # the others stop early; the error reaches the caller
                raise

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return out


def sha256_files(
    paths: Sequence[str], max_workers: int | None = None, sizes: Sequence[int] | None = None
) -> list[bytes]:
    """sha256 of each whole file, in order.

    With SIZES, the largest files are started first, so one large file found last in
    name order does not keep one core busy while the others wait.
    """
    n = len(paths)
    order = sorted(range(n), key=lambda i: -sizes[i]) if sizes is not None else None
    return _in_parallel(n, lambda i: _sha256_file(paths[i]), _workers(n, max_workers), order)


def sha256_shards(shards: Sequence[Shard], max_workers: int | None = None) -> list[bytes]:
    """sha256 of each (path, start, end) byte range, in order.

    Raises HashingError when a file ends before a shard does (it shrank after its size
    was taken).
    """

    def task(i: int) -> bytes:
        path, start, end = shards[i]
        return _sha256_range(path, start, end)

    return _in_parallel(len(shards), task, _workers(len(shards), max_workers))
