"""`environments.<env>.target` and `kserve:` in the repository config: parsed with the line of a
mistake, described by the config's JSON Schema, shown (commented) in the template, and the
GitOps examples point at the folder the bot writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.manifests import KServeSettings, ManifestError, parse_config

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "repo_templates" / "manifest-repo"
SCHEMA = json.loads((TEMPLATE / "schemas" / "config.schema.json").read_text())


def _env(block: str) -> str:
    return "environments:\n  prod:\n" + "".join(f"    {line}\n" for line in block.splitlines())


def test_local_is_the_default_and_kserve_has_defaults_per_environment() -> None:
    config = parse_config(_env("approvals: 0") + "  staging:\n    target: kserve\n")
    assert config.environments["prod"].target == "local" and config.environments["prod"].kserve is None
    assert config.environments["staging"].kserve == KServeSettings(mode="gitops", namespace="staging", path="deploy/staging/")


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("target: cluster", 3, "prod.target: expected one of local, kserve, got 'cluster'"),
        ("kserve: {mode: apply}", 3, "prod.kserve: kserve settings apply only with target: kserve"),
        ("target: kserve\nkserve:\n  mode: push", 5, "kserve.mode: expected one of gitops, apply, got 'push'"),
        ("target: kserve\nkserve:\n  path: .aimodel/", 5, "kserve.path: '.aimodel/' is not a folder of its own"),
        ("target: kserve\nkserve:\n  path: deploy/../models", 5, "is not a folder of its own"),
        ("target: kserve\nkserve:\n  namespace: Models", 5, "kserve.namespace: 'Models' is not a DNS-1123 label"),
        ("target: kserve\nkserve:\n  resources: {requests: {cpu: fast}}", 5, "kserve.resources.requests.cpu: 'fast' is not a Kubernetes quantity"),
        ("target: kserve\nkserve:\n  min_replicas: 4\n  max_replicas: 2", 5, "kserve.min_replicas: must not be more than max_replicas"),
        ("target: kserve\nkserve:\n  branch: a..b", 5, "kserve.branch: 'a..b' is not a branch name"),
        ("target: kserve\nkserve:\n  replicas: 2", 5, "kserve.replicas: unknown field"),
    ],
)
def test_a_wrong_setting_is_named_with_its_line(block: str, line: int, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_config(_env(block))
    assert err.value.line == line
    assert message in str(err.value)


def test_two_environments_never_share_a_namespace_or_a_deploy_folder() -> None:
    both = "environments:\n  dev:\n    target: kserve\n    kserve: {namespace: models}\n  prod:\n    target: kserve\n    kserve: {KEY}\n"
    with pytest.raises(ManifestError, match=re.escape("prod.kserve.namespace: environment dev already uses 'models'")):
        parse_config(both.replace("{KEY}", "{namespace: models}"))
    with pytest.raises(ManifestError, match=re.escape("prod.kserve.path: environment dev already uses 'deploy/x/'")):
        parse_config(both.replace("{namespace: models}", "{path: deploy/x}").replace("{KEY}", "{path: deploy/x/}"))
    parse_config(both.replace("{KEY}", "{namespace: models, context: other-cluster}"))  # another cluster


def _uncommented_example() -> str:
    """The template's commented kserve example, switched on."""
    lines = []
    for text in (TEMPLATE / ".aimodel" / "config.yaml").read_text().splitlines():
        body = text[6:] if text.startswith("    # ") else None
        if body is not None and (body in ("target: kserve", "kserve:") or (body.startswith("  ") and ":" in body and not body.lstrip().startswith("#"))):
            text = "    " + body
        lines.append(text)
    return "\n".join(lines) + "\n"


def test_the_template_example_parses_and_matches_the_schema() -> None:
    text = _uncommented_example()
    prod = parse_config(text).environments["prod"]
    assert prod.target == "kserve" and prod.kserve is not None
    assert (prod.kserve.mode, prod.kserve.namespace, prod.kserve.path, prod.kserve.max_replicas) == ("gitops", "models", "deploy/prod/", 3)
    jsonschema.validate(yaml.safe_load(text), SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text.replace("mode: gitops", "mode: push")), SCHEMA)


def test_the_gitops_examples_sync_the_folder_the_bot_writes() -> None:
    examples = ROOT / "deploy" / "gitops-examples"
    argo = yaml.safe_load((examples / "argocd-application.yaml").read_text())
    source, kustomization = yaml.safe_load_all((examples / "flux-kustomization.yaml").read_text())
    default = KServeSettings(path="deploy/prod/").path.rstrip("/")
    parsed = parse_config("environments:\n  prod:\n    target: kserve\n").environments["prod"].kserve
    assert parsed is not None and parsed.path.rstrip("/") == default
    assert argo["kind"] == "Application" and argo["spec"]["source"]["path"] == default
    assert argo["spec"]["syncPolicy"]["automated"]["prune"] is True
    assert source["kind"] == "GitRepository" and kustomization["kind"] == "Kustomization"
    assert kustomization["spec"]["path"] == f"./{default}" and kustomization["spec"]["prune"] is True
    assert kustomization["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
