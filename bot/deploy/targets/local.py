"""The embedded target: a model repository folder per environment on this machine.

Layout under `<home>/deploy/<env>/`:
  <model>/<version>/           the artifact and metadata.json, renamed into place when complete
  _releases/<app>.json         the application version and the exact model versions it runs with
  _state.json                  what this environment holds, for `aimodel list`
Every switch is write-new-then-rename, so a reader never sees an application pinned to a
model version that is not fully there.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

from bot.deploy.plan import EnvPlan
from bot.deploy.targets.base import (
    ApplyResult,
    DeployRefused,
    EnvStatus,
    Installer,
    ModelServer,
    ModelState,
)
from bot.fsutil import file_lock, read_json, write_json

KEEP_PREVIOUS = 1  # older versions kept per model, for a fast rollback


class LocalTarget:
    kind = "local"

    def __init__(self, root: Path, server: ModelServer | None = None) -> None:
        self.root = root
        self.server = server  # serves the placed versions (MLServer); None: files only

    def _env(self, env: str) -> Path:
        return self.root / env

    def environments(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def status(self, env: str) -> EnvStatus:
        path = self._env(env) / "_state.json"
        try:
            data = read_json(path)
        except (FileNotFoundError, ValueError):
            return EnvStatus(env)
        models = {name: ModelState(**state) for name, state in data.get("models", {}).items()}
        return EnvStatus(env, data.get("commit", ""), models, data.get("apps", {}))

    def release(self, env: str, app: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = read_json(self._env(env) / "_releases" / f"{app}.json")
        except FileNotFoundError:
            return None
        return data

    def apply(self, plan: EnvPlan, install: Installer) -> ApplyResult:
        folder = self._env(plan.env)
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / f".{plan.env}.lock"):
            return self._apply_locked(plan, install, folder)

    def _apply_locked(self, plan: EnvPlan, install: Installer, folder: Path) -> ApplyResult:
        result = ApplyResult(plan.env, plan.commit)
        previous = self.status(plan.env)
        states: dict[str, ModelState] = {}
        now = time.time()

        for name, model in sorted(plan.models.items()):
            final = folder / name / model.version
            if (final / "metadata.json").exists() and self.server is not None and self.server.endpoint(plan.env, name, model.version) is None:
                try:  # placed before it was served (serving off, or the extra installed since)
                    self.server.load(plan.env, name, model.version, final, model.format)
                except DeployRefused as exc:  # the next apply tries again
                    result.failed[name] = str(exc)
                    states[name] = ModelState(model.version, "failed", f"{model.version}: {exc}", now)
                    continue
            if (final / "metadata.json").exists():
                old = previous.models.get(name)
                keep = old if old and old.version == model.version and old.state == "running" else None
                states[name] = keep or ModelState(model.version, "running", deployed_at=now)
                continue
            staging = folder / ".staging" / uuid.uuid4().hex
            staging.mkdir(parents=True)
            try:
                install(model, staging)
                meta = {
                    "name": name, "version": model.version, "sha256": model.sha256, "format": model.format,
                    "artifact": model.uri, "source": model.source or model.uri, "commit": plan.commit, "deployed_at": now,
                }
                (staging / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
                final.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(final)
                if self.server is not None:
                    try:  # the version answers before any application is switched to it
                        self.server.load(plan.env, name, model.version, final, model.format)
                    except DeployRefused:
                        shutil.rmtree(final, ignore_errors=True)
                        raise
                result.applied.append(f"{name}@{model.version}")
                states[name] = ModelState(model.version, "running", deployed_at=now)
            except (DeployRefused, OSError) as exc:
                reason = str(exc)
                result.failed[name] = reason
                old = previous.models.get(name)
                # The old version keeps running; the state says the new one was refused.
                running = old.version if old and (folder / name / old.version / "metadata.json").exists() else ""
                states[name] = ModelState(running or model.version, "failed", f"{model.version}: {reason}", now)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

        releases = folder / "_releases"
        releases.mkdir(exist_ok=True)
        apps: dict[str, dict[str, object]] = {}
        for app_name, app in sorted(plan.apps.items()):
            if any(model in result.failed for model, _ in app.models):
                old_release = previous.apps.get(app_name)
                if old_release is not None:
                    apps[app_name] = old_release  # keep the last good release, all of it
                continue
            data = {**app.to_json(), "commit": plan.commit}
            current = self.release(plan.env, app_name)
            if current is None or {k: v for k, v in current.items() if k != "commit"} != app.to_json():
                write_json(releases / f"{app_name}.json", data)
                result.apps.append(app_name)
            apps[app_name] = data if current is None or app_name in result.apps else current

        for stale in releases.glob("*.json"):
            if stale.stem not in apps:
                stale.unlink()
                result.removed.append(f"app {stale.stem}")

        self._collect(folder, plan, states, apps, result)
        write_json(
            folder / "_state.json",
            {
                "env": plan.env,
                "commit": plan.commit,
                "models": {n: s.__dict__ for n, s in sorted(states.items())},
                "apps": apps,
            },
        )
        return result

    def _collect(
        self, folder: Path, plan: EnvPlan, states: dict[str, ModelState], apps: dict[str, dict[str, object]], result: ApplyResult
    ) -> None:
        """Remove what no release needs: models gone from the plan, and old versions."""
        pinned: set[tuple[str, str]] = set()
        for release in apps.values():
            models = release.get("models", {})
            if isinstance(models, dict):
                pinned.update((str(m), str(v)) for m, v in models.items())
        for model_dir in folder.iterdir():
            if not model_dir.is_dir() or model_dir.name.startswith((".", "_")):
                continue
            name = model_dir.name
            if name not in plan.models and name not in states:
                if not any(m == name for m, _ in pinned):
                    for version_dir in model_dir.iterdir():
                        if self.server is not None and version_dir.is_dir():
                            self.server.unload(plan.env, name, version_dir.name)
                    shutil.rmtree(model_dir, ignore_errors=True)
                    result.removed.append(name)
                continue
            keep = {states[name].version} if name in states else set()
            keep |= {v for m, v in pinned if m == name}
            others = sorted(
                (d for d in model_dir.iterdir() if d.is_dir() and d.name not in keep),
                key=lambda d: d.stat().st_mtime,
                reverse=True,
            )
            if self.server is not None:
                for old in others:  # kept on disk for a rollback, no longer served
                    self.server.unload(plan.env, name, old.name)
            for old in others[KEEP_PREVIOUS:]:
                shutil.rmtree(old, ignore_errors=True)
