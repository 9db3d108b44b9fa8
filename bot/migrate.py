"""`aimodel migrate`: the manifests of an earlier schema, rewritten for the current one.

aimodel.dev/v1 kept one version per model and listed the environments on the model; v2 keeps
every registered version on the model and, per environment, the exact model versions each
application's release pins. The rewrite keeps what runs where: a v1 model listed in an
environment becomes, in that environment, a pin of the version its applications pinned.
The result is a pull request (reviewed like any change of what runs), never a silent commit.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Protocol

import yaml

from bot.catalog import classify
from bot.manifests import API_VERSION, OLD_API_VERSIONS


class Tree(Protocol):
    def tree(self, commit: str) -> dict[str, str]: ...

    def read_blob(self, sha: str) -> bytes: ...


def _model(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    version: dict[str, Any] = {"version": str(spec.get("version", "")), "artifact": spec.get("artifact", {})}
    if spec.get("metrics"):
        version["metrics"] = spec["metrics"]
    new: dict[str, Any] = {"application": spec.get("application"), "dataset": spec.get("dataset")}
    if spec.get("sla"):
        new["sla"] = spec["sla"]
    new["versions"] = [version]
    return {**doc, "apiVersion": API_VERSION, "spec": new}


def _application(doc: dict[str, Any], model_envs: dict[str, list[str]]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    pins = spec.get("models") or {}
    environments: dict[str, dict[str, str]] = {}
    for model, version in pins.items():
        for env in model_envs.get(model, []):
            environments.setdefault(env, {})[model] = str(version)
    new: dict[str, Any] = {"version": str(spec.get("version", ""))}
    if spec.get("image"):
        new["image"] = spec["image"]
    new["models"] = list(pins)
    if environments:
        new["environments"] = {env: dict(sorted(p.items())) for env, p in sorted(environments.items())}
    return {**doc, "apiVersion": API_VERSION, "spec": new}


def _dump(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True).encode()


def _schemas() -> dict[str, bytes]:
    folder = resources.files("repo_templates") / "manifest-repo" / "schemas"
    return {f"schemas/{entry.name}": entry.read_bytes() for entry in folder.iterdir() if entry.name.endswith(".json")}


def migration(repo: Tree, commit: str) -> tuple[dict[str, bytes | None], int]:
    """The files to write (path -> new bytes) and how many manifests change; ({}, 0) when
    every manifest is current. A file that does not read as YAML is left for its owner: the
    manifest check names it."""
    files = repo.tree(commit)
    docs: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, blob in files.items():
        where = classify(path)
        if where is None:
            continue
        try:
            doc = yaml.safe_load(repo.read_blob(blob))
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc.get("apiVersion") in OLD_API_VERSIONS:
            docs[path] = (where[0], doc)
    if not docs:
        return {}, 0
    model_envs = {
        str((doc.get("metadata") or {}).get("name")): [str(e) for e in (doc.get("spec") or {}).get("environments") or []]
        for kind, doc in docs.values() if kind == "AIModel"
    }
    out: dict[str, bytes | None] = {}
    for path, (kind, doc) in sorted(docs.items()):
        if kind == "AIModel":
            out[path] = _dump(_model(doc))
        elif kind == "Application":
            out[path] = _dump(_application(doc, model_envs))
        else:
            out[path] = _dump({**doc, "apiVersion": API_VERSION})
    count = len(out)
    for path, data in _schemas().items():
        current = files.get(path, "")
        if not current or repo.read_blob(current) != data:
            out[path] = data
    config_blob = files.get(".aimodel/config.yaml", "")
    if config_blob:
        text = repo.read_blob(config_blob).decode("utf-8", "replace")
        for old in OLD_API_VERSIONS:
            text = text.replace(f"apiVersion: {old}", f"apiVersion: {API_VERSION}", 1)
        out[".aimodel/config.yaml"] = text.encode()
    return out, count
