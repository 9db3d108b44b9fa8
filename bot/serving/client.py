"""The few calls of MLServer's HTTP API the bot makes: repository load/unload, a version's
readiness, liveness and the repository index. Plain http.client: a loopback call must not go
through a proxy the environment names, and the CLI must not import a heavier client."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit


class ServingError(Exception):
    """The server did not do what was asked; the message is the server's reason."""


def _call(base: str, method: str, path: str, timeout: float, body: Any = None) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _reason(status: int, body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else f"HTTP {status}"


def _model(name: str) -> str:
    return quote(name, safe="")


def load(base: str, model: str, timeout: float) -> None:
    try:
        status, body = _call(base, "POST", f"/v2/repository/models/{_model(model)}/load", timeout)
    except OSError as exc:
        raise ServingError(str(exc) or type(exc).__name__) from None
    if status != 200:
        raise ServingError(_reason(status, body))


def unload(base: str, model: str, timeout: float) -> None:
    try:
        status, body = _call(base, "POST", f"/v2/repository/models/{_model(model)}/unload", timeout)
    except OSError as exc:
        raise ServingError(str(exc) or type(exc).__name__) from None
    if status not in (200, 404):  # 404: nothing of that name is loaded, which is what was asked
        raise ServingError(_reason(status, body))


def ready(base: str, model: str, version: str, timeout: float) -> bool:
    """The version's own readiness (/v2/health/ready can say ready while the server is failing)."""
    try:
        status, _ = _call(base, "GET", f"/v2/models/{_model(model)}/versions/{_model(version)}/ready", timeout)
    except OSError:
        return False
    return status == 200


def live(base: str, timeout: float) -> bool:
    try:
        status, _ = _call(base, "GET", "/v2/health/live", timeout)
    except OSError:
        return False
    return status == 200


def index(base: str, timeout: float) -> list[dict[str, Any]] | None:
    """Each model version in the repository with its state (READY, UNAVAILABLE...); None when
    the server does not answer."""
    try:
        status, body = _call(base, "POST", "/v2/repository/index", timeout, body={})
        items = json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        return None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None


def infer_url(base: str, model: str, version: str | None = None) -> str:
    if version is None:
        return f"{base}/v2/models/{_model(model)}/infer"
    return f"{base}/v2/models/{_model(model)}/versions/{_model(version)}/infer"
