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
from bot.manifests import AIModel, Application, Artifact, Environment, RepoConfig

CONFIG = RepoConfig(people={}, permissions={}, environments={"dev": Environment("dev"), "prod": Environment("prod", approvals=1)})


def model(name: str, version: str = "1.0.0", envs: tuple[str, ...] = ("dev",), app: str = "payments") -> AIModel:
    artifact = Artifact(f"s3://models/{name}-{version}.onnx", hashlib.sha256(f"{name}{version}".encode()).hexdigest(), "onnx", 1024)
    return AIModel(name, version, "ada", app, "tx", artifact, environments=envs)


def app(name: str, version: str, pins: dict[str, str], image: str = "") -> Application:
    return Application(name, version, "alan", pins, image=image or f"registry.example/{name}:{version}")


def catalog(*items: AIModel | Application, commit: str = "c1", config: RepoConfig = CONFIG) -> Catalog:
    return Catalog(
        commit=commit,
        models={m.name: m for m in items if isinstance(m, AIModel)},
        apps={a.name: a for a in items if isinstance(a, Application)},
        config=config,
    )


def test_a_model_runs_where_it_lists_and_carries_its_artifact() -> None:
    fraud = model("fraud", "2.1.0", envs=("dev", "prod"))
    plan = plan_for(catalog(fraud, commit="abc"), "prod")
    assert plan.env == "prod" and plan.commit == "abc"
    assert plan.models == {"fraud": ModelRelease("fraud", "2.1.0", fraud.artifact.uri, fraud.artifact.sha256, "onnx", 1024, "payments")}


@pytest.mark.parametrize(
    ("items", "env", "models", "apps"),
    [
        # no model in the environment: the application does not run there either
        ((model("fraud", envs=("dev",)), app("payments", "1.0", {"fraud": "1.0.0"})), "prod", [], {}),
        # the application runs with the exact versions it pins, of the models that run there
        ((model("fraud", envs=("dev",)), model("churn", envs=("dev", "prod")),
          app("payments", "3.0", {"fraud": "1.0.0", "churn": "1.0.0"})),
         "prod", ["churn"], {"payments": (("churn", "1.0.0"),)}),
        ((model("fraud", envs=("dev",)), model("churn", envs=("dev",)),
          app("payments", "3.0", {"fraud": "1.0.0", "churn": "1.0.0"})),
         "dev", ["churn", "fraud"], {"payments": (("churn", "1.0.0"), ("fraud", "1.0.0"))}),
        # a model listed in no environment runs nowhere
        ((model("idle", envs=()),), "dev", [], {}),
        # an application that pins nothing never runs
        ((model("fraud"), app("empty", "1.0", {})), "dev", ["fraud"], {}),
        # an environment not in the config is still planned from what the models list
        ((model("fraud", envs=("staging",)),), "staging", ["fraud"], {}),
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


def test_environments_are_the_configs_and_the_models() -> None:
    assert environments_of(catalog(model("a", envs=("edge",)), model("b", envs=("dev",)))) == ["dev", "edge", "prod"]
    assert environments_of(catalog(config=RepoConfig(people={}, permissions={}, environments={}))) == []


@pytest.mark.parametrize(
    ("base", "head", "affected"),
    [
        ((model("fraud"),), (model("fraud"),), []),  # same desired state
        ((model("fraud", envs=("dev",)),), (model("fraud", "1.1.0", envs=("dev",)),), ["dev"]),
        ((model("fraud", envs=("dev",)),), (model("fraud", envs=("dev", "prod")),), ["prod"]),  # promoted
        ((model("fraud", envs=("dev", "prod")),), (), ["dev", "prod"]),  # destroyed
        ((), (model("fraud", envs=("dev",)),), ["dev"]),  # created
        # an application's version alone changes what runs where its models run
        ((model("fraud", envs=("dev", "prod")), app("payments", "1.0", {"fraud": "1.0.0"})),
         (model("fraud", envs=("dev", "prod")), app("payments", "1.1", {"fraud": "1.0.0"})), ["dev", "prod"]),
        # a model's description or owner is no change in what runs
        ((model("fraud"),), (AIModel("fraud", "1.0.0", "someone-else", "payments", "tx", model("fraud").artifact,
                                     environments=("dev",), description="new words"),), []),
    ],
)
def test_affected_environments(base: tuple[AIModel | Application, ...], head: tuple[AIModel | Application, ...],
                               affected: list[str]) -> None:
    assert affected_environments(catalog(*base, commit="base"), catalog(*head, commit="head")) == affected


def test_the_commit_is_not_part_of_the_desired_state() -> None:
    items = (model("fraud", envs=("dev",)), app("payments", "1.0", {"fraud": "1.0.0"}))
    assert plan_for(catalog(*items, commit="a"), "dev").fingerprint() == plan_for(catalog(*items, commit="b"), "dev").fingerprint()
