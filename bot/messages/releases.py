"""What a person reads about releases: applies, retries, drift and `aimodel sync`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _pins(models: Mapping[str, str]) -> str:
    return ", ".join(f"{m} {v}" for m, v in sorted(models.items())) or "no models"


# --------------------------------------------------------------------------- differences


def app_not_released(env: str, app: str, version: str, models: Mapping[str, str]) -> str:
    return f"{env}: {app} {version} ({_pins(models)}) is not released"


def app_runs_other(env: str, app: str, live: str, live_models: Mapping[str, str], version: str, models: Mapping[str, str]) -> str:
    return f"{env}: {app} runs {live} ({_pins(live_models)}), the desired release is {version} ({_pins(models)})"


def app_still_released(env: str, app: str) -> str:
    return f"{env}: {app} is still released, the desired state no longer has it there"


def version_missing(env: str, model: str, version: str) -> str:
    return f"{env}: {model} {version} is not in place"


def version_other_bytes(env: str, model: str, version: str) -> str:
    return f"{env}: {model} {version} in place holds other bytes than the manifest pins"


def release_changed(env: str, app: str, live: str, live_models: Mapping[str, str], was: str, was_models: Mapping[str, str]) -> str:
    return f"{env}: the release of {app} was changed by hand: it names {live} ({_pins(live_models)}), the last release was {was} ({_pins(was_models)})"


def release_removed(env: str, app: str) -> str:
    return f"{env}: the release of {app} was removed by hand"


def version_removed(env: str, model: str, version: str) -> str:
    return f"{env}: {model} {version} was removed, a live release runs it"


def metadata_removed(env: str, model: str, version: str) -> str:
    return f"{env}: {model} {version}: metadata.json was removed or damaged"


def file_removed(env: str, model: str, version: str, path: str) -> str:
    return f"{env}: {model} {version}: {path} was removed"


def file_changed(env: str, model: str, version: str, path: str) -> str:
    return f"{env}: {model} {version}: {path} was changed (its sha256 differs from what was deployed)"


def file_added(env: str, model: str, version: str, path: str) -> str:
    return f"{env}: {model} {version}: {path} was added by hand"


# --------------------------------------------------------------------------- applies


def kept_previous(model: str, reason: str) -> str:
    return f"{model} refused: {reason}"


def apply_summary(env: str, applied: Sequence[str], apps: Sequence[str], removed: Sequence[str],
                  failed: Mapping[str, str], kept: Mapping[str, str], repaired: Sequence[str], records: Sequence[str]) -> str:
    """One line per environment of a deploy or a sync."""
    parts = []
    if repaired:
        parts.append(f"repaired {', '.join(repaired)}")
    if applied:
        parts.append(f"deployed {', '.join(applied)}")
    if apps:
        parts.append(f"released {', '.join(apps)}")
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    for model, reason in failed.items():
        parts.append(f"REFUSED {model}: {reason}")
    for app in kept:
        parts.append(f"{app} keeps its previous release")
    if records:
        parts.append(f"records {', '.join(records)}")
    return f"{env}: " + ("; ".join(parts) if parts else "nothing changed")


def retry_hint(env: str) -> str:
    return f"The previous release stays live in {env}. Fix the cause, then run `aimodel sync --env {env}` (it is also retried on its own a few times)."


def gave_up(attempts: int) -> str:
    return f"Gave up after {attempts} attempts; `aimodel sync` applies it once the cause is fixed."


def retried_ok(attempts: int) -> str:
    return f"Applied on attempt {attempts}."


# --------------------------------------------------------------------------- sync and drift


def sync_heading(envs: Sequence[str]) -> str:
    return f"Sync of {', '.join(envs)} to the default branch:" if envs else "No environment to sync."


def sync_remaining(found: Sequence[str]) -> str:
    return "Still different from the desired state:\n" + "\n".join(f"  {line}" for line in found)


def no_such_env(env: str, known: Sequence[str]) -> str:
    return f"There is no environment {env!r}; the environments are {', '.join(known) or 'none yet'}."


def drift_notice(env: str, found: Sequence[str]) -> str:
    lines = "\n".join(f"- {line}" for line in found)
    return f"Drift in {env}: what is deployed differs from the desired state.\n{lines}\nRepair it with `aimodel sync --env {env}`."


def deploy_failed_notice(env: str, reasons: Sequence[str]) -> str:
    return f"Apply to {env} failed: {'; '.join(reasons)}. {retry_hint(env)}"


def status_lines(deploys: Mapping[str, Mapping[str, Any]], drift: Mapping[str, Mapping[str, Any]]) -> str:
    """`aimodel status`: per environment, a failed apply's reason and any drift."""
    lines = []
    for env, state in sorted(deploys.items()):
        for reason in state.get("failed", []):
            lines.append(f"{env}: apply failed: {reason} (retry: `aimodel sync --env {env}`)")
    for env, found in sorted(drift.items()):
        lines.append(f"{env}: drift found:")
        lines.extend(f"  {line}" for line in found.get("found", []))
        lines.append(f"  repair it with `aimodel sync --env {env}`")
    return "\n".join(lines) if lines else "deployments: as desired (no failed apply, no drift found)"


def list_failures(rows: Sequence[Mapping[str, Any]]) -> str:
    """Under `aimodel list`: why a version shown as failed is not running."""
    lines = []
    for row in rows:
        for env, state in sorted(row.get("environments", {}).items()):
            if state.get("state") == "failed" and state.get("reason"):
                lines.append(f"{row['name']} in {env}: {state['reason']} (retry: `aimodel sync --env {env}`)")
    return "\n".join(lines)
