"""Defence in depth: the values of the bot's secrets never leave it, whatever went wrong.

`install(settings)` collects every configured secret (Slack, GitHub, the webhook secret,
the GitHub App key, cloud credentials from the environment, a password in REDIS_URL, the
signing key's PEM body) and makes every log record pass through `redact`. The places where
messages leave the bot call `redact` too: check summaries, pull request bodies,
notifications (Slack threads, GitHub comments), Slack replies and the CLI's output.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bot.config import Settings

MASK = "[redacted]"
MIN_LENGTH = 8  # shorter values would mask ordinary words; no real secret is that short


_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_factory_installed = False


def _pem_lines(text: str) -> list[str]:
    """A PEM's body lines: one of them alone is still part of the key."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")]


def _variants(value: str) -> list[str]:
    out = [value, json.dumps(value)[1:-1], quote(value, safe="")]
    if "-----BEGIN" in value:
        out += _pem_lines(value)
    return out


def _read_pem(path: str | Path) -> str:
    try:
        p = Path(path)
        if p.is_file() and p.stat().st_size < 64 * 1024:
            return p.read_text(errors="replace")
    except OSError:
        pass
    return ""


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value this process knows, longest first (so a longer one is masked whole)."""
    values: list[str] = list(settings.process_secrets)
    if settings.slack:
        values += [settings.slack.signing_secret, settings.slack.bot_token, settings.slack.app_token]
    if settings.github:
        gh = settings.github
        values += [gh.token, gh.webhook_secret, gh.app_private_key]
        if gh.app_private_key and "-----BEGIN" not in gh.app_private_key:
            values.append(_read_pem(gh.app_private_key))  # a path to the PEM file
    if settings.redis_url:
        values.append(urlsplit(settings.redis_url).password or "")
    values.append(_read_pem(settings.signing_key_path))
    found = {v for value in values if value for v in _variants(value) if len(v) >= MIN_LENGTH}
    return tuple(sorted(found, key=len, reverse=True))


def install(settings: Settings) -> None:
    """Remember this process's secrets and redact every log record from now on."""
    global _secrets, _factory_installed
    with _lock:
        _secrets = tuple(sorted({*_secrets, *secrets_of(settings)}, key=len, reverse=True))
        if not _factory_installed:
            _install_log_factory()
            _factory_installed = True


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    for secret in _secrets if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """Strings inside dicts and lists (a Slack payload, a notification), redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    return value


def _install_log_factory() -> None:
    previous = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
