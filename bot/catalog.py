"""All manifests of the repository at one commit, with referential integrity.

Parsing 10,000 YAML files costs seconds; a blob's content never changes, so parsed
manifests are cached by blob sha in one JSON file under AIMODEL_HOME and a listing costs
one `git ls-tree` plus a dictionary lookup per file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.manifests import (
    CONFIG_PATH,
    AIModel,
    Application,
    Artifact,
    Dataset,
    Manifest,
    ManifestError,
    expected_kind,
    name_from_path,
    RepoConfig,
    is_manifest_path,
    parse_config,
    parse_manifest,
    to_document,
)
from bot.sla import sla_from_mapping

EMPTY_CONFIG = RepoConfig(people={}, permissions={}, environments={})


@dataclass
class Catalog:
    commit: str
    models: dict[str, AIModel] = field(default_factory=dict)
    apps: dict[str, Application] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    config: RepoConfig = EMPTY_CONFIG
    files: Mapping[str, str] = field(default_factory=dict)  # path -> blob sha
    errors: list[ManifestError] = field(default_factory=list)

    def apps_using(self, model: str) -> list[Application]:
        return [a for a in self.apps.values() if model in a.models]

    def models_of_app(self, app: str) -> list[AIModel]:
        return [m for m in self.models.values() if m.application == app]

    def integrity_errors(self) -> list[ManifestError]:
        """Cross-file rules: every reference points at something that exists."""
        errors: list[ManifestError] = []
        envs = self.config.environments
        for m in self.models.values():
            if m.application not in self.apps:
                errors.append(ManifestError(m.path, None, "spec.application", f"application {m.application!r} does not exist (no apps/{m.application}.yaml)"))
            if m.dataset not in self.datasets:
                errors.append(ManifestError(m.path, None, "spec.dataset", f"data set {m.dataset!r} does not exist (no datasets/{m.dataset}.yaml)"))
            for env in m.environments:
                if envs and env not in envs:
                    errors.append(ManifestError(m.path, None, "spec.environments", f"environment {env!r} is not defined in {CONFIG_PATH}"))
        for a in self.apps.values():
            for model, version in a.models.items():
                target = self.models.get(model)
                if target is None:
                    errors.append(ManifestError(a.path, None, f"spec.models.{model}", f"pins model {model!r}, which does not exist"))
                elif target.version != version:
                    errors.append(ManifestError(a.path, None, f"spec.models.{model}", f"pins {model} {version}, but the model is at {target.version}"))
        return errors

    def all_errors(self) -> list[ManifestError]:
        return [*self.errors, *self.integrity_errors()]


# --------------------------------------------------------------------------- cache


def _from_cached(kind: str, d: dict[str, Any], path: str) -> Manifest:
    meta, spec = d["metadata"], d["spec"]
    if kind == "AIModel":
        art = spec["artifact"]
        return AIModel(
            name=meta["name"], version=spec["version"], owner=meta.get("owner", ""),
            application=spec["application"], dataset=spec["dataset"],
            artifact=Artifact(art["uri"], art["sha256"], art["format"], art["size"]),
            sla=sla_from_mapping(spec["sla"]) if spec.get("sla") else sla_from_mapping({}),
            metrics=spec.get("metrics", {}), environments=tuple(spec.get("environments", ())),
            description=meta.get("description", ""), path=path,
        )
    if kind == "Application":
        return Application(
            name=meta["name"], version=spec["version"], owner=meta.get("owner", ""), models=spec.get("models", {}),
            image=spec.get("image", ""), description=meta.get("description", ""), path=path,
        )
    return Dataset(
        name=meta["name"], uri=spec["uri"], label_column=spec["labelColumn"], sha256=spec.get("sha256", ""),
        format=spec.get("format", "csv"), owner=meta.get("owner", ""), description=meta.get("description", ""), path=path,
    )


class ManifestCache:
    """blob sha -> normalized manifest document (only valid manifests are cached)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, Any] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if path and path.exists():
            try:
                self._data = json.loads(path.read_bytes())
            except (OSError, ValueError):
                self._data = {}  # a damaged cache is rebuilt, never trusted

    def get(self, blob: str) -> Any:
        return self._data.get(blob)

    def put(self, blob: str, value: Any) -> None:
        with self._lock:
            self._data[blob] = value
            self._dirty = True

    def save(self, keep: Iterable[str] | None = None) -> None:
        if not self.path or not self._dirty:
            return
        with self._lock:
            data = self._data
            if keep is not None and len(data) > 50_000:
                wanted = set(keep)
                data = {k: v for k, v in data.items() if k in wanted}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifests-")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, self.path)
            self._dirty = False


def load_catalog(
    commit: str,
    files: Mapping[str, str],
    read_blob: Callable[[str], bytes],
    cache: ManifestCache | None = None,
) -> Catalog:
    cat = Catalog(commit=commit, files=files)
    for path, blob in files.items():
        if path == CONFIG_PATH:
            try:
                cat.config = parse_config(read_blob(blob), path)
            except ManifestError as exc:
                cat.errors.append(exc)
            continue
        if not is_manifest_path(path):
            continue
        cached = cache.get(blob) if cache else None
        manifest: Manifest
        if cached is not None and cached["metadata"]["name"] == name_from_path(path) and cached["kind"] == expected_kind(path):
            manifest = _from_cached(cached["kind"], cached, path)
        else:
            try:
                manifest = parse_manifest(read_blob(blob), path)
            except ManifestError as exc:
                cat.errors.append(exc)
                continue
            if cache:
                cache.put(blob, to_document(manifest))
        if isinstance(manifest, AIModel):
            if manifest.name in cat.models:
                cat.errors.append(ManifestError(path, None, "metadata.name", f"model {manifest.name!r} is defined twice (also {cat.models[manifest.name].path})"))
            cat.models[manifest.name] = manifest
        elif isinstance(manifest, Application):
            cat.apps[manifest.name] = manifest
        else:
            cat.datasets[manifest.name] = manifest
    if cache:
        cache.save(files.values())
    return cat
