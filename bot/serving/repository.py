"""The model repository MLServer reads (runs inside MLServer; its settings name this class).

MLServer's default repository loads every `model-settings.json` found at any depth under the
root, and a settings file names the Python class MLServer imports. The bot's repository holds
only the files it writes (bot.serving.layout); still, this one reads nothing but
`<root>/<model>/<version>/model-settings.json` and accepts only the runtimes the bot names.
"""

from __future__ import annotations

import builtins
from pathlib import Path

from mlserver.errors import ModelNotFound
from mlserver.logging import logger
from mlserver.repository import ModelRepository
from mlserver.repository.load import load_model_settings
from mlserver.settings import ModelSettings

from bot.serving.layout import RUNTIMES, SETTINGS_FILE


class VersionFolders(ModelRepository):  # type: ignore[misc]  # MLServer ships no type information
    def __init__(self, root: str) -> None:
        self._root = Path(root)

    def _read(self, pattern: str) -> list[ModelSettings]:
        found = []
        for path in sorted(self._root.glob(pattern)):
            if path.parent.parent.name.startswith((".", "_")):
                continue
            try:
                settings = load_model_settings(str(path))
            except Exception:  # a damaged file: logged, the other models still load
                logger.exception(f"cannot read {path}")
                continue
            if settings.implementation_ not in RUNTIMES.values():
                logger.error(f"{path} names {settings.implementation_!r}, not a runtime of the bot; skipped")
                continue
            found.append(settings)
        return found

    async def list(self) -> list[ModelSettings]:
        return self._read(f"*/*/{SETTINGS_FILE}")

    async def find(self, name: str) -> builtins.list[ModelSettings]:  # `list` is a method here
        found = [s for s in self._read(f"{_glob_escape(name)}/*/{SETTINGS_FILE}") if s.name == name]
        if not found:
            raise ModelNotFound(name)
        return found


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
