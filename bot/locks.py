"""One open pull request per model: locks taken before anything is written.

A lock is a key ("model:fraud-detector", "app:payments") held by a pull request number,
or by "pending" while the pull request is being opened. File locks (O_EXCL) serve the
embedded default; Redis (SET NX) serves several processes on several machines.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot import messages
from bot.state import CorruptState, StateUnavailable, problem_of


@dataclass(frozen=True)
class Holder:
    key: str
    pr: int | None  # None while the pull request is still being opened
    person: str
    since: float


class Locks(Protocol):
    def acquire(self, keys: Sequence[str], person: str) -> Holder | None:
        """Take every key or none; returns the holder of the first key that is taken."""
        ...

    def assign(self, keys: Sequence[str], pr: int) -> None: ...

    def release(self, keys: Sequence[str], pr: int | None = None) -> None: ...

    def holder(self, key: str) -> Holder | None: ...

    def all(self) -> list[Holder]: ...


def _encode(pr: int | None, person: str) -> bytes:
    return json.dumps({"pr": pr, "person": person, "since": time.time()}).encode()


def _decode(key: str, raw: bytes | str, where: str) -> Holder:
    try:
        data: dict[str, Any] = json.loads(raw)
        pr, person, since = data.get("pr"), data.get("person", ""), data.get("since", 0.0)
        if isinstance(pr, bool) or not (pr is None or isinstance(pr, int)) or not isinstance(person, str):
            raise TypeError("pr or person")
        return Holder(key, pr, person, float(since))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptState(where, problem_of(exc), messages.lock_advice(key)) from None


# A lock still "pending" after this long belongs to a process that died mid-proposal.
STALE_PENDING_SECONDS = 120.0


class FileLocks:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        return self.folder / (key.replace(":", "__") + ".json")

    def _try(self, key: str, person: str) -> Holder | None:
        path = self._file(key)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                current = self.holder(key)
                if current is None:
                    continue  # released between our attempt and our read
                if current.pr is None and time.time() - current.since > STALE_PENDING_SECONDS:
                    path.unlink(missing_ok=True)
                    continue
                return current
            with os.fdopen(fd, "wb") as f:
                f.write(_encode(None, person))
            return None
        return self.holder(key)

    def acquire(self, keys: Sequence[str], person: str) -> Holder | None:
        taken: list[str] = []
        try:
            for key in keys:
                held = self._try(key, person)
                if held is not None:
                    self.release(taken)
                    return held
                taken.append(key)
        except BaseException:  # a damaged lock file further on: give back what was taken
            self.release(taken)
            raise
        return None

    def assign(self, keys: Sequence[str], pr: int) -> None:
        for key in keys:
            held = self.holder(key)
            tmp = self._file(key).with_suffix(".tmp")
            tmp.write_bytes(_encode(pr, held.person if held else ""))
            os.replace(tmp, self._file(key))

    def release(self, keys: Sequence[str], pr: int | None = None) -> None:
        for key in keys:
            if pr is not None:
                held = self.holder(key)
                if held is None or held.pr != pr:
                    continue  # someone else's lock now
            self._file(key).unlink(missing_ok=True)

    def holder(self, key: str) -> Holder | None:
        try:
            raw = self._file(key).read_bytes()
        except FileNotFoundError:
            return None
        if not raw:
            return Holder(key, None, "", time.time())  # being written right now
        return _decode(key, raw, str(self._file(key)))

    def all(self) -> list[Holder]:
        out = []
        for entry in sorted(self.folder.glob("*.json")):
            key = entry.name[: -len(".json")].replace("__", ":")
            held = self.holder(key)
            if held:
                out.append(held)
        return out


class RedisLocks:
    def __init__(self, url: str, prefix: str = "aimodel:lock:") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Redis down or refusing: one line for the operator (never the URL: it may hold a password)."""
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as exc:
            raise StateUnavailable(messages.locks_unreachable(str(exc))) from None

    def acquire(self, keys: Sequence[str], person: str) -> Holder | None:
        with self._reachable():
            taken: list[str] = []
            for key in keys:
                if self.client.set(self.prefix + key, _encode(None, person), nx=True, ex=int(STALE_PENDING_SECONDS)):
                    taken.append(key)
                    continue
                self.release(taken)
                return self.holder(key) or Holder(key, None, "", time.time())
            return None

    def assign(self, keys: Sequence[str], pr: int) -> None:
        with self._reachable():
            for key in keys:
                held = self.holder(key)
                self.client.set(self.prefix + key, _encode(pr, held.person if held else ""))

    def release(self, keys: Sequence[str], pr: int | None = None) -> None:
        with self._reachable():
            for key in keys:
                if pr is not None:
                    held = self.holder(key)
                    if held is None or held.pr != pr:
                        continue
                self.client.delete(self.prefix + key)

    def holder(self, key: str) -> Holder | None:
        with self._reachable():
            raw = self.client.get(self.prefix + key)
            return None if raw is None else _decode(key, raw, f"the Redis key {self.prefix + key}")

    def all(self) -> list[Holder]:
        with self._reachable():
            out = []
            for name in self.client.scan_iter(self.prefix + "*"):
                key = name.decode()[len(self.prefix) :]
                held = self.holder(key)
                if held:
                    out.append(held)
            return out
