"""A release as Kubernetes objects for KServe: pure functions from plain data.

Per model of the environment's plan, one `InferenceService` (serving.kserve.io/v1beta1) named
after the model, whose predictor loads the exact version the release pins from the artifact
store, in the folder named by its digest (kserve_storage). The name stays the model's across versions on purpose: KServe's canary
(`canaryTrafficPercent`) splits traffic between an InferenceService's candidate revision and
its last ready one, and the applications keep one URL per model. Per application, one
ConfigMap (`aimodel-<app>`) telling it where each of its models answers, as `models.json` and
as `MODEL_<NAME>_URL` keys for `envFrom`.

Every object carries the release's labels (environment, commit, PR, release id); a model
that cannot be rendered (not ONNX, a name KServe refuses, bytes the cluster cannot read) is
listed with its reason instead, so the caller keeps its previous object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.deploy.plan import EnvPlan, ModelRelease
from bot.deploy.targets.kserve_storage import serving_uri
from bot.manifests import KServeSettings
from bot.messages import kserve as msg
from bot.store import digest_of

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
ISVC = "InferenceService"
CONFIGMAP = "ConfigMap"
PREFIX = "aimodel.dev/"
MANAGED_BY = ("app.kubernetes.io/managed-by", "aimodel")
# Labels and annotations that say which release wrote an object, not what it is: an object
# whose content is otherwise unchanged keeps its old ones (no new revision for an unrelated merge).
RELEASE_KEYS = (f"{PREFIX}commit", f"{PREFIX}release", f"{PREFIX}pr")
FORMATS = {"onnx": "onnx"}  # our format -> KServe's modelFormat.name
# Schemes KServe's storage initializer reads (kserve pkg/controller/.../utils.go), less file://
# (a path inside the pod) and the registries that do not hold our objects.
STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://", "hdfs://", "webhdfs://")
_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # IsvcNameFmt in KServe's webhook
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
Key = tuple[str, str]  # (kind, name)
Obj = dict[str, Any]


@dataclass(frozen=True)
class ReleaseMeta:
    """Who and what a release is, beyond the plan: the PR that merged it, release ids per app."""

    pr: int | None = None
    releases: Mapping[str, str] = field(default_factory=dict)  # app -> release id


@dataclass
class Rendered:
    objects: dict[Key, Obj] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # model -> why it cannot run there


def key_of(obj: Mapping[str, Any]) -> Key:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def endpoint(model: str, namespace: str) -> str:
    """The V2 inference URL of a model's InferenceService inside the cluster."""
    return f"http://{model}.{namespace}.svc.cluster.local/v2/models/{model}/infer"


def storage_uri(model: ModelRelease, storage: str) -> str:
    """Where the cluster reads the model's bytes: the serving folder of its digest in the store
    (kserve_storage), or an older manifest's own URI; raises ValueError with the reason."""
    digest = digest_of(model.uri)
    uri = serving_uri(storage, digest) if digest else model.uri
    if not uri.startswith(STORAGE_SCHEMES):
        raise ValueError(msg.storage_unreadable(model.name, uri))
    return uri


def _labels(plan: EnvPlan, meta: ReleaseMeta, app: str, extra: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    values = {
        f"{PREFIX}env": plan.env,
        f"{PREFIX}commit": plan.commit,
        f"{PREFIX}release": meta.releases.get(app, ""),
        f"{PREFIX}pr": "" if meta.pr is None else str(meta.pr),
        **extra,
    }
    values = {k: v for k, v in values.items() if v}
    # Every value is an annotation; the ones Kubernetes accepts as label values are labels too,
    # so `kubectl get isvc -l aimodel.dev/release=...` finds them.
    labels = {MANAGED_BY[0]: MANAGED_BY[1]}
    labels.update({k: v for k, v in values.items() if len(v) <= 63 and _LABEL_VALUE.match(v)})
    return labels, values


def inference_service(plan: EnvPlan, model: ModelRelease, s: KServeSettings, storage: str, meta: ReleaseMeta, canary: int | None) -> Obj:
    if model.format not in FORMATS:
        raise ValueError(msg.not_onnx(model.name, model.format))
    if not _ISVC_NAME.match(model.name):
        raise ValueError(msg.bad_isvc_name(model.name))
    labels, notes = _labels(plan, meta, model.application, {f"{PREFIX}model": model.name, f"{PREFIX}version": model.version})
    notes[f"{PREFIX}sha256"] = model.sha256
    spec: Obj = {"modelFormat": {"name": FORMATS[model.format]}, "protocolVersion": "v2"}
    if s.runtime:
        spec["runtime"] = s.runtime
    spec["storageUri"] = storage_uri(model, storage)
    resources = {kind: dict(pairs) for kind, pairs in (("requests", s.requests), ("limits", s.limits)) if pairs}
    if resources:
        spec["resources"] = resources
    predictor: Obj = {}
    if s.min_replicas is not None:
        predictor["minReplicas"] = s.min_replicas
    if s.max_replicas is not None:
        predictor["maxReplicas"] = s.max_replicas
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    predictor["model"] = spec
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ISVC,
        "metadata": {"name": model.name, "namespace": s.namespace, "labels": labels, "annotations": notes},
        "spec": {"predictor": predictor},
    }


def _env_key(model: str) -> str:
    return "MODEL_" + re.sub(r"[^A-Z0-9]", "_", model.upper())


def config_map(plan: EnvPlan, app: str, s: KServeSettings, meta: ReleaseMeta) -> Obj:
    release = plan.apps[app]
    labels, notes = _labels(plan, meta, app, {f"{PREFIX}app": app, f"{PREFIX}app-version": release.version})
    models = {m: {"version": v, "url": endpoint(m, s.namespace), "sha256": plan.models[m].sha256} for m, v in release.models}
    data = {"APP_VERSION": release.version, "models.json": json.dumps(models, indent=2, sort_keys=True) + "\n"}
    for m, v in release.models:
        data[f"{_env_key(m)}_URL"] = models[m]["url"]
        data[f"{_env_key(m)}_VERSION"] = v
    return {
        "apiVersion": "v1",
        "kind": CONFIGMAP,
        "metadata": {"name": f"aimodel-{app}", "namespace": s.namespace, "labels": labels, "annotations": notes},
        "data": data,
    }


def render(
    plan: EnvPlan,
    s: KServeSettings,
    *,
    storage: str,
    meta: ReleaseMeta | None = None,
    canary: Mapping[str, int] | None = None,
) -> Rendered:
    """The objects of one environment's release. `canary`: model -> percent of traffic the
    new version gets (the rest stays on the last ready revision); absent means all of it."""
    meta = meta or ReleaseMeta()
    canary = canary or {}
    for name, percent in canary.items():
        if name not in plan.models or not 0 <= percent <= 100:
            raise ValueError(msg.bad_canary(name, percent))
    out = Rendered()
    for name, model in sorted(plan.models.items()):
        try:
            obj = inference_service(plan, model, s, storage, meta, canary.get(name))
        except ValueError as exc:
            out.refused[name] = str(exc)
            continue
        out.objects[key_of(obj)] = obj
    for app in sorted(plan.apps):
        obj = config_map(plan, app, s, meta)
        out.objects[key_of(obj)] = obj
    return out


def content(obj: Mapping[str, Any]) -> Obj:
    """An object less the marks of the release that wrote it."""
    meta = dict(obj["metadata"])
    for part in ("labels", "annotations"):
        meta[part] = {k: v for k, v in meta.get(part, {}).items() if k not in RELEASE_KEYS}
    return {**obj, "metadata": meta}


def isvc_of_app(plan: EnvPlan, app: str) -> Iterable[str]:
    return (m for m, _ in plan.apps[app].models)


def settle(plan: EnvPlan, rendered: Mapping[Key, Obj], previous: Mapping[Key, Obj], refused: Mapping[str, str]) -> dict[Key, Obj]:
    """What the environment should hold: the rendered objects, except that a refused model keeps
    its previous InferenceService and the applications pinning it keep their previous
    ConfigMap (all or nothing per application), and an object whose content did not change
    keeps its previous labels."""
    held_apps = {app for app in plan.apps if any(m in refused for m in isvc_of_app(plan, app))}
    held = {(ISVC, m) for m in refused} | {(CONFIGMAP, f"aimodel-{app}") for app in held_apps}
    desired: dict[Key, Obj] = {}
    for key, obj in rendered.items():
        if key in held:
            continue
        old = previous.get(key)
        desired[key] = old if old is not None and content(old) == content(obj) else obj
    for key in held:
        if key in previous:
            desired[key] = previous[key]
    return dict(sorted(desired.items()))


def file_name(key: Key) -> str:
    kind, name = key
    return f"{kind.lower()}-{name}.yaml"


KUSTOMIZATION = "kustomization.yaml"


# libyaml's emitter, as bot.yamlload reads with libyaml's parser: 10x the pure-Python one on a
# release of 200 models (benchmarks/bench_kserve.py).
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(obj: Mapping[str, Any]) -> bytes:
    text: str = yaml.dump(dict(obj), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text.encode()


def files(objects: Mapping[Key, Obj]) -> dict[str, bytes]:
    """The deploy folder's files: one per object and the kustomization listing them, which
    both Argo CD and Flux build."""
    out = {file_name(key): to_yaml(obj) for key, obj in sorted(objects.items())}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(out),
    }
    out[KUSTOMIZATION] = to_yaml(kustomization)
    return out
