"""bot.deploy.plan on plain data: which models and application releases each environment
should run, and which environments a change touches. No git, no HTTP."""

from __future__ import annotations

import hashlib

import pytest

from bot.catalog import Catalog
from bot.deploy.plan import (
    AppRelease,
    ModelRelease,
    affected_environments,
    environments_of,
    plan_for,
)
from bot.manifests import AIModel, Application, Artifact, Environment, ModelVersion, RepoConfig

CONFIG = RepoConfig(people={}, permissions={}, environments={"dev": Environment("dev"), "prod": Environment("prod", approvals=1)})


def artifact(name: str, version: str) -> Artifact:
    return Artifact(f"s3://models/{name}-{version}.onnx", hashlib.sha256(f"{name}{version}".encode()).hexdigest(), "onnx", 1024)


def model(name: str, *versions: str, app: str = "payments") -> AIModel:
    """A model with these versions registered (oldest first; default 1.0.0)."""
    versions = versions or ("1.0.0",)
    older = tuple(ModelVersion(v, artifact(name, v)) for v in versions[:-1])
    return AIModel(name, versions[-1], "ada", app, "tx", artifact(name, versions[-1]), previous=older)


def app(name: str, version: str, envs: dict[str, dict[str, str]], image: str = "") -> Application:
    models = tuple(dict.fromkeys(m for pins in envs.values() for m in pins))
    return Application(name, version, "alan", models, envs, image=image or f"registry.example/{name}:{version}")


def catalog(*items: AIModel | Application, commit: str = "c1", config: RepoConfig = CONFIG) -> Catalog:
    return Catalog(
        commit=commit,
        models={m.name: m for m in items if isinstance(m, AIModel)},
        apps={a.name: a for a in items if isinstance(a, Application)},
        config=config,
    )


def test_each_environment_runs_the_version_its_releases_pin() -> None:
    fraud = model("fraud", "2.0.0", "2.1.0")
    items = (fraud, app("payments", "3.0", {"dev": {"fraud": "2.1.0"}, "prod": {"fraud": "2.0.0"}}))
    prod = plan_for(catalog(*items, commit="abc"), "prod")
    assert prod.env == "prod" and prod.commit == "abc"
    old = fraud.get("2.0.0")
    assert old is not None
    assert prod.models == {"fraud": ModelRelease("fraud", "2.0.0", old.artifact.uri, old.artifact.sha256, "onnx", 1024, "payments")}
    assert plan_for(catalog(*items), "dev").models["fraud"].sha256 == fraud.artifact.sha256


@pytest.mark.parametrize(
    ("items", "env", "models", "apps"),
    [
        # no release in the environment: nothing runs there
        ((model("fraud"), app("payments", "1.0", {"dev": {"fraud": "1.0.0"}})), "prod", [], {}),
        # the application runs with the exact versions it pins there
        ((model("fraud"), model("churn"),
          app("payments", "3.0", {"dev": {"fraud": "1.0.0", "churn": "1.0.0"}, "prod": {"churn": "1.0.0"}})),
         "prod", ["churn"], {"payments": (("churn", "1.0.0"),)}),
        ((model("fraud"), model("churn"),
          app("payments", "3.0", {"dev": {"fraud": "1.0.0", "churn": "1.0.0"}})),
         "dev", ["churn", "fraud"], {"payments": (("churn", "1.0.0"), ("fraud", "1.0.0"))}),
        # a model no release pins runs nowhere
        ((model("idle"),), "dev", [], {}),
        # a pin of a version that is not registered deploys nothing (the manifest check reports it)
        ((model("fraud"), app("payments", "1.0", {"dev": {"fraud": "9.9.9"}})), "dev", [], {}),
        # an environment not in the config is still planned from what the releases say
        ((model("fraud"), app("payments", "1.0", {"staging": {"fraud": "1.0.0"}})), "staging", ["fraud"],
         {"payments": (("fraud", "1.0.0"),)}),
    ],
)
def test_plan_per_environment(items: tuple[AIModel | Application, ...], env: str, models: list[str],
                              apps: dict[str, tuple[tuple[str, str], ...]]) -> None:
    plan = plan_for(catalog(*items), env)
    assert sorted(plan.models) == models
    assert {name: release.models for name, release in plan.apps.items()} == apps


def test_app_release_json() -> None:
    release = AppRelease("payments", "3.0", "registry.example/payments:3.0", (("churn", "1.2.0"), ("fraud", "2.0.0")))
    assert release.to_json() == {"name": "payments", "version": "3.0", "image": "registry.example/payments:3.0",
                                 "models": {"churn": "1.2.0", "fraud": "2.0.0"}}


def test_environments_are_the_configs_and_the_releases() -> None:
    items = (model("a"), app("x", "1.0", {"edge": {"a": "1.0.0"}}))
    assert environments_of(catalog(*items)) == ["dev", "edge", "prod"]
    assert environments_of(catalog(config=RepoConfig(people={}, permissions={}, environments={}))) == []


V1 = model("fraud")
V2 = model("fraud", "1.0.0", "1.1.0")


@pytest.mark.parametrize(
    ("base", "head", "affected"),
    [
        ((V1,), (V1,), []),  # same desired state
        # a new version registered changes nothing that runs
        ((V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}})), (V2, app("p", "1.0", {"dev": {"fraud": "1.0.0"}})), []),
        # deployed to dev only: prod is not touched
        ((V2, app("p", "1.0", {"dev": {"fraud": "1.0.0"}, "prod": {"fraud": "1.0.0"}})),
         (V2, app("p", "1.0", {"dev": {"fraud": "1.1.0"}, "prod": {"fraud": "1.0.0"}})), ["dev"]),
        ((V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}})),
         (V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}, "prod": {"fraud": "1.0.0"}})), ["prod"]),  # promoted
        ((V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}, "prod": {"fraud": "1.0.0"}})), (), ["dev", "prod"]),  # destroyed
        # an application's version alone changes what runs where it runs
        ((V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}, "prod": {"fraud": "1.0.0"}})),
         (V1, app("p", "1.1", {"dev": {"fraud": "1.0.0"}, "prod": {"fraud": "1.0.0"}})), ["dev", "prod"]),
        # a model's description or owner is no change in what runs
        ((V1, app("p", "1.0", {"dev": {"fraud": "1.0.0"}})),
         (AIModel("fraud", "1.0.0", "someone-else", "payments", "tx", V1.artifact, description="new words"),
          app("p", "1.0", {"dev": {"fraud": "1.0.0"}})), []),
    ],
)
def test_affected_environments(base: tuple[AIModel | Application, ...], head: tuple[AIModel | Application, ...],
                               affected: list[str]) -> None:
    assert affected_environments(catalog(*base, commit="base"), catalog(*head, commit="head")) == affected


def test_the_commit_is_not_part_of_the_desired_state() -> None:
    items = (V1, app("payments", "1.0", {"dev": {"fraud": "1.0.0"}}))
    assert plan_for(catalog(*items, commit="a"), "dev").fingerprint() == plan_for(catalog(*items, commit="b"), "dev").fingerprint()
