"""Desired state per environment, computed from the manifests at one commit.

An application's release in an environment is its version plus the exact model versions it
pins there (Application.environments); a model runs in an environment when a release there
pins it, at that version. A deploy changes one environment's pins, so the application and
its models change together, environment by environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.catalog import Catalog


@dataclass(frozen=True)
class ModelRelease:
    name: str
    version: str
    uri: str
    sha256: str
    format: str
    size: int
    application: str
    source: str = ""  # provenance; names the deployed file when uri is a store URI
    layout: str = "file"  # folder: uri and sha256 name a folder's file list (bot.checks.folders)


@dataclass(frozen=True)
class AppRelease:
    name: str
    version: str
    image: str
    models: tuple[tuple[str, str], ...]  # (model, version), sorted

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "image": self.image, "models": dict(self.models)}


@dataclass(frozen=True)
class EnvPlan:
    env: str
    commit: str
    models: dict[str, ModelRelease] = field(default_factory=dict)
    apps: dict[str, AppRelease] = field(default_factory=dict)
    canary: dict[str, int] = field(default_factory=dict)  # model -> percent of traffic its new version takes

    def fingerprint(self) -> tuple[object, ...]:
        return (tuple(sorted(self.models.items())), tuple(sorted(self.apps.items())), tuple(sorted(self.canary.items())))


def environments_of(catalog: Catalog) -> list[str]:
    names = set(catalog.config.environments)
    for app in catalog.apps.values():
        names.update(app.environments)
    return sorted(names)


def plan_for(catalog: Catalog, env: str) -> EnvPlan:
    plan = EnvPlan(env=env, commit=catalog.commit)
    for app in catalog.apps.values():
        pins = app.environments.get(env)
        if not pins:
            continue
        kept = []
        for name, version in sorted(pins.items()):
            model = catalog.models.get(name)
            registered = model.get(version) if model is not None else None
            if model is None or registered is None:
                continue  # the manifest check reports it; nothing unknown is deployed
            a = registered.artifact
            plan.models[name] = ModelRelease(name, version, a.uri, a.sha256, a.format, a.size, model.application, a.source, a.layout)
            kept.append((name, version))
        if kept:
            plan.apps[app.name] = AppRelease(app.name, app.version, app.image, tuple(kept))
            plan.canary.update({m: p for m, p in app.canary.get(env, {}).items() if m in plan.models})
    return plan


def affected_environments(base: Catalog, head: Catalog) -> list[str]:
    """Environments whose desired state differs between two commits."""
    envs = set(environments_of(base)) | set(environments_of(head))
    return sorted(e for e in envs if plan_for(base, e).fingerprint() != plan_for(head, e).fingerprint())
