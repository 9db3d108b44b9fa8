"""All manifests of the repository at one commit, with referential integrity.

Parsing 10,000 YAML files costs seconds; a blob's content never changes, so parsed
manifests are cached by blob sha in SQLite under AIMODEL_HOME. A catalog reads which blobs
are known (kind and name) and builds a manifest only when it is used, reading its document
then: a proposal touches a handful of 10,000 models, and reading every document (4.8 MB
of JSON) cost more than the rest of the proposal.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.manifests import (
    CONFIG_PATH,
    AIModel,
    Application,
    Artifact,
    Dataset,
    ManifestError,
    ModelVersion,
    RepoConfig,
    parse_config,
    parse_manifest,
    to_document,
)
from bot.sla import sla_from_mapping

EMPTY_CONFIG = RepoConfig(people={}, permissions={}, environments={})
INDEX_VERSION = 3  # of a catalog's index in the cache: bump when classify() or what a Catalog keeps changes


@dataclass
class Catalog:
    commit: str
    models: Mapping[str, AIModel] = field(default_factory=dict)
    apps: Mapping[str, Application] = field(default_factory=dict)
    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    config: RepoConfig = EMPTY_CONFIG
    files: Mapping[str, str] = field(default_factory=dict)  # path -> blob sha
    errors: list[ManifestError] = field(default_factory=list)
    pins: Mapping[str, list[str]] | None = None  # model -> the applications pinning it, from the cache's index

    def apps_using(self, model: str) -> list[Application]:
        if self.pins is not None:  # without reading 1,000 applications' documents
            return [self.apps[name] for name in self.pins.get(model, ())]
        return [a for a in self.apps.values() if model in a.models]

    def running_in(self, env: str) -> dict[str, str]:
        """model -> the version the applications' releases pin in `env` (what should run there)."""
        pins: dict[str, str] = {}
        for app in self.apps.values():
            pins.update(app.environments.get(env, {}))
        return pins

    def integrity_errors(self) -> list[ManifestError]:
        """Cross-file rules: every reference points at something that exists."""
        errors: list[ManifestError] = []
        envs = self.config.environments
        for m in self.models.values():
            if m.application not in self.apps:
                errors.append(ManifestError(m.path, None, "spec.application", f"application {m.application!r} does not exist (no apps/{m.application}.yaml)"))
            if m.dataset not in self.datasets:
                errors.append(ManifestError(m.path, None, "spec.dataset", f"data set {m.dataset!r} does not exist (no datasets/{m.dataset}.yaml)"))
        wanted: dict[tuple[str, str], tuple[str, str]] = {}  # (env, model) -> (version, the app pinning it)
        for a in self.apps.values():
            for model in a.models:
                if model not in self.models:
                    errors.append(ManifestError(a.path, None, "spec.models", f"uses model {model!r}, which does not exist"))
            for env, pins in a.environments.items():
                field_ = f"spec.environments.{env}"
                if envs and env not in envs:
                    errors.append(ManifestError(a.path, None, field_, f"environment {env!r} is not defined in {CONFIG_PATH}"))
                for model, version in pins.items():
                    target = self.models.get(model)
                    if target is not None and target.get(version) is None:
                        known = ", ".join(v.version for v in target.versions)
                        errors.append(ManifestError(a.path, None, f"{field_}.{model}", f"pins {model} {version}, which is not a version of it ({known})"))
                    other = wanted.setdefault((env, model), (version, a.name))
                    if other[0] != version:
                        # one model version per environment: the model repository holds one
                        errors.append(ManifestError(a.path, None, f"{field_}.{model}", f"pins {model} {version} in {env}, but application {other[1]!r} pins {other[0]} there"))
        return errors

    def all_errors(self) -> list[ManifestError]:
        return [*self.errors, *self.integrity_errors()]


# --------------------------------------------------------------------------- cache


def _artifact(art: dict[str, Any]) -> Artifact:
    return Artifact(art["uri"], art["sha256"], art["format"], art["size"], art.get("source", ""), art.get("layout", "file"))


def _from_cached(kind: str, d: dict[str, Any], path: str) -> AIModel | Application | Dataset:
    meta, spec = d["metadata"], d["spec"]
    if kind == "AIModel":
        versions = [
            ModelVersion(v["version"], _artifact(v["artifact"]), v.get("metrics", {}))
            for v in spec["versions"]
        ]
        newest = versions[-1]
        return AIModel(
            name=meta["name"], version=newest.version, owner=meta.get("owner", ""),
            application=spec["application"], dataset=spec["dataset"], artifact=newest.artifact,
            sla=sla_from_mapping(spec["sla"]) if spec.get("sla") else sla_from_mapping({}),
            metrics=newest.metrics, description=meta.get("description", ""), path=path, previous=tuple(versions[:-1]),
        )
    if kind == "Application":
        return Application(
            name=meta["name"], version=spec["version"], owner=meta.get("owner", ""), models=tuple(spec.get("models", ())),
            environments=spec.get("environments", {}), canary=spec.get("canary", {}), image=spec.get("image", ""), description=meta.get("description", ""), path=path,
        )
    return Dataset(
        name=meta["name"], uri=spec["uri"], label_column=spec["labelColumn"], sha256=spec.get("sha256", ""),
        format=spec.get("format", "csv"), source=spec.get("source", ""), owner=meta.get("owner", ""), description=meta.get("description", ""), path=path,
    )


class ManifestCache:
    """blob sha -> normalized manifest document (only valid manifests are cached).

    One SQLite file shared by the CLI, the web process and the worker; it is a cache, so a
    damaged file is replaced and a busy or unwritable one is read around, never trusted
    and never fatal."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._opened = False
        self._new: dict[str, Any] = {}
        self._lock = threading.Lock()  # the worker's threads share one GitOps

    def _db(self) -> sqlite3.Connection | None:
        if self._opened:
            return self._conn
        self._opened = True
        if self.path is None:
            return None
        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
                conn.execute("CREATE TABLE IF NOT EXISTS docs_v2 (blob TEXT PRIMARY KEY, kind TEXT, name TEXT, doc TEXT) WITHOUT ROWID")
                conn.execute("CREATE TABLE IF NOT EXISTS catalog_index (key TEXT PRIMARY KEY, data TEXT, files TEXT)")
                self._conn = conn
                return conn
            except sqlite3.DatabaseError:
                if attempt == 0:
                    self.path.unlink(missing_ok=True)  # damaged: rebuilt, never trusted
            except (sqlite3.Error, OSError):
                return None
        return None

    def known(self) -> dict[str, tuple[str, str]]:
        """blob -> (kind, name) of every cached document."""
        with self._lock:
            found = {blob: (doc["kind"], doc["metadata"]["name"]) for blob, doc in self._new.items()}
            conn = self._db()
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    found.update((blob, (kind, name)) for blob, kind, name in conn.execute("SELECT blob, kind, name FROM docs_v2"))
        return found

    def get(self, blob: str) -> Any:
        with self._lock:
            if blob in self._new:
                return self._new[blob]
            conn = self._db()
            if conn is None:
                return None
            try:
                row = conn.execute("SELECT doc FROM docs_v2 WHERE blob = ?", (blob,)).fetchone()
                return json.loads(row[0]) if row else None
            except (sqlite3.Error, ValueError):
                return None

    def get_many(self, blobs: Sequence[str]) -> dict[str, Any]:
        """blob -> document of those cached, in a few queries (a catalog's 1,000 applications)."""
        found: dict[str, Any] = {}
        with self._lock:
            wanted = []
            for blob in blobs:
                if blob in self._new:
                    found[blob] = self._new[blob]
                else:
                    wanted.append(blob)
            conn = self._db() if wanted else None
            if conn is None:
                return found
            try:
                for i in range(0, len(wanted), 500):  # under SQLite's limit on parameters
                    chunk = wanted[i:i + 500]
                    marks = ",".join("?" * len(chunk))
                    for blob, doc in conn.execute(f"SELECT blob, doc FROM docs_v2 WHERE blob IN ({marks})", chunk):  # only "?" marks
                        found[blob] = json.loads(doc)
            except (sqlite3.Error, ValueError):
                pass
        return found

    def put(self, blob: str, value: Any) -> None:
        with self._lock:
            self._new[blob] = value

    def save(self, keep: Iterable[str] | None = None) -> None:
        with self._lock:
            conn = self._db() if self._new else None
            if conn is None:
                return
            rows = [(blob, d["kind"], d["metadata"]["name"], json.dumps(d, separators=(",", ":"))) for blob, d in self._new.items()]
            try:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany("INSERT OR REPLACE INTO docs_v2 VALUES (?, ?, ?, ?)", rows)
                    if keep is not None and conn.execute("SELECT count(*) FROM docs_v2").fetchone()[0] > 50_000:
                        conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (blob TEXT PRIMARY KEY)")
                        conn.execute("DELETE FROM wanted")
                        conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((k,) for k in keep))
                        conn.execute("DELETE FROM docs_v2 WHERE blob NOT IN (SELECT blob FROM wanted)")
            except sqlite3.Error:
                return  # busy or read-only: the next catalog parses these again
            self._new.clear()

    def index(self, commit: str) -> tuple[Any, str] | None:
        """What a catalog at this commit holds (put_index) and its files, still as JSON text
        (a proposal that changes no artifact never looks at them), or None."""
        with self._lock:
            conn = self._db()
            if conn is None:
                return None
            try:
                row = conn.execute("SELECT data, files FROM catalog_index WHERE key = ?", (f"v{INDEX_VERSION}:{commit}",)).fetchone()
                return (json.loads(row[0]), row[1]) if row else None
            except (sqlite3.Error, ValueError):
                return None

    def put_index(self, commit: str, data: Any, files: Mapping[str, str]) -> None:
        with self._lock:
            conn = self._db()
            if conn is None:
                return
            row = (f"v{INDEX_VERSION}:{commit}", json.dumps(data, separators=(",", ":")), json.dumps(dict(files), separators=(",", ":")))
            with contextlib.suppress(sqlite3.Error), conn:  # busy or read-only: the tree is listed again next time
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT OR REPLACE INTO catalog_index VALUES (?, ?, ?)", row)
                conn.execute("DELETE FROM catalog_index WHERE rowid NOT IN (SELECT rowid FROM catalog_index ORDER BY rowid DESC LIMIT 32)")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._opened = None, False


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

    def __init__(self, documents: Callable[[Sequence[tuple[str, str, str]]], list[Any]] | None = None) -> None:
        self._documents = documents  # [(kind, blob, path)] -> their manifests, for entries added by blob
        self._built: dict[str, Any] = {}
        self._pending: dict[str, tuple[str, str, str]] = {}
        self._order: list[str] = []

    def add(self, name: str, value: Any) -> None:
        if name not in self._built and name not in self._pending:
            self._order.append(name)
        self._pending.pop(name, None)
        self._built[name] = value

    def add_all_cached(self, kind: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Many (name, blob, path) of a new mapping at once."""
        for name, blob, path in rows:
            self._pending[name] = (kind, blob, path)
        self._order = list(self._pending)

    def add_cached(self, name: str, kind: str, blob: str, path: str) -> None:
        if name not in self._built and name not in self._pending:
            self._order.append(name)
        self._built.pop(name, None)
        self._pending[name] = (kind, blob, path)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._built[name]
        except KeyError:
            pending = self._pending[name]  # KeyError: not there
            assert self._documents is not None  # add_cached is only called with it
            value = self._built[name] = self._documents([pending])[0]
            del self._pending[name]
            return value

    def values(self) -> ValuesView[Any]:
        """All of them: the pending ones are built together (one cache query, not one each)."""
        self._build_all()
        return super().values()

    def items(self) -> ItemsView[str, Any]:
        self._build_all()
        return super().items()

    def _build_all(self) -> None:
        if self._pending:
            assert self._documents is not None
            names = list(self._pending)
            for name, value in zip(names, self._documents([self._pending[n] for n in names]), strict=True):
                self._built[name] = value
            self._pending.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._pending

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def path_of(self, name: str) -> str:
        pending = self._pending.get(name)
        return pending[2] if pending else self._built[name].path


def _documents(cache: ManifestCache | None, read_blob: Callable[[str], bytes]) -> Callable[[Sequence[tuple[str, str, str]]], list[Any]]:
    def documents(wanted: Sequence[tuple[str, str, str]]) -> list[Any]:
        docs = cache.get_many([blob for _, blob, _ in wanted]) if cache else {}
        return [
            _from_cached(kind, docs[blob], path) if blob in docs
            else parse_manifest(read_blob(blob), path)  # the row went away since: the same bytes, parsed
            for kind, blob, path in wanted
        ]

    return documents


def catalog_at(
    commit: str,
    tree: Callable[[str], Mapping[str, str]],
    read_blob: Callable[[str], bytes],
    cache: ManifestCache | None = None,
) -> Catalog:
    """The catalog at a commit. A commit never changes, so a clean catalog's index (files,
    names, paths, which applications pin each model) is kept in the cache: the next command on the same commit lists no tree
    and classifies no path (70 ms on 10,000 models). A catalog with errors is built anew."""
    index = cache.index(commit) if cache else None
    if index is not None:
        cat = _from_index(commit, index[0], _JsonFiles(index[1], lambda: tree(commit)), read_blob, cache)
        if cat is not None:
            return cat
    cat = load_catalog(commit, tree(commit), read_blob, cache)
    if cache and not cat.errors:
        manifests = {
            kind: [[name, cat.files[folder.path_of(name)], folder.path_of(name)] for name in folder]
            for kind, folder in (("AIModel", cat.models), ("Application", cat.apps), ("Dataset", cat.datasets))
            if isinstance(folder, LazyManifests)
        }
        pins: dict[str, list[str]] = {}
        for app in cat.apps.values():
            for model in app.models:
                pins.setdefault(model, []).append(app.name)
        cache.put_index(commit, {"config": cat.files.get(CONFIG_PATH), "manifests": manifests, "pins": pins}, cat.files)
    return cat


class _JsonFiles(Mapping[str, str]):
    """path -> blob, decoded from the index's JSON on first use."""

    def __init__(self, text: str, listing: Callable[[], Mapping[str, str]]) -> None:
        self._text = text
        self._listing = listing  # the tree itself, should the text not read

    @cached_property
    def _files(self) -> dict[str, str]:
        try:
            files = json.loads(self._text)
            if isinstance(files, dict):
                return files
        except ValueError:
            pass
        return dict(self._listing())

    def __getitem__(self, path: str) -> str:
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def _from_index(
    commit: str, index: Any, files: Mapping[str, str], read_blob: Callable[[str], bytes], cache: ManifestCache | None
) -> Catalog | None:
    try:
        cat = Catalog(commit=commit, files=files)
        if index["config"]:
            cat.config = parse_config(read_blob(index["config"]), CONFIG_PATH)
        folders = []
        for kind in ("AIModel", "Application", "Dataset"):
            folder = LazyManifests(_documents(cache, read_blob))
            folder.add_all_cached(kind, ((name, blob, path) for name, blob, path in index["manifests"][kind]))
            folders.append(folder)
    except (KeyError, TypeError, ValueError, ManifestError):
        return None  # an index that does not fit: the tree is listed again
    cat.models, cat.apps, cat.datasets = folders
    pins = index.get("pins")
    cat.pins = pins if isinstance(pins, dict) else None
    return cat


def load_catalog(
    commit: str,
    files: Mapping[str, str],
    read_blob: Callable[[str], bytes],
    cache: ManifestCache | None = None,
) -> Catalog:
    cat = Catalog(commit=commit, files=files)
    documents = _documents(cache, read_blob)
    models, apps, datasets = LazyManifests(documents), LazyManifests(documents), LazyManifests(documents)
    known = cache.known() if cache else {}
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
        if known.get(blob) == where:
            target.add_cached(name, kind, blob, path)
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
