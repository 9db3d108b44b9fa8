"""A forward-only buffered byte source over a binary stream, with absolute offsets.

Scanners read small headers and opcodes through it and *skip* large payloads: skipping seeks
when the stream can, and reads-and-discards in bounded blocks when it cannot. Memory stays at
one buffer (about 1 MiB) whatever the file size.
"""

from __future__ import annotations

import io
import re
from typing import IO, Any

READ_BLOCK = 1 << 20
_SEEN = [0]  # bytes parsed or skipped in this process (for the progress bar)


def bytes_seen() -> int:
    return _SEEN[0]


class LazyRe:
    """A regular expression compiled on first use (keeps ``aimodel scan`` start-up small)."""

    __slots__ = ("args", "rx")

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self.args = (pattern, flags)
        self.rx: re.Pattern[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name in LazyRe.__slots__:
            raise AttributeError(name)
        if self.rx is None:
            self.rx = re.compile(*self.args)
        return getattr(self.rx, name)


class CannotVerify(Exception):
    """The bytes cannot be parsed fully, so nothing can be said about them (fail closed)."""


class Malformed(CannotVerify):
    """Bytes the real reader rejects too (an unknown opcode, data that ends early): loading
    fails there, so nothing after this point can run. Other CannotVerify errors are the
    scanner's own limits, where the real reader may well go on."""


class Truncated(Malformed):
    pass


class Source:
    __slots__ = ("base", "buf", "end", "eof", "f", "pos", "seekable", "start")

    def __init__(self, f: IO[bytes], *, size: int | None = None, base: int = 0) -> None:
        self.f = f
        self.buf = b""
        self.pos = 0
        self.start = base  # absolute offset of buf[0]
        self.base = base
        self.end = size  # absolute end offset when known
        self.eof = size == 0  # True once everything up to the end is in ``buf``
        try:
            self.seekable = bool(f.seekable())
        except (AttributeError, ValueError, io.UnsupportedOperation):
            self.seekable = False

    def tell(self) -> int:
        return self.start + self.pos

    def fill(self, n: int) -> bool:
        """Try to have ``n`` bytes buffered from the current position; False at end of data."""
        avail = len(self.buf) - self.pos
        if avail >= n:
            return True
        if self.eof:
            return False
        want = max(n - avail, READ_BLOCK)
        if self.end is not None:
            want = min(want, max(self.end - (self.start + len(self.buf)), 0))
        chunks = [self.buf[self.pos :]]
        got = 0
        need = n - avail
        while got < need and want - got > 0:
            chunk = self.f.read(want - got)
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            got += len(chunk)
        _SEEN[0] += got
        self.start += self.pos
        if self.end is not None and self.start + len(self.buf) - self.pos + got >= self.end:
            self.eof = True
        self.buf = b"".join(chunks)
        self.pos = 0
        return len(self.buf) >= n

    def at_eof(self) -> bool:
        return not self.fill(1)

    def read(self, n: int) -> bytes:
        if not self.fill(n):
            raise Truncated(f"truncated at offset {self.start + len(self.buf)} (wanted {n} bytes)")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def peek(self, n: int) -> bytes:
        self.fill(n)
        return self.buf[self.pos : self.pos + n]

    def readline(self, limit: int = 1 << 16) -> bytes:
        """Read through the next ``\\n`` (included); CannotVerify past ``limit`` bytes."""
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                out = self.buf[self.pos : i + 1]
                self.pos = i + 1
                return out
            have = len(self.buf) - self.pos
            if have > limit:
                raise CannotVerify(f"line longer than {limit} bytes at offset {self.tell()}")
            if not self.fill(have + 4096):
                raise Truncated(f"truncated at offset {self.start + len(self.buf)} inside a line")

    def skip(self, n: int) -> None:
        """Move forward ``n`` bytes without keeping them; Truncated if the data ends first."""
        if n < 0:
            raise CannotVerify("negative length")
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return
        target = self.start + self.pos + n
        if self.end is not None and target > self.end:
            raise Truncated(f"a {n}-byte payload at offset {self.tell()} runs past the end of data")
        rest = n - avail
        _SEEN[0] += rest
        self.start += len(self.buf)
        self.buf = b""
        self.pos = 0
        if self.seekable and self.end is not None:
            self.f.seek(rest, io.SEEK_CUR)
            self.start += rest
            return
        while rest > 0:
            chunk = self.f.read(min(rest, READ_BLOCK))
            if not chunk:
                raise Truncated(f"truncated at offset {self.start} inside a {n}-byte payload")
            rest -= len(chunk)
            self.start += len(chunk)

    def remaining(self) -> int | None:
        if self.end is None:
            return None
        return self.end - self.tell()
