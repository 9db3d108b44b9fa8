"""A real listening socket on 127.0.0.1 that records whether anything connected to it: the
target of the SSRF attempts. Ask `connected()` only after the refusal has been received."""

from __future__ import annotations

import socket
from types import TracebackType


class Listener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]

    def connected(self, timeout: float = 0.5) -> bool:
        """Whether a connection is waiting (or arrives within timeout). A connection made during
        the refused request sits in the accept queue, so this sees it even after the fact."""
        self.sock.settimeout(timeout)
        try:
            conn, _ = self.sock.accept()
        except TimeoutError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
