"""The local target's model server: the deployed ONNX versions answer through MLServer.

Implements ModelServer (bot.deploy.targets.base) on the servers `aimodel serve` runs, one per
environment (bot.serving.supervisor). `load` writes the version's model-settings.json into the
environment's MLServer repository (bot.serving.layout), asks MLServer to load the model
through its repository API (no restart) and waits for that version's own ready endpoint; a version that does not become ready is refused with MLServer's
reason, its settings file removed, and the versions already serving go on answering.
Without a running `aimodel serve` the files are still written: the servers load them when
they start.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from bot.deploy.targets.base import DeployRefused
from bot.messages import serving as msg
from bot.serving import client, layout, servers

log = logging.getLogger("aimodel.serving")


class MLServerModels:
    def __init__(self, home: Path, timeout: float = 60.0) -> None:
        self.home = home
        self.timeout = timeout

    def _server(self, env: str) -> servers.ServerRecord | None:
        """The environment's server; when the supervisor runs but has not started it yet (the
        first model of this environment), wait for it to."""
        record = servers.read(self.home, env)
        if record is not None or not servers.supervisor_running(self.home):
            return record
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            record = servers.read(self.home, env)
            if record is not None:
                return record
            if not servers.supervisor_running(self.home):
                return None
        raise DeployRefused(msg.server_not_started(env, self.timeout))

    def load(self, env: str, model: str, version: str, folder: Path, fmt: str) -> None:
        repo = layout.repository(self.home, env)
        if not layout.write_settings(repo, model, version, fmt, folder):
            return  # a format MLServer does not serve here: deployed as files
        try:
            record = self._server(env)
        except DeployRefused:
            layout.remove_settings(repo, model, version)
            raise
        if record is None:
            return  # serving is off: the server loads the settings file when it starts
        try:
            client.load(record.url, model, self.timeout)
        except client.ServingError as exc:
            layout.remove_settings(repo, model, version)  # MLServer dropped the version; the others keep serving
            raise DeployRefused(msg.not_loaded(model, version, str(exc))) from None
        deadline = time.monotonic() + self.timeout
        while not client.ready(record.url, model, version, min(5.0, self.timeout)):
            if time.monotonic() >= deadline:
                layout.remove_settings(repo, model, version)
                with contextlib.suppress(client.ServingError):
                    self._settle(record, env, model)
                raise DeployRefused(msg.not_ready(model, version, self.timeout))
            time.sleep(0.02)

    def unload(self, env: str, model: str, version: str) -> None:
        repo = layout.repository(self.home, env)
        if not layout.has_settings(repo, model, version):
            return  # not served: nothing to ask MLServer
        layout.remove_settings(repo, model, version)
        record = servers.read(self.home, env)
        if record is None:
            return
        try:
            self._settle(record, env, model)
        except client.ServingError as exc:  # the files are gone: a restarted server will not load it
            log.warning(msg.unload_failed(env, model, version, str(exc)))

    def _settle(self, record: servers.ServerRecord, env: str, model: str) -> None:
        """Make MLServer serve exactly the versions with a settings file: a repository load
        loads those and unloads the rest; with none left, unload the name."""
        if layout.versions_of(layout.repository(self.home, env), model):
            client.load(record.url, model, self.timeout)
        else:
            client.unload(record.url, model, self.timeout)

    def endpoint(self, env: str, model: str, version: str) -> str | None:
        if not layout.has_settings(layout.repository(self.home, env), model, version):
            return None
        record = servers.read(self.home, env)
        return None if record is None else client.infer_url(record.url, model, version)
