"""Versions and promotion on plain data: the order environments come in, a version that
cannot change once registered. No git."""

from __future__ import annotations

import pytest

from bot.catalog import Catalog
from bot.checks.versions_check import version_errors
from bot.manifests import AIModel, Artifact, Environment, ModelVersion, RepoConfig, parse_config
from tests.test_deploy_plan import artifact, model


def config(promotion: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> RepoConfig:
    envs = {e: Environment(e, allow_skip=e in skip) for e in ("dev", "test", "prod")}
    return RepoConfig(people={}, permissions={}, environments=envs, promotion=promotion)


@pytest.mark.parametrize(
    ("cfg", "env", "before"),
    [
        (config(), "dev", None),  # the first environment takes any version
        (config(), "test", "dev"),
        (config(), "prod", "test"),
        (config(promotion=("dev", "prod")), "prod", "dev"),  # test left out of the order
        (config(promotion=("dev", "prod")), "test", None),  # outside the order: no rule
        (config(skip=("prod",)), "prod", None),  # the config allows a skip for prod
        (config(), "edge", None),
    ],
)
def test_the_environment_a_version_must_have_run_in(cfg: RepoConfig, env: str, before: str | None) -> None:
    assert cfg.comes_after(env) == before


def test_promotion_in_the_config_names_known_environments() -> None:
    text = "environments: {dev: {}, prod: {allow_skip: true}}\npromotion: [dev, prod]\n"
    parsed = parse_config(text)
    assert parsed.promotion == ("dev", "prod") and parsed.environments["prod"].allow_skip
    with pytest.raises(ValueError, match=r"config.yaml:4: promotion\[1\]: 'staging' is not one of the environments"):
        parse_config("environments: {dev: {}, prod: {}}\npromotion:\n  - dev\n  - staging\n")


def _cat(*models: AIModel) -> Catalog:
    return Catalog(commit="c", models={m.name: m for m in models})


def test_new_versions_are_welcome_and_registered_ones_never_change() -> None:
    base = _cat(model("fraud", "1.0.0", "1.1.0"))
    assert version_errors(base, _cat(model("fraud", "1.0.0", "1.1.0", "1.2.0"))) == []
    assert version_errors(base, _cat()) == []  # destroyed: its versions go with it
    changed = model("fraud", "1.0.0", "1.1.0")
    changed = AIModel(**{**changed.__dict__, "previous": (ModelVersion("1.0.0", artifact("other", "bytes")),)})
    assert [e.message for e in version_errors(base, _cat(changed))] == [
        "version 1.0.0 is registered: its artifact cannot change (register a new version)"
    ]
    assert [e.message for e in version_errors(base, _cat(model("fraud", "1.1.0")))] == [
        "version 1.0.0 is registered and cannot be removed"
    ]
    swapped = AIModel(**{**model("fraud").__dict__, "version": "1.0.0", "artifact": artifact("fraud", "1.0.0"),
                         "previous": (ModelVersion("1.1.0", artifact("fraud", "1.1.0")),)})
    assert [e.message for e in version_errors(base, _cat(swapped))] == [
        "registered versions moved: new versions go after them, oldest first"
    ]
    assert isinstance(swapped.artifact, Artifact)
