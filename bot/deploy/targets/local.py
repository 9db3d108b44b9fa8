"""The embedded target: a model repository folder per environment on this machine.

Layout under `<home>/deploy/<env>/`:
  <model>/<version>/           the model under a predictable name (model.onnx, model.safetensors, ...),
                               its signature bundle, the checks attestation and metadata.json;
                               renamed into place only when complete and verified
  _releases/<app>.json         the application's live release: its version and the exact model versions
  _state.json                  what this environment holds, for `aimodel list` and `status`
  .staging/                    versions being placed; what a killed apply left there is removed by the next

An apply is a release, in this order: place each new model version (copied from the store,
digest, signature and attestation verified by the installer), have the model server load
it, switch each application's release (one rename each), write a release record per
application, then retire the versions no kept release needs. A refused model leaves every
application that pins it on its previous release, whole; a process killed at any point
leaves the previous release live (nothing is switched before its versions are in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from bot.deploy.drift import Actual, LiveRelease, Placed
from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease
from bot.deploy.records import FAILED, OK, ModelPin, ReleaseLog, ReleaseRecord
from bot.deploy.targets.base import (
    ApplyResult,
    DeployRefused,
    EnvStatus,
    Installer,
    ModelServer,
    ModelState,
    Provenance,
    deployed_name,
)
from bot.fsutil import file_lock, read_json, write_json
from bot.messages import releases as msg

KEEP_RELEASES = 3  # releases per environment and application whose model versions stay on disk (rollback)
METADATA = "metadata.json"
STAGING = ".staging"


class LocalTarget:
    kind = "local"

    def __init__(self, root: Path, server: ModelServer | None = None, *, releases: ReleaseLog | None = None,
                 keep: int = KEEP_RELEASES) -> None:
        """`releases`: where release records go (None: none are written, and only the live
        releases' versions are kept). `keep`: the last N releases of each application whose
        model versions stay placed."""
        self.root = root
        self.server = server
        self.releases = releases
        self.keep = max(1, keep)

    def _env(self, env: str) -> Path:
        return self.root / env

    def environments(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ------------------------------------------------------------------ reading

    def _state(self, env: str) -> dict[str, Any]:
        try:
            data = read_json(self._env(env) / "_state.json")
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def status(self, env: str) -> EnvStatus:
        data = self._state(env)
        models = {name: ModelState(**state) for name, state in data.get("models", {}).items()}
        return EnvStatus(env, data.get("commit", ""), models, data.get("apps", {}))

    def last_apply(self, env: str) -> dict[str, Any]:
        """The last apply's outcome: {"at", "commit", "failed": [reasons]} (empty reasons: it went well)."""
        data = self._state(env)
        return {"at": data.get("at", 0.0), "commit": data.get("commit", ""), "failed": list(data.get("failures", []))}

    def release(self, env: str, app: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = read_json(self._env(env) / "_releases" / f"{app}.json")
        except (FileNotFoundError, ValueError):
            return None
        return data

    def _live(self, env: str) -> dict[str, dict[str, Any]]:
        folder = self._env(env) / "_releases"
        if not folder.is_dir():
            return {}
        return {p.stem: data for p in sorted(folder.glob("*.json")) if (data := self.release(env, p.stem)) is not None}

    def actual(self, env: str, *, measure: bool = False) -> Actual:
        """What the environment holds; `measure`: hash every deployed file (drift), holding
        the environment's lock so that an apply's renames are never seen half done."""
        if measure and self._env(env).is_dir():
            with file_lock(self.root / f".{env}.lock"):
                return self._actual(env, measure)
        return self._actual(env, measure)

    def _actual(self, env: str, measure: bool) -> Actual:
        apps = {
            name: LiveRelease(str(r.get("version", "")), {str(m): str(v) for m, v in dict(r.get("models") or {}).items()})
            for name, r in self._live(env).items()
        }
        placed: dict[tuple[str, str], Placed] = {}
        for model_dir in _children(self._env(env)):
            for version_dir in _children(model_dir):
                placed[(model_dir.name, version_dir.name)] = _placed(version_dir, measure)
        return Actual(env, apps, placed)

    # ------------------------------------------------------------------ applying

    def apply(self, plan: EnvPlan, install: Installer, who: Provenance | None = None, *, repair: bool = False) -> ApplyResult:
        """Make the environment hold `plan`. `repair` (sync): re-hash the versions in use and
        place again any whose files were changed by hand."""
        folder = self._env(plan.env)
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / f".{plan.env}.lock"):
            # Whoever placed these is dead: we hold the environment's lock.
            shutil.rmtree(folder / STAGING, ignore_errors=True)
            return self._apply_locked(plan, install, who or Provenance(), repair, folder)

    def _apply_locked(self, plan: EnvPlan, install: Installer, who: Provenance, repair: bool, folder: Path) -> ApplyResult:
        started = time.time()
        result = ApplyResult(plan.env, plan.commit)
        previous = self.status(plan.env)
        live = self._live(plan.env)
        in_use = {(str(m), str(v)) for r in live.values() for m, v in dict(r.get("models") or {}).items()}
        changing = [a for name, a in sorted(plan.apps.items()) if _differs(live.get(name), a)]
        ids = {a.name: self.releases.next_id(plan.env, a.name) if self.releases else "" for a in changing}
        placed_by = {(m, v): ids[a.name] for a in reversed(changing) for m, v in a.models}
        states: dict[str, ModelState] = {}

        # 1. place and load each model version
        for name, model in sorted(plan.models.items()):
            final = folder / name / model.version
            try:
                if not _in_place(final, model, verify=repair or (name, model.version) not in in_use):
                    repaired = final.exists()
                    self._place(model, final, install, folder, plan.commit, placed_by.get((name, model.version), ""))
                    (result.repaired if repaired else result.applied).append(f"{name}@{model.version}")
                if self.server is not None and self.server.endpoint(plan.env, name, model.version) is None:
                    self.server.load(plan.env, name, model.version, final, model.format)
            except (DeployRefused, OSError) as exc:
                reason = str(exc)
                result.failed[name] = reason
                old = previous.models.get(name)
                # The old version keeps running; the state says the new one was refused.
                running = old.version if old and (folder / name / old.version / METADATA).exists() else ""
                states[name] = ModelState(running or model.version, "failed", f"{model.version}: {reason}", started)
                continue
            old = previous.models.get(name)
            keep = old if old and old.version == model.version and old.state == "running" else None
            states[name] = keep or ModelState(model.version, "running", deployed_at=started)

        # 2. switch each application's release, all of it or none of it
        releases = folder / "_releases"
        releases.mkdir(exist_ok=True)
        for app in changing:
            refused = {m: result.failed[m] for m, _ in app.models if m in result.failed}
            if refused:
                result.kept[app.name] = "; ".join(msg.kept_previous(m, r) for m, r in refused.items())
                continue
            wiring = self._endpoints(plan.env, app)
            # the application reads where its models answer from its release: updated together
            write_json(releases / f"{app.name}.json", {**app.to_json(), "commit": plan.commit, "release": ids[app.name], **wiring})
            result.apps.append(app.name)
        for stale in sorted(set(live) - set(plan.apps)):
            (releases / f"{stale}.json").unlink(missing_ok=True)
            result.removed.append(f"app {stale}")

        # 3. one record per application whose release this apply switched or failed to switch
        finished = time.time()
        for app in changing:
            if self.releases is None:
                continue
            reason = result.kept.get(app.name, "")
            self.releases.append(ReleaseRecord(
                id=ids[app.name], env=plan.env, app=app.name, app_version=app.version,
                models={m: ModelPin(v, plan.models[m].sha256 if m in plan.models else "") for m, v in app.models},
                commit=plan.commit, pr=who.pr, author=who.author, approvers=who.approvers,
                started=started, finished=finished, result=FAILED if reason else OK, reason=reason,
            ))
            result.records.append(ids[app.name])

        # 4. retire what no kept release needs
        self._retire(folder, plan, result)
        apps = self._live(plan.env)
        write_json(folder / "_state.json", {
            "env": plan.env, "commit": plan.commit, "at": finished,
            "models": {n: s.__dict__ for n, s in sorted(states.items())},
            "apps": apps,
            "failures": [f"{m} {plan.models[m].version}: {r}" for m, r in sorted(result.failed.items()) if m in plan.models]
            + [f"{m}: {r}" for m, r in sorted(result.failed.items()) if m not in plan.models],
        })
        return result

    def _place(self, model: ModelRelease, final: Path, install: Installer, folder: Path, commit: str, release: str) -> None:
        """Install into a staging folder, describe it, then rename it into place."""
        staging = folder / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            install(model, staging)
            name = deployed_name(model)
            files = {rel: model.sha256 if rel == name else _sha256(staging / rel) for rel in _files(staging)}
            # No fsync of its own, as for the model file: the rename below makes the version
            # visible, and an empty or damaged metadata.json makes the next apply place it again.
            _write(staging / METADATA, {
                "name": model.name, "version": model.version, "file": name, "sha256": model.sha256, "format": model.format,
                "size": model.size, "release": release, "commit": commit, "source": model.source or model.uri,
                "artifact": model.uri, "files": files, "deployed_at": time.time(),
            })
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # placed before, changed by hand since: replaced whole
                final.rename(folder / STAGING / f"{uuid.uuid4().hex}.old")
            staging.rename(final)
        finally:
            shutil.rmtree(folder / STAGING, ignore_errors=True)

    def _kept_versions(self, env: str, plan: EnvPlan) -> set[tuple[str, str]]:
        """The model versions of the live releases and of the last N successful releases of
        each application the environment has, and what the plan places."""
        keep = {(m, v) for r in self._live(env).values() for m, v in dict(r.get("models") or {}).items()}
        keep |= {(m.name, m.version) for m in plan.models.values()}
        if self.releases is not None:
            by_app: dict[str, list[ReleaseRecord]] = {}
            for record in self.releases.records(env):
                if record.ok and record.app in plan.apps:
                    by_app.setdefault(record.app, []).append(record)
            for records in by_app.values():
                keep |= {(m, pin.version) for r in records[-self.keep:] for m, pin in r.models.items()}
        return keep

    def _endpoints(self, env: str, app: AppRelease) -> dict[str, Any]:
        """{"endpoints": {model: URL}} of the versions the release pins, when a server runs them."""
        if self.server is None:
            return {}
        found = {m: url for m, v in app.models if (url := self.server.endpoint(env, m, v)) is not None}
        return {"endpoints": found} if found else {}

    def _retire(self, folder: Path, plan: EnvPlan, result: ApplyResult) -> None:
        """Stop serving what no live release runs (its files stay for a fast rollback while a
        kept release needs them), and remove the files no kept release needs."""
        keep = self._kept_versions(plan.env, plan)
        served = {(m, v) for r in self._live(plan.env).values() for m, v in dict(r.get("models") or {}).items()}
        served |= {(m.name, m.version) for m in plan.models.values()}
        for model_dir in _children(folder):
            for version_dir in _children(model_dir):
                pair = (model_dir.name, version_dir.name)
                if self.server is not None and pair not in served:
                    self.server.unload(plan.env, *pair)  # cheap: nothing happens for a version not loaded
                if pair in keep:
                    continue
                shutil.rmtree(version_dir, ignore_errors=True)
                result.removed.append(f"{model_dir.name}@{version_dir.name}")
            if not any(model_dir.iterdir()):
                model_dir.rmdir()


def _children(folder: Path) -> list[Path]:
    """Model or version folders: not the target's own files (_releases, .staging)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _differs(live: dict[str, Any] | None, app: AppRelease) -> bool:
    return live is None or {k: v for k, v in live.items() if k not in ("commit", "release", "endpoints")} != app.to_json()


def _files(root: Path) -> list[str]:
    """Every file under root but metadata.json, as relative POSIX paths."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            rel = (Path(dirpath) / n).relative_to(root).as_posix()
            if rel != METADATA:
                out.append(rel)
    return sorted(out)


def _write(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _metadata(version_dir: Path) -> dict[str, Any]:
    try:
        data = read_json(version_dir / METADATA)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _placed(version_dir: Path, measure: bool) -> Placed:
    meta = _metadata(version_dir)
    files = meta.get("files")
    if not isinstance(files, dict):  # placed before files were described: nothing to compare with
        return Placed(str(meta.get("sha256", "")), {}, None)
    measured = {rel: _sha256(version_dir / rel) for rel in _files(version_dir)} if measure else None
    return Placed(str(meta.get("sha256", "")), {str(k): str(v) for k, v in files.items()}, measured)


def _in_place(final: Path, model: ModelRelease, *, verify: bool) -> bool:
    """This exact version is placed (its metadata names the digest); `verify`: and every
    file still has the digest it was placed with."""
    meta = _metadata(final)
    if meta.get("sha256") != model.sha256:
        return False
    if not verify:
        return True
    placed = _placed(final, measure=True)
    return placed.measured is None or dict(placed.measured) == dict(placed.files)
