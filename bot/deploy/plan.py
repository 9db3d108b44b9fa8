"""Desired state per environment, computed from the manifests at one commit.

A model runs in the environments it lists. An application runs in an environment when at
least one model it pins runs there; its release is the application version plus the
exact versions of those models, so the application and its models change together.
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

    def fingerprint(self) -> tuple[object, ...]:
        return (tuple(sorted(self.models.items())), tuple(sorted(self.apps.items())))


def environments_of(catalog: Catalog) -> list[str]:
    names = set(catalog.config.environments)
    for m in catalog.models.values():
        names.update(m.environments)
    return sorted(names)


def plan_for(catalog: Catalog, env: str) -> EnvPlan:
    plan = EnvPlan(env=env, commit=catalog.commit)
    for m in catalog.models.values():
        if env in m.environments:
            a = m.artifact
            plan.models[m.name] = ModelRelease(m.name, m.version, a.uri, a.sha256, a.format, a.size, m.application, a.source)
    for app in catalog.apps.values():
        pins = tuple(sorted((name, version) for name, version in app.models.items() if name in plan.models))
        if pins:
            plan.apps[app.name] = AppRelease(app.name, app.version, app.image, pins)
    return plan


def affected_environments(base: Catalog, head: Catalog) -> list[str]:
    """Environments whose desired state differs between two commits."""
    envs = set(environments_of(base)) | set(environments_of(head))
    return sorted(e for e in envs if plan_for(base, e).fingerprint() != plan_for(head, e).fingerprint())
