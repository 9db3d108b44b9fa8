"""MLServer's model repository for one environment: `<home>/serving/<env>/`.

Each served model version has `<model>/<version>/model-settings.json` there (name,
implementation, parameters.version, parameters.uri = the model file in the local target's
folder `<home>/deploy/<env>/<model>/<version>/`). The deployed folder stays exactly what the
target placed and recorded; the repository holds nothing but the files the bot writes.
MLServer serves, per model name, exactly the versions that have a settings file: a
repository load of a name loads those and unloads the others. So the file is written when a
version is loaded and removed when it is unloaded or refused.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from bot.fsutil import write_atomic

SETTINGS_FILE = "model-settings.json"
ONNX_RUNTIME = "bot.serving.onnx_runtime.OnnxRuntime"
RUNTIMES = {"onnx": ONNX_RUNTIME}  # formats MLServer serves here, and the runtime of each
DEFAULT_FILES = {"onnx": "model.onnx"}


def repository(home: Path, env: str) -> Path:
    return home / "serving" / env


def served(fmt: str) -> bool:
    return fmt in RUNTIMES


def model_file(folder: Path, fmt: str) -> Path | None:
    """The model's file in its deployed folder: the predictable name (model.onnx), else the one
    file of that format (a folder deployed before the names were fixed)."""
    name = DEFAULT_FILES.get(fmt)
    if name is None:
        return None
    if (folder / name).is_file():
        return folder / name
    found = sorted(p for p in folder.glob(f"*.{fmt}") if p.is_file())
    return found[0] if len(found) == 1 else None


def model_settings(model: str, version: str, fmt: str, file: Path) -> dict[str, Any]:
    return {
        "name": model,
        "implementation": RUNTIMES[fmt],
        "parameters": {"version": version, "uri": str(file.resolve())},
    }


def settings_path(repo: Path, model: str, version: str) -> Path:
    return repo / model / version / SETTINGS_FILE


def write_settings(repo: Path, model: str, version: str, fmt: str, folder: Path) -> bool:
    """Write the version's model-settings.json; False when there is nothing MLServer can serve."""
    if not served(fmt):
        return False
    file = model_file(folder, fmt)
    if file is None:
        return False
    text = json.dumps(model_settings(model, version, fmt, file), indent=2) + "\n"
    write_atomic(settings_path(repo, model, version), text.encode())
    return True


def remove_settings(repo: Path, model: str, version: str) -> None:
    path = settings_path(repo, model, version)
    path.unlink(missing_ok=True)
    for empty in (path.parent, path.parent.parent):
        with contextlib.suppress(OSError):  # not empty, or already gone
            empty.rmdir()


def has_settings(repo: Path, model: str, version: str) -> bool:
    return settings_path(repo, model, version).is_file()


def served_versions(repo: Path) -> dict[str, list[str]]:
    """Model name -> the versions that have settings (what MLServer serves once loaded)."""
    found: dict[str, list[str]] = {}
    for settings in sorted(repo.glob(f"*/*/{SETTINGS_FILE}")):
        found.setdefault(settings.parent.parent.name, []).append(settings.parent.name)
    return found


def versions_of(repo: Path, model: str) -> list[str]:
    return sorted(p.parent.name for p in (repo / model).glob(f"*/{SETTINGS_FILE}"))
