"""Credentials for GitHub: a plain token, or a GitHub App's installation tokens.

One `TokenSource` per process serves both PyGithub (as a `github.Auth.Auth`) and git (as
an `http.extraheader`), so the API and the clone always use the same, current token.

App authentication: a JWT signed with the App's private key (RS256, 9 minutes) finds the
installation of the repository and asks for an installation token; the token is cached and
refreshed five minutes before it expires (tokens live one hour), under a lock, so threads
never race to refresh and no request ever carries an expired token.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import github
import jwt
import requests

REFRESH_BEFORE_SECONDS = 300.0
JWT_LIFETIME_SECONDS = 540
USER_AGENT = "aimodel-gitops"


class GitHubAuthError(RuntimeError):
    """The credentials were refused or cannot be used; the message names the setting."""


def read_private_key(value: str) -> str:
    """GITHUB_APP_PRIVATE_KEY is PEM text (newlines may be written as \\n) or a path to a PEM file."""
    text = value.strip()
    if "-----BEGIN" in text:
        return text.replace("\\n", "\n") + "\n"
    path = Path(text).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise GitHubAuthError(f"GITHUB_APP_PRIVATE_KEY: cannot read {path}: {exc.strerror}") from None


@dataclass
class _Cached:
    token: str
    expires_at: float  # epoch seconds; inf for a plain token


class TokenSource:
    """A token for API calls and git, refreshed before expiry when it comes from an App."""

    def __init__(
        self,
        *,
        api_url: str,
        repo: str,
        token: str = "",
        app_id: str = "",
        app_private_key: str = "",
        timeout: float = 15.0,
    ) -> None:
        if not token and not (app_id and app_private_key):
            raise GitHubAuthError("set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")
        self.api_url = api_url.rstrip("/")
        self.repo = repo
        self.app_id = app_id
        self._key = read_private_key(app_private_key) if app_id and app_private_key else ""
        self._plain = token if not self._key else ""
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cached: _Cached | None = _Cached(token, float("inf")) if self._plain else None
        self.installation_id: int | None = None
        self.refreshes = 0

    @property
    def is_app(self) -> bool:
        """App credentials: check runs are available (a plain token gets commit statuses)."""
        return bool(self._key)

    # ------------------------------------------------------------------ App JWT and installation token

    def app_jwt(self) -> str:
        now = int(time.time())
        claims = {"iat": now - 60, "exp": now + JWT_LIFETIME_SECONDS, "iss": str(self.app_id)}
        try:
            return jwt.encode(claims, self._key, algorithm="RS256")
        except (ValueError, TypeError) as exc:
            raise GitHubAuthError(f"GITHUB_APP_PRIVATE_KEY is not a usable RSA private key: {exc}") from None

    def _app_request(self, method: str, path: str) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.app_jwt()}",
            "Accept": "application/vnd.github+json",
            "User-Agent": USER_AGENT,
        }
        last: str = ""
        for attempt in range(5):
            try:
                resp = requests.request(method, f"{self.api_url}{path}", headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                last = str(exc)
                time.sleep(min(8.0, 0.5 * 2**attempt))
                continue
            with resp:
                if resp.status_code in (429, 500, 502, 503, 504) or (
                    resp.status_code == 403 and "retry-after" in {k.lower() for k in resp.headers}
                ):
                    last = f"HTTP {resp.status_code}"
                    time.sleep(retry_after_seconds(resp.headers, attempt))
                    continue
                if resp.status_code >= 400:
                    try:
                        message = resp.json().get("message", resp.text)
                    except ValueError:
                        message = resp.text
                    raise GitHubAuthError(f"GitHub App {self.app_id}: {method} {path} answered {resp.status_code}: {message}")
                data: dict[str, Any] = resp.json()
                return data
        raise GitHubAuthError(f"GitHub App {self.app_id}: {method} {path} kept failing: {last}")

    def _installation(self) -> int:
        if self.installation_id is None:
            data = self._app_request("GET", f"/repos/{self.repo}/installation")
            self.installation_id = int(data["id"])
        return self.installation_id

    def _refresh(self) -> _Cached:
        installation = self._installation()
        data = self._app_request("POST", f"/app/installations/{installation}/access_tokens")
        expires = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00")).timestamp()
        self.refreshes += 1
        return _Cached(str(data["token"]), expires)

    def token(self) -> str:
        with self._lock:
            cached = self._cached
            if cached is None or cached.expires_at - time.time() < REFRESH_BEFORE_SECONDS:
                cached = self._cached = self._refresh()
            return cached.token

    def invalidate(self) -> None:
        """Forget an installation token the server refused (revoked, clock skew): the next
        call fetches a new one. A plain token is kept: there is nothing to refresh."""
        with self._lock:
            if self._key:
                self._cached = None

    # ------------------------------------------------------------------ git

    def git_env(self) -> dict[str, str]:
        """Environment that makes git send the token (never written into .git/config)."""
        basic = base64.b64encode(f"x-access-token:{self.token()}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraheader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_TERMINAL_PROMPT": "0",
        }

    def pygithub_auth(self) -> github.Auth.Auth:
        return _SourceAuth(self)


class _SourceAuth(github.Auth.Auth):
    """PyGithub asks for `token` on every request; the source answers from its cache."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._source.token()


def retry_after_seconds(headers: Any, attempt: int, *, cap: float = 60.0, secondary: bool = False) -> float:
    """Seconds to wait, as GitHub documents it: Retry-After; else, with no requests left, until
    the primary limit resets; else a minute for a secondary limit; else exponential backoff."""
    lower = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    if "retry-after" in lower:
        try:
            return min(cap, max(0.0, float(lower["retry-after"])))
        except ValueError:
            pass
    if lower.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lower:
        try:
            return min(cap, max(0.0, float(lower["x-ratelimit-reset"]) - time.time() + 1))
        except ValueError:
            pass
    if secondary:
        return cap
    return float(min(cap, 0.5 * 2**attempt))
