"""Plain data for the KServe target's tests: a release of two models used by two
applications, and the InferenceService schema the API server checks (vendored from KServe)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease
from bot.manifests import KServeSettings

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "kserve" / "inferenceservice.schema.json"
STORE = "s3://models/aimodel"
COMMIT = "c0ffee" + "0" * 34
DIGESTS = {"churn": "a" * 64, "fraud": "b" * 64, "fraud2": "c" * 64}


def model(name: str, version: str, digest: str, app: str = "shop", fmt: str = "onnx") -> ModelRelease:
    return ModelRelease(name, version, f"store:sha256/{digest}", digest, fmt, 1234, app, f"s3://team/{name}.onnx")


def two_models(commit: str = COMMIT, fraud: str = "2.0", fraud_digest: str = DIGESTS["fraud"]) -> EnvPlan:
    """churn 1.0 (app shop) and fraud (apps shop and risk)."""
    return EnvPlan(
        "prod",
        commit,
        models={"churn": model("churn", "1.0", DIGESTS["churn"]), "fraud": model("fraud", fraud, fraud_digest, app="risk")},
        apps={
            "shop": AppRelease("shop", "3.1", "registry/shop:3.1", (("churn", "1.0"), ("fraud", fraud))),
            "risk": AppRelease("risk", "1.2", "registry/risk:1.2", (("fraud", fraud),)),
        },
    )


SETTINGS = KServeSettings(
    mode="apply",
    namespace="models",
    path="deploy/prod/",
    runtime="kserve-tritonserver",
    requests=(("cpu", "500m"), ("memory", "1Gi")),
    limits=(("memory", "2Gi"),),
    min_replicas=1,
    max_replicas=3,
    storage_uri=STORE,
    ready_timeout=5,
)


def served(digest: str) -> str:
    """The storageUri of the bytes with this digest: their serving folder under STORE."""
    return f"{STORE}/serving/{digest}"


def accept(release: ModelRelease, folder: Path) -> None:
    """An installer whose gate lets every model through: it places the file as the real one
    names it (bot.deploy.targets.base.deployed_name), holding bytes that say which model they are."""
    from bot.deploy.targets.base import deployed_name

    (folder / deployed_name(release)).write_bytes(f"onnx bytes of {release.name} {release.version}".encode())


def _strict(node: Any) -> Any:
    """The API server prunes fields a structural schema does not name, and rejects them with
    fieldValidation=Strict (kubectl's default since 1.27): an object is correct only when no
    field would be dropped. jsonschema says so with additionalProperties: false."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def isvc_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    schema.pop("$comment", None)
    return jsonschema.Draft7Validator(_strict(copy.deepcopy(schema)))


# Kubernetes' own rules for the object metadata and ConfigMaps (k8s.io/apimachinery validation).
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def kubernetes_problems(obj: Mapping[str, Any]) -> list[str]:
    problems = []
    meta = obj["metadata"]
    if not _DNS1123_SUBDOMAIN.match(meta["name"]) or len(meta["name"]) > 253:
        problems.append(f"name {meta['name']!r}")
    for key, value in meta.get("labels", {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _DNS1123_SUBDOMAIN.match(prefix)) or len(name) > 63 or not _LABEL_NAME.match(name):
            problems.append(f"label key {key!r}")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"label value {key}={value!r}")
    for key, value in meta.get("annotations", {}).items():
        if not isinstance(value, str):
            problems.append(f"annotation {key} is not a string")
    if obj["kind"] == "ConfigMap":
        for key, value in obj.get("data", {}).items():
            if not _CONFIGMAP_KEY.match(key) or not isinstance(value, str):
                problems.append(f"data key {key!r}")
    return problems
