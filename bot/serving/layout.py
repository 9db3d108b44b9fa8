"""MLServer's model repository layout, inside the local target's folders.

`<home>/deploy/<env>/` is the repository root MLServer scans; each served version folder
`<model>/<version>/` gets a `model-settings.json` (name, implementation, parameters.version,
parameters.uri). MLServer serves, per model name, exactly the versions that have one: a
repository load of a name loads those and unloads the others. So the settings file is
written when a version is loaded and removed when it is unloaded or refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.fsutil import write_atomic

SETTINGS_FILE = "model-settings.json"
ONNX_RUNTIME = "bot.serving.onnx_runtime.OnnxRuntime"
RUNTIMES = {"onnx": ONNX_RUNTIME}  # formats MLServer serves here, and the runtime of each
DEFAULT_FILES = {"onnx": "model.onnx"}


def served(fmt: str) -> bool:
    return fmt in RUNTIMES


def model_file(folder: Path, fmt: str) -> str | None:
    """The model's file name in its version folder: the predictable name (model.onnx), else the
    one file of that format (a folder deployed before the names were fixed)."""
    name = DEFAULT_FILES.get(fmt)
    if name is None:
        return None
    if (folder / name).is_file():
        return name
    found = sorted(p.name for p in folder.glob(f"*.{fmt}") if p.is_file())
    return found[0] if len(found) == 1 else None


def model_settings(model: str, version: str, fmt: str, file: str) -> dict[str, Any]:
    return {
        "name": model,
        "implementation": RUNTIMES[fmt],
        "parameters": {"version": version, "uri": f"./{file}"},  # relative to this file's folder
    }


def write_settings(folder: Path, model: str, version: str, fmt: str) -> bool:
    """Write the version's model-settings.json; False when there is nothing MLServer can serve."""
    if not served(fmt):
        return False
    file = model_file(folder, fmt)
    if file is None:
        return False
    text = json.dumps(model_settings(model, version, fmt, file), indent=2) + "\n"
    write_atomic(folder / SETTINGS_FILE, text.encode())
    return True


def remove_settings(folder: Path) -> None:
    (folder / SETTINGS_FILE).unlink(missing_ok=True)


def has_settings(folder: Path) -> bool:
    return (folder / SETTINGS_FILE).is_file()


def served_versions(env_root: Path) -> dict[str, list[str]]:
    """Model name -> the versions that have settings (what MLServer serves once loaded)."""
    found: dict[str, list[str]] = {}
    if not env_root.is_dir():
        return found
    for settings in sorted(env_root.glob(f"*/*/{SETTINGS_FILE}")):
        model, version = settings.parent.parent.name, settings.parent.name
        if model.startswith((".", "_")):
            continue
        found.setdefault(model, []).append(version)
    return found


def versions_of(env_root: Path, model: str) -> list[str]:
    return sorted(p.parent.name for p in (env_root / model).glob(f"*/{SETTINGS_FILE}"))
