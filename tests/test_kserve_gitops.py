"""mode: gitops on real git: a release is one commit of exactly the rendered files under the
environment's deploy folder, on the branch Argo CD or Flux syncs; nothing else changes."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from bot.deploy.plan import EnvPlan, ModelRelease
from bot.deploy.targets.base import DeployRefused
from bot.deploy.targets.kserve import (
    AppliesReleases,
    EnvTargets,
    KServeTarget,
    kserve_settings_at_head,
    pick_target,
)
from bot.deploy.targets.kserve_cluster import ClusterApplier
from bot.deploy.targets.kserve_render import ReleaseMeta, files, render
from bot.deploy.targets.local import LocalTarget
from bot.gitrepo import Workspace
from bot.manifests import KServeSettings, parse_config
from tests.kserve_helpers import COMMIT, DIGESTS, STORE, accept, model, two_models
from tests.standins.kube_api import APPLY, KubeStandIn

CONFIG = """\
environments:
  dev: {}
  prod:
    target: kserve
    kserve:
      namespace: models
      runtime: kserve-tritonserver
      resources: {requests: {cpu: 500m}}
      max_replicas: 2
      storage_uri: s3://models/aimodel
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True).stdout.decode()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, Workspace]]:
    seed, bare = tmp_path / "seed", tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / ".aimodel").mkdir()
    (seed / ".aimodel" / "config.yaml").write_text(CONFIG)
    (seed / "models").mkdir()
    (seed / "models" / "churn.yaml").write_text("kind: AIModel\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "seed")
    git(seed, "push", "-q", str(bare), "HEAD:main")
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "work"))
    ws = Workspace(tmp_path / "work")
    yield bare, ws
    ws.close()


def settings(**changes: str) -> KServeSettings:
    s = parse_config(CONFIG).environments["prod"].kserve
    assert s is not None
    return KServeSettings(**{**s.__dict__, **changes})


def tree(bare: Path, branch: str = "main", under: str = "") -> dict[str, bytes]:
    names = git(bare, "ls-tree", "-r", "--name-only", branch).split()
    return {n: subprocess.run(["git", "show", f"{branch}:{n}"], cwd=bare, check=True, capture_output=True).stdout for n in names if n.startswith(under)}


def refuse(*names: str):  # type: ignore[no-untyped-def]
    def install(release: ModelRelease, folder: Path) -> None:
        if release.name in names:
            raise DeployRefused(f"the signature of {release.name} does not verify")
        accept(release, folder)

    return install


def bot_store(ws: Workspace) -> str:
    """The bot's artifact store (AIMODEL_ARTIFACT_STORE), beside its clone; the cluster reads it
    as the config's storage_uri."""
    return str(ws.path.parent / "artifacts")


def target(ws: Workspace, **changes: str) -> KServeTarget:
    return KServeTarget(lambda: {"prod": settings(**changes)}, storage=bot_store(ws), workspace=ws)


def test_a_release_commits_exactly_the_rendered_files(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    before = tree(bare)
    meta = ReleaseMeta(pr=7, releases={"shop": "prod-shop-1"})
    result = target(ws).apply(two_models(), accept, meta=meta, canary={"fraud": 25})
    assert result.ok, result.failed
    assert result.applied == ["churn@1.0", "fraud@2.0"]
    assert sorted(result.apps) == ["risk", "shop"]

    rendered = files(render(two_models(), settings(), storage=STORE, meta=meta, canary={"fraud": 25}).objects)
    assert tree(bare, under="deploy/") == {f"deploy/prod/{name}": data for name, data in rendered.items()}
    assert {k: v for k, v in tree(bare).items() if not k.startswith("deploy/")} == before
    assert b"canaryTrafficPercent: 25" in rendered["inferenceservice-fraud.yaml"]
    assert f"storageUri: {STORE}/serving/{DIGESTS['fraud']}".encode() in rendered["inferenceservice-fraud.yaml"]
    # the verified bytes, where that storageUri points (the bot writes its store; the cluster reads it as STORE)
    served = Path(bot_store(ws)) / "serving" / DIGESTS["fraud"] / "model.onnx"
    assert served.read_bytes() == b"onnx bytes of fraud 2.0"
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "deploy prod: churn@1.0, fraud@2.0"


def test_the_same_release_again_commits_nothing(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    t = target(ws)
    assert t.apply(two_models(), accept).ok
    head = git(bare, "rev-parse", "main")
    again = t.apply(two_models(commit="f" * 40), accept)  # a merge elsewhere: a new commit, same release
    assert again.ok and again.applied == [] and again.apps == []
    assert git(bare, "rev-parse", "main") == head


def test_a_new_version_rewrites_its_files_and_removes_what_is_gone(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    t = target(ws)
    assert t.apply(two_models(), accept).ok
    first = tree(bare, under="deploy/")

    plan = two_models(commit="d" * 40, fraud="2.1", fraud_digest=DIGESTS["fraud2"])
    del plan.models["churn"]
    plan.apps["shop"] = plan.apps["shop"].__class__("shop", "3.2", "registry/shop:3.2", (("fraud", "2.1"),))
    result = t.apply(plan, accept)
    assert result.ok and result.applied == ["fraud@2.1"] and sorted(result.apps) == ["risk", "shop"]
    assert result.removed == ["churn"]
    now = tree(bare, under="deploy/")
    assert "deploy/prod/inferenceservice-churn.yaml" not in now
    assert now["deploy/prod/inferenceservice-fraud.yaml"] != first["deploy/prod/inferenceservice-fraud.yaml"]
    assert DIGESTS["fraud2"].encode() in now["deploy/prod/inferenceservice-fraud.yaml"]
    assert now == {f"deploy/prod/{n}": d for n, d in files(render(plan, settings(), storage=STORE).objects).items()}


def test_a_refused_model_keeps_its_previous_files_and_says_why(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    t = target(ws)
    assert t.apply(two_models(), accept).ok
    first = tree(bare, under="deploy/")
    result = t.apply(two_models(commit="d" * 40, fraud="2.1", fraud_digest=DIGESTS["fraud2"]), refuse("fraud"))
    assert result.failed == {"fraud": "the signature of fraud does not verify"}
    assert tree(bare, under="deploy/") == first  # fraud, and both apps that pin it, as they were


def test_a_deploy_branch_starts_from_the_default_branch_and_leaves_it_alone(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    main = git(bare, "rev-parse", "main")
    assert target(ws, branch="deploy").apply(two_models(), accept).ok
    assert git(bare, "rev-parse", "main") == main
    assert git(bare, "rev-parse", "deploy~1") == main
    assert set(tree(bare, "deploy", under="deploy/")) == {
        f"deploy/prod/{n}" for n in files(render(two_models(), settings(), storage=STORE).objects)
    }


def test_a_push_that_loses_a_race_builds_again_on_the_new_head(repo: tuple[Path, Workspace], tmp_path: Path) -> None:
    bare, ws = repo
    t = target(ws)
    ws.fetch()
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    (other / "models" / "fraud.yaml").write_text("kind: AIModel\n")
    git(other, "add", "-A")
    git(other, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "a merge meanwhile")
    git(other, "push", "-q", "origin", "HEAD:main")
    assert t.publisher is not None
    commit = t.publisher.publish(settings(), render(two_models(), settings(), storage=STORE).objects, "deploy prod")
    assert commit is not None and git(bare, "rev-parse", "main").strip() == commit
    assert "models/fraud.yaml" in tree(bare)  # built on the other writer's commit, not over it


def test_status_says_what_is_committed_and_that_health_needs_the_cluster(repo: tuple[Path, Workspace]) -> None:
    _, ws = repo
    t = target(ws)
    assert t.apply(two_models(), accept).ok
    status = t.status("prod")
    assert {m: (s.version, s.state) for m, s in status.models.items()} == {"churn": ("1.0", "pending"), "fraud": ("2.0", "pending")}
    assert "kserve.context" in status.models["churn"].reason
    assert status.apps["risk"] == {"version": "1.2", "models": {"fraud": "2.0"}}


def test_each_environment_goes_to_the_target_its_config_names(repo: tuple[Path, Workspace], tmp_path: Path) -> None:
    bare, ws = repo
    ws.fetch()
    assert set(kserve_settings_at_head(ws)) == {"prod"}
    routed = pick_target(LocalTarget(tmp_path / "deploy"), ws, bot_store(ws))
    assert isinstance(routed, EnvTargets) and routed.kind == "local+kserve"
    dev = EnvPlan("dev", COMMIT, models={"churn": model("churn", "1.0", DIGESTS["churn"])})
    assert routed.apply(dev, accept).ok
    assert (tmp_path / "deploy" / "dev" / "churn" / "1.0" / "model.onnx").exists()  # local: files here
    assert routed.apply(two_models(), accept).ok
    assert "deploy/prod/inferenceservice-churn.yaml" in tree(bare)  # kserve: committed
    assert "deploy/dev/inferenceservice-churn.yaml" not in tree(bare)
    assert routed.environments() == ["dev", "prod"]


def test_the_deploy_can_hand_the_release_and_a_canary_through_the_router(repo: tuple[Path, Workspace], tmp_path: Path) -> None:
    bare, ws = repo
    ws.fetch()
    routed = pick_target(LocalTarget(tmp_path / "deploy"), ws, bot_store(ws))
    assert isinstance(routed, AppliesReleases)
    wrong = routed.apply_release(two_models(), accept, canary={"churnn": 10})
    assert wrong.failed == {"*": "canary churnn=10: name a model of this release and a percent from 0 to 100"}
    assert "deploy/prod/kustomization.yaml" not in tree(bare)
    meta = ReleaseMeta(pr=12, releases={"shop": "prod-shop-4"})
    assert routed.apply_release(two_models(), accept, meta=meta, canary={"fraud": 10}).ok
    isvc = tree(bare)["deploy/prod/inferenceservice-fraud.yaml"]
    assert b"canaryTrafficPercent: 10" in isvc and b"aimodel.dev/pr: '12'" in isvc
    dev = EnvPlan("dev", COMMIT, models={"churn": model("churn", "1.0", DIGESTS["churn"])})
    assert routed.apply_release(dev, accept, meta=meta).ok  # the local target takes the plain apply
    assert (tmp_path / "deploy" / "dev" / "churn" / "1.0").is_dir()


def test_with_cluster_access_status_reads_health_once_the_engine_synced(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    with KubeStandIn() as kube:
        api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=kube.url))
        s = dataclasses.replace(settings(), context="prod-cluster")
        t = KServeTarget(lambda: {"prod": s}, storage=bot_store(ws), workspace=ws, cluster=ClusterApplier(lambda _: api, poll=0.01))
        assert t.apply(two_models(), accept).ok
        before = t.status("prod").models["churn"]
        assert (before.state, before.reason[-len("the GitOps engine has not synced it)") :]) == ("pending", "the GitOps engine has not synced it)")

        # Argo CD / Flux: the committed folder, applied server-side as it is
        custom = kubernetes.client.CustomObjectsApi(api)
        for data in tree(bare, under="deploy/prod/inferenceservice-").values():
            obj = yaml.safe_load(data)
            custom.patch_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", "models", "inferenceservices", obj["metadata"]["name"], obj,
                field_manager="argocd-controller", force=True, _content_type=APPLY,
            )
        for _ in range(2):  # the controller settles on its second look, as KServe's would later
            custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", "models", "inferenceservices", "churn")
        after = t.status("prod").models
        assert (after["churn"].version, after["churn"].state) == ("1.0", "running")
        assert (after["fraud"].version, after["fraud"].state) == ("2.0", "pending")  # synced, not Ready yet
        api.close()


def test_a_store_the_bytes_cannot_be_placed_in_refuses_the_model(repo: tuple[Path, Workspace], tmp_path: Path) -> None:
    bare, ws = repo
    (tmp_path / "not-a-folder").write_text("")
    t = KServeTarget(lambda: {"prod": settings()}, storage=str(tmp_path / "not-a-folder"), workspace=ws)
    result = t.apply(two_models(), accept)
    assert set(result.failed) == {"churn", "fraud"}
    assert result.failed["churn"].startswith("cannot place churn's verified bytes where the cluster reads them: ")
    assert str(tmp_path) not in result.failed["churn"]
    assert "deploy/prod/kustomization.yaml" not in tree(bare)  # every app pins a refused model: nothing to commit


def test_when_every_model_leaves_the_folder_keeps_an_empty_kustomization_for_the_engine_to_prune(repo: tuple[Path, Workspace]) -> None:
    bare, ws = repo
    t = target(ws)
    assert t.apply(two_models(), accept).ok
    result = t.apply(EnvPlan("prod", "e" * 40), accept)
    assert result.ok and sorted(result.removed) == ["app risk", "app shop", "churn", "fraud"]
    folder = tree(bare, under="deploy/")
    assert list(folder) == ["deploy/prod/kustomization.yaml"]
    assert yaml.safe_load(folder["deploy/prod/kustomization.yaml"])["resources"] == []
