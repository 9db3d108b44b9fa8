"""GitHub's REST API as the forge uses it: PyGithub with our own pacing and retries.

Every call goes through `call`: content writes take a token from a small bucket (GitHub's
secondary limits ask for no more than a few per second); 403/429 with `Retry-After` or a
rate-limit message, 5xx and connection errors are retried with backoff. What still fails
raises, and the queued task that called it fails and can be retried: no action is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import github
import requests
from github.GithubException import GithubException

from bot.forges.github_auth import TokenSource, retry_after_seconds

log = logging.getLogger("aimodel.github")

T = TypeVar("T")


class TokenBucket:
    """At most `rate` writes per second on average, `burst` at once; `take` waits its turn."""

    def __init__(self, rate: float = 3.0, burst: float = 5.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait:
            time.sleep(wait)
        return wait


class GitHubApi:
    """One repository's REST API: the PyGithub client, the write pacing, the retries."""

    def __init__(self, *, repo: str, api_url: str, source: TokenSource, writes_per_second: float = 3.0,
                 max_attempts: int = 6, timeout: int = 30) -> None:
        self.full_name = repo
        self.api_url = api_url.rstrip("/")
        self.source = source
        self.bucket = TokenBucket(writes_per_second, max(1.0, writes_per_second * 2))
        self.max_attempts = max_attempts
        self.gh = github.Github(
            base_url=self.api_url,
            auth=source.pygithub_auth(),
            retry=None,  # retries are ours: see call
            timeout=timeout,
            seconds_between_requests=None,
            seconds_between_writes=None,  # the token bucket paces writes instead
            user_agent="aimodel-gitops",
        )
        # A repository object that is never fetched (its URL is all the calls need).
        self.repo = github.Repository.Repository(
            self.gh.requester, attributes={"url": f"{self.api_url}/repos/{repo}", "full_name": repo}, completed=False
        )
        self.retries = 0
        self.waited_for_writes = 0.0

    def close(self) -> None:
        self.gh.close()

    def call(self, fn: Callable[[], T], *, write: bool = False, what: str = "") -> T:
        """Run one API operation with pacing for writes and retries for what GitHub says is
        temporary (rate limits with Retry-After, 5xx, dropped connections)."""
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            if write:
                self.waited_for_writes += self.bucket.take()
            try:
                return fn()
            except GithubException as exc:
                last = exc
                status = exc.status
                headers = exc.headers or {}
                message = str((exc.data or {}).get("message", "")) if isinstance(exc.data, dict) else ""
                limited = status == 429 or (
                    status == 403 and ("retry-after" in {k.lower() for k in headers} or "rate limit" in message.lower())
                )
                if status == 401 and self.source.is_app and attempt == 0:
                    self.source.invalidate()
                    continue
                if not (limited or status >= 500):
                    raise
                wait = retry_after_seconds(headers, attempt, secondary=status == 403 and "secondary" in message.lower())
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                wait = min(30.0, 0.5 * 2**attempt)
            self.retries += 1
            log.warning("GitHub %s: %s; retrying in %.1fs", what or "call", last, wait)
            time.sleep(wait)
        assert last is not None
        raise last

    def request(self, verb: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        write = verb in ("POST", "PATCH", "PUT", "DELETE")

        def go() -> Any:
            _headers, data = self.gh.requester.requestJsonAndCheck(verb, path, parameters=params, input=body)
            return data

        return self.call(go, write=write, what=f"{verb} {path}")

    def path(self, path: str = "") -> str:
        return f"/repos/{self.full_name}{path}"


def error_text(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        text = str(data.get("message", ""))
        errors = data.get("errors")
        if errors:
            text += ": " + "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)
        return text or str(exc.status)
    return str(data or exc.status)
