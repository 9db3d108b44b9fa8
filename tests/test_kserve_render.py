"""Rendering a release for KServe: the objects the cluster (or Argo CD / Flux) receives,
checked against KServe's InferenceService schema and Kubernetes' metadata rules."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from bot.deploy.targets.kserve_render import (
    CONFIGMAP,
    ISVC,
    KUSTOMIZATION,
    ReleaseMeta,
    files,
    render,
    settle,
)
from tests.kserve_helpers import (
    COMMIT,
    DIGESTS,
    SETTINGS,
    STORE,
    isvc_validator,
    kubernetes_problems,
    model,
    served,
    two_models,
)

META = ReleaseMeta(pr=42, releases={"shop": "prod-shop-7", "risk": "prod-risk-3"})


def test_two_models_one_with_a_canary_match_the_inferenceservice_schema() -> None:
    out = render(two_models(), SETTINGS, storage=STORE, meta=META, canary={"fraud": 10})
    assert out.refused == {}
    assert sorted(out.objects) == [
        (CONFIGMAP, "aimodel-risk"), (CONFIGMAP, "aimodel-shop"), (ISVC, "churn"), (ISVC, "fraud"),
    ]
    validator = isvc_validator()
    for obj in out.objects.values():
        assert kubernetes_problems(obj) == []
        if obj["kind"] == ISVC:
            errors = [e.message for e in validator.iter_errors(obj)]
            assert errors == [], errors

    churn = out.objects[(ISVC, "churn")]
    assert churn["apiVersion"] == "serving.kserve.io/v1beta1"
    assert churn["metadata"]["namespace"] == "models"
    predictor = churn["spec"]["predictor"]
    assert predictor == {
        "minReplicas": 1,
        "maxReplicas": 3,
        "model": {
            "modelFormat": {"name": "onnx"},
            "protocolVersion": "v2",
            "runtime": "kserve-tritonserver",
            "storageUri": served(DIGESTS["churn"]),
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        },
    }
    fraud = out.objects[(ISVC, "fraud")]
    assert fraud["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert fraud["spec"]["predictor"]["model"]["storageUri"] == served(DIGESTS["fraud"])


def test_every_object_carries_the_release_commit_and_pr() -> None:
    out = render(two_models(), SETTINGS, storage=STORE, meta=META)
    for obj in out.objects.values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "aimodel"
        assert labels["aimodel.dev/env"] == "prod"
        assert labels["aimodel.dev/commit"] == COMMIT
        assert labels["aimodel.dev/pr"] == "42"
    assert out.objects[(ISVC, "fraud")]["metadata"]["labels"]["aimodel.dev/release"] == "prod-risk-3"  # fraud belongs to risk
    assert out.objects[(CONFIGMAP, "aimodel-shop")]["metadata"]["labels"]["aimodel.dev/release"] == "prod-shop-7"
    assert out.objects[(ISVC, "fraud")]["metadata"]["annotations"]["aimodel.dev/sha256"] == DIGESTS["fraud"]


def test_the_application_is_told_where_each_of_its_models_answers() -> None:
    data = render(two_models(), SETTINGS, storage=STORE, meta=META).objects[(CONFIGMAP, "aimodel-shop")]["data"]
    assert data["APP_VERSION"] == "3.1"
    assert data["MODEL_CHURN_URL"] == "http://churn.models.svc.cluster.local/v2/models/churn/infer"
    assert data["MODEL_FRAUD_VERSION"] == "2.0"
    assert json.loads(data["models.json"])["fraud"] == {
        "version": "2.0", "sha256": DIGESTS["fraud"], "url": "http://fraud.models.svc.cluster.local/v2/models/fraud/infer",
    }
    risk = render(two_models(), SETTINGS, storage=STORE).objects[(CONFIGMAP, "aimodel-risk")]["data"]
    assert set(json.loads(risk["models.json"])) == {"fraud"}


def test_the_schema_check_rejects_a_field_kserve_does_not_know() -> None:
    obj = render(two_models(), SETTINGS, storage=STORE, canary={"fraud": 10}).objects[(ISVC, "fraud")]
    predictor = obj["spec"]["predictor"]
    predictor["canaryTrafficPercentage"] = predictor.pop("canaryTrafficPercent")  # a typo the API server would drop
    assert any("canaryTrafficPercentage" in e.message for e in isvc_validator().iter_errors(obj))
    predictor["minReplicas"] = "one"
    assert any("'one' is not of type 'integer'" in e.message for e in isvc_validator().iter_errors(obj))


def test_a_model_that_cannot_run_on_kserve_is_refused_with_its_reason() -> None:
    plan = two_models()
    plan.models["churn"] = model("churn", "1.0", DIGESTS["churn"], fmt="pickle")
    out = render(plan, SETTINGS, storage=STORE)
    assert out.refused == {"churn": "churn is pickle: the KServe target serves ONNX models only"}
    assert (ISVC, "churn") not in out.objects

    local = render(two_models(), SETTINGS, storage="/home/me/.aimodel/artifacts")
    assert set(local.refused) == {"churn", "fraud"}
    assert "kserve.storage_uri" in local.refused["fraud"]

    plan = two_models()
    plan.models["churn"] = dataclasses.replace(plan.models["churn"], name="9lives")
    assert "starts with a letter" in render(plan, SETTINGS, storage=STORE).refused["churn"]


def test_a_canary_must_name_a_model_of_the_release_and_a_percent() -> None:
    with pytest.raises(ValueError, match="0 to 100"):
        render(two_models(), SETTINGS, storage=STORE, canary={"fraud": 101})
    with pytest.raises(ValueError, match="0 to 100"):
        render(two_models(), SETTINGS, storage=STORE, canary={"nope": 5})


def test_a_refused_model_and_the_applications_pinning_it_keep_their_previous_objects() -> None:
    before = render(two_models(fraud="1.0", fraud_digest=DIGESTS["fraud"]), SETTINGS, storage=STORE).objects
    plan = two_models(commit="d" * 40, fraud="2.0", fraud_digest=DIGESTS["fraud2"])
    after = render(plan, SETTINGS, storage=STORE).objects
    desired = settle(plan, after, before, {"fraud": "signature does not verify"})
    assert desired[(ISVC, "fraud")] == before[(ISVC, "fraud")]
    assert desired[(CONFIGMAP, "aimodel-risk")] == before[(CONFIGMAP, "aimodel-risk")]
    assert desired[(CONFIGMAP, "aimodel-shop")] == before[(CONFIGMAP, "aimodel-shop")]  # all or nothing per app
    # churn did not change: it keeps the object (and the labels) of the release that wrote it
    assert desired[(ISVC, "churn")] is before[(ISVC, "churn")]


def test_a_new_commit_that_changes_nothing_renders_the_same_objects() -> None:
    before = render(two_models(), SETTINGS, storage=STORE).objects
    plan = two_models(commit="e" * 40)
    after = render(plan, SETTINGS, storage=STORE).objects
    assert after[(ISVC, "churn")]["metadata"]["labels"]["aimodel.dev/commit"] == "e" * 40
    assert settle(plan, after, before, {}) == before


def test_the_deploy_folder_lists_every_object_for_kustomize() -> None:
    out = files(render(two_models(), SETTINGS, storage=STORE).objects)
    assert sorted(out) == [
        "configmap-aimodel-risk.yaml", "configmap-aimodel-shop.yaml",
        "inferenceservice-churn.yaml", "inferenceservice-fraud.yaml", KUSTOMIZATION,
    ]
    kustomization = yaml.safe_load(out[KUSTOMIZATION])
    assert kustomization["resources"] == sorted(set(out) - {KUSTOMIZATION})
    assert yaml.safe_load(out["inferenceservice-churn.yaml"])["metadata"]["name"] == "churn"
