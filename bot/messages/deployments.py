"""What a release says on the forge's deployments page (GitHub's Environments)."""

from __future__ import annotations

from collections.abc import Mapping

STATUS_LIMIT = 140  # GitHub refuses a longer deployment status description


def clip(text: str, limit: int = STATUS_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def release_line(app: str, app_version: str, models: Mapping[str, str]) -> str:
    pins = ", ".join(f"{name} {version}" for name, version in sorted(models.items()))
    return clip(f"{app} {app_version}: {pins}" if pins else f"{app} {app_version}")


def live(release: str, env: str) -> str:
    return clip(f"{release} is live in {env}")


def refused(release: str, reason: str) -> str:
    return clip(f"{release} refused: {reason or 'no reason recorded'}; the previous release stays live")
