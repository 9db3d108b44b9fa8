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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.manifests import (
    CONFIG_PATH,
    AIModel,
    Application,
    Artifact,
    Dataset,
    ManifestError,
    RepoConfig,
    parse_config,
    parse_manifest,
    to_document,
)
from bot.sla import sla_from_mapping

EMPTY_CONFIG = RepoConfig(people={}, permissions={}, environments={})


@dataclass
class Catalog:
    commit: str
    models: Mapping[str, AIModel] = field(default_factory=dict)
    apps: Mapping[str, Application] = field(default_factory=dict)
    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    config: RepoConfig = EMPTY_CONFIG
    files: Mapping[str, str] = field(default_factory=dict)  # path -> blob sha
    errors: list[ManifestError] = field(default_factory=list)

    def apps_using(self, model: str) -> list[Application]:
        return [a for a in self.apps.values() if model in a.models]

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


def _from_cached(kind: str, d: dict[str, Any], path: str) -> AIModel | Application | Dataset:
    meta, spec = d["metadata"], d["spec"]
    if kind == "AIModel":
        art = spec["artifact"]
        return AIModel(
            name=meta["name"], version=spec["version"], owner=meta.get("owner", ""),
            application=spec["application"], dataset=spec["dataset"],
            artifact=Artifact(art["uri"], art["sha256"], art["format"], art["size"], art.get("source", "")),
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
        format=spec.get("format", "csv"), source=spec.get("source", ""), owner=meta.get("owner", ""), description=meta.get("description", ""), path=path,
    )


class ManifestCache:
    """blob sha -> normalized manifest document (only valid manifests are cached)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._loaded: dict[str, Any] | None = None
        self._dirty = False
        self._lock = threading.Lock()

    @property
    def _data(self) -> dict[str, Any]:
        # Read on first use: most commands never load a catalog (`pr list`, `status`).
        if self._loaded is None:
            data: dict[str, Any] = {}
            if self.path and self.path.exists():
                try:
                    data = json.loads(self.path.read_bytes())
                except (OSError, ValueError):
                    data = {}  # a damaged cache is rebuilt, never trusted
            self._loaded = data
        return self._loaded

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


_FOLDER_KIND = {"models": "AIModel", "apps": "Application", "datasets": "Dataset"}


def classify(path: str) -> tuple[str, str] | None:
    """(kind, name) of a manifest path, or None: models/x.yaml, models/x/model.yaml, apps/x.yaml..."""
    parts = path.split("/")
    kind = _FOLDER_KIND.get(parts[0])
    if kind is None:
        return None
    if len(parts) == 2:
        name, dot, ext = parts[1].rpartition(".")
        return (kind, name) if dot and ext in ("yaml", "yml") else None
    if len(parts) == 3 and kind == "AIModel" and parts[2] == "model.yaml":
        return kind, parts[1]
    return None


class LazyManifests(Mapping[str, Any]):
    """name -> manifest, built from the cached document only when asked for.

    A proposal touches a handful of the 10,000 models a repository may hold; building
    them all would cost more than the rest of the proposal.
    """

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}
        self._pending: dict[str, tuple[str, dict[str, Any], str]] = {}
        self._order: list[str] = []

    def add(self, name: str, value: Any) -> None:
        if name not in self._built and name not in self._pending:
            self._order.append(name)
        self._pending.pop(name, None)
        self._built[name] = value

    def add_cached(self, name: str, kind: str, doc: dict[str, Any], path: str) -> None:
        if name not in self._built and name not in self._pending:
            self._order.append(name)
        self._built.pop(name, None)
        self._pending[name] = (kind, doc, path)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._built[name]
        except KeyError:
            kind, doc, path = self._pending.pop(name)  # KeyError: not there
            value = self._built[name] = _from_cached(kind, doc, path)
            return value

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._pending

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def path_of(self, name: str) -> str:
        pending = self._pending.get(name)
        return pending[2] if pending else self._built[name].path


def load_catalog(
    commit: str,
    files: Mapping[str, str],
    read_blob: Callable[[str], bytes],
    cache: ManifestCache | None = None,
) -> Catalog:
    cat = Catalog(commit=commit, files=files)
    models, apps, datasets = LazyManifests(), LazyManifests(), LazyManifests()
    folders = {"AIModel": models, "Application": apps, "Dataset": datasets}
    for path, blob in files.items():
        if path == CONFIG_PATH:
            try:
                cat.config = parse_config(read_blob(blob), path)
            except ManifestError as exc:
                cat.errors.append(exc)
            continue
        where = classify(path)
        if where is None:
            continue
        kind, name = where
        target = folders[kind]
        if name in target:
            if kind == "AIModel":
                cat.errors.append(ManifestError(path, None, "metadata.name", f"model {name!r} is defined twice (also {target.path_of(name)})"))
            continue
        cached = cache.get(blob) if cache else None
        if cached is not None and cached["kind"] == kind and cached["metadata"]["name"] == name:
            target.add_cached(name, kind, cached, path)
            continue
        try:
            manifest = parse_manifest(read_blob(blob), path)
        except ManifestError as exc:
            cat.errors.append(exc)
            continue
        if cache:
            cache.put(blob, to_document(manifest))
        target.add(name, manifest)
    cat.models, cat.apps, cat.datasets = models, apps, datasets
    if cache:
        cache.save(files.values())
    return cat
