"""mode: apply with the official kubernetes client against the Kubernetes API stand-in (real
HTTP): server-side apply, a wait for Ready at the applied generation, the applications'
ConfigMaps only after their models answer, and a rollback when a model does not."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease
from bot.deploy.targets.kserve import KServeTarget
from bot.deploy.targets.kserve_cluster import ClusterApplier
from bot.deploy.targets.kserve_render import ReleaseMeta, render
from bot.manifests import KServeSettings
from tests.kserve_helpers import DIGESTS, SETTINGS, STORE, accept, model, served, two_models
from tests.standins.kube_api import APPLY, KubeStandIn

NS = SETTINGS.namespace


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn() as standin:
        yield standin


def client_for(kube: KubeStandIn) -> Any:
    def make(s: KServeSettings) -> Any:
        return kubernetes.client.ApiClient(kubernetes.client.Configuration(host=kube.url))

    return make


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The bot's artifact store (AIMODEL_ARTIFACT_STORE); the cluster reads it as STORE."""
    return tmp_path / "artifacts"


def target(kube: KubeStandIn, store: Path, **changes: Any) -> KServeTarget:
    s = dataclasses.replace(SETTINGS, **changes)
    return KServeTarget(lambda: {"prod": s}, storage=str(store), cluster=ClusterApplier(client_for(kube), poll=0.01))


def release_two() -> EnvPlan:
    """fraud moves to 2.1 and a new model, upsell, joins shop."""
    plan = two_models(commit="d" * 40, fraud="2.1", fraud_digest=DIGESTS["fraud2"])
    plan.models["upsell"] = model("upsell", "0.1", "d" * 64)
    plan.apps["shop"] = AppRelease("shop", "3.2", "registry/shop:3.2", (("churn", "1.0"), ("fraud", "2.1"), ("upsell", "0.1")))
    return plan


def uri(kube: KubeStandIn, name: str) -> str:
    obj = kube.get("InferenceService", NS, name)
    assert obj is not None
    return str(obj["spec"]["predictor"]["model"]["storageUri"])


def test_a_release_is_applied_server_side_and_the_apps_switch_once_models_are_ready(kube: KubeStandIn, store: Path) -> None:
    result = target(kube, store).apply(two_models(), accept, meta=ReleaseMeta(pr=9), canary={"fraud": 20})
    assert result.ok, result.failed
    assert result.applied == ["churn@1.0", "fraud@2.0"] and sorted(result.apps) == ["risk", "shop"]

    rendered = render(two_models(), SETTINGS, storage=STORE, meta=ReleaseMeta(pr=9), canary={"fraud": 20}).objects
    assert kube.names("InferenceService", NS) == ["churn", "fraud"]
    assert kube.names("ConfigMap", NS) == ["aimodel-risk", "aimodel-shop"]
    for (kind, name), obj in rendered.items():
        live = kube.get(kind, NS, name)
        assert live is not None
        assert live.get("spec") == obj.get("spec") and live.get("data") == obj.get("data")
        assert obj["metadata"]["labels"].items() <= live["metadata"]["labels"].items()
    assert kube.get("InferenceService", NS, "fraud")["spec"]["predictor"]["canaryTrafficPercent"] == 20  # type: ignore[index]

    patches = [c for c in kube.calls if c.method == "PATCH"]
    assert len(patches) == 4
    assert all(c.content_type == APPLY and c.query["fieldManager"] == "aimodel" and c.query["force"] == "true" for c in patches)
    # every model was read back until Ready, and only then were the applications told
    gets = [i for i, c in enumerate(kube.calls) if c.method == "GET" and "/inferenceservices/" in c.path]
    first_configmap = min(i for i, c in enumerate(kube.calls) if c.method == "PATCH" and "/configmaps/" in c.path)
    assert len(gets) >= 4 and max(gets) < first_configmap

    status = target(kube, store).status("prod")
    assert {m: (s.version, s.state) for m, s in status.models.items()} == {"churn": ("1.0", "running"), "fraud": ("2.0", "running")}
    assert status.models["fraud"].reason == "canary: 20% of requests to 2.0, the rest to the previous version"
    assert status.models["churn"].reason == ""
    assert status.apps["shop"] == {"version": "3.1", "models": {"churn": "1.0", "fraud": "2.0"}}


def test_a_model_that_fails_to_become_ready_rolls_the_release_back(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store)
    assert t.apply(two_models(), accept).ok
    before_fraud, before_shop = uri(kube, "fraud"), kube.get("ConfigMap", NS, "aimodel-shop")
    new_uri = served(DIGESTS["fraud2"])
    kube.fail("fraud", "failed to load model: bad ONNX graph", storage_uri=new_uri)

    result = t.apply(release_two(), accept)
    assert not result.ok
    assert result.failed == {"fraud": "failed to load model: bad ONNX graph"}
    assert result.applied == [] and result.apps == []
    assert uri(kube, "fraud") == before_fraud  # the previous version applied again
    assert "upsell" not in kube.names("InferenceService", NS)  # new in the failed release: deleted
    assert kube.get("ConfigMap", NS, "aimodel-shop") == before_shop  # never switched
    status = t.status("prod")
    assert (status.models["fraud"].version, status.models["fraud"].state) == ("2.0", "running")


def test_a_model_not_ready_in_time_rolls_the_release_back(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store, ready_timeout=1)
    assert t.apply(two_models(), accept).ok
    kube.hold("fraud", storage_uri=served(DIGESTS["fraud2"]))
    result = t.apply(release_two(), accept)
    assert result.failed == {"fraud": "not Ready within 1 s"}
    assert uri(kube, "fraud") == served(DIGESTS["fraud"])
    assert kube.get("ConfigMap", NS, "aimodel-risk")["data"]["MODEL_FRAUD_VERSION"] == "2.0"  # type: ignore[index]


def test_a_good_release_deletes_what_it_no_longer_holds(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store)
    assert t.apply(release_two(), accept).ok
    plan = two_models(commit="e" * 40)
    del plan.apps["shop"]
    del plan.models["churn"]
    result = t.apply(plan, accept)
    assert result.ok, result.failed
    assert sorted(result.removed) == ["app shop", "churn", "upsell"]
    assert kube.names("InferenceService", NS) == ["fraud"]
    assert kube.names("ConfigMap", NS) == ["aimodel-risk"]


def test_an_unchanged_release_applies_nothing(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store)
    assert t.apply(two_models(), accept).ok
    patches = sum(c.method == "PATCH" for c in kube.calls)
    again = t.apply(two_models(commit="f" * 40), accept)
    assert again.ok and again.applied == [] and again.apps == []
    assert sum(c.method == "PATCH" for c in kube.calls) == patches


def test_a_refused_model_is_not_applied_and_its_apps_keep_their_release(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store)
    assert t.apply(two_models(), accept).ok

    def refuse_fraud(release: ModelRelease, folder: Path) -> None:
        if release.name == "fraud":
            from bot.deploy.targets.base import DeployRefused

            raise DeployRefused("no signature bundle; the sign check has not passed")
        accept(release, folder)

    result = t.apply(release_two(), refuse_fraud)
    assert result.failed == {"fraud": "no signature bundle; the sign check has not passed"}
    assert result.applied == ["upsell@0.1"] and result.apps == []  # both apps pin fraud
    assert uri(kube, "fraud") == served(DIGESTS["fraud"])
    assert kube.get("ConfigMap", NS, "aimodel-shop")["data"]["APP_VERSION"] == "3.1"  # type: ignore[index]


def test_an_unreachable_cluster_changes_nothing_and_says_so() -> None:
    with KubeStandIn() as gone:
        make = client_for(gone)
    t = KServeTarget(lambda: {"prod": SETTINGS}, storage=STORE, cluster=ClusterApplier(make, poll=0.01))
    result = t.apply(two_models(), accept)
    assert list(result.failed) == ["*"]
    assert result.failed["*"].startswith("cannot reach the Kubernetes cluster (")
    assert "Traceback" not in result.failed["*"]


def test_a_rollback_that_does_not_come_back_is_reported_too(kube: KubeStandIn, store: Path) -> None:
    t = target(kube, store, ready_timeout=1)
    assert t.apply(two_models(), accept).ok
    kube.hold("fraud")  # whatever it loads
    result = t.apply(release_two(), accept)
    assert result.failed == {"fraud": "not Ready within 1 s", "rollback fraud": "not Ready within 1 s"}
