"""KServe applied straight to a cluster with the official `kubernetes` client.

Server-side apply (field manager `aimodel`) of the InferenceServices a release changes, then a
wait until each is Ready at the generation we wrote, then the applications' ConfigMaps (so an
application switches only to models that answer), then the deletion of what the release no
longer holds. A model that fails or is not Ready in time rolls the release back: every object
we applied is applied again as it was (or deleted when it is new), and the ConfigMaps were
never touched.

"As it was" is our own rendering, kept on each object in the `aimodel.dev/applied`
annotation (as kubectl keeps its last-applied configuration): the cluster's defaults and
status are not ours to re-apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.deploy.targets.base import ModelState
from bot.deploy.targets.kserve_render import (
    CONFIGMAP,
    GROUP,
    ISVC,
    MANAGED_BY,
    PLURAL,
    PREFIX,
    VERSION,
    Key,
    Obj,
    key_of,
)
from bot.manifests import KServeSettings
from bot.messages import kserve as msg

FIELD_MANAGER = "aimodel"
APPLIED = f"{PREFIX}applied"
APPLY_PATCH = "application/apply-patch+yaml"

ClientFactory = Callable[[KServeSettings], Any]  # settings -> kubernetes.client.ApiClient


class ClusterError(RuntimeError):
    """The cluster refused or could not be reached; the message is safe to show."""


def default_client(s: KServeSettings, kubeconfig: str = "") -> Any:
    """The kubeconfig's context (`kserve.context`, else its current one), or the pod's own
    service account when the bot runs in the cluster. `kubeconfig`: the file Settings names
    (KUBECONFIG); empty: the client's default."""
    from kubernetes import client, config

    try:
        return config.new_client_from_config(config_file=kubeconfig or None, context=s.context or None)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        if s.context:
            raise
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a call to the API server raises when the server refuses or cannot be reached."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    return (ApiException, urllib3.exceptions.HTTPError, OSError)


def _status(exc: BaseException) -> int | None:
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def _reason(exc: BaseException) -> str:
    """The API server's own message (its Status), or what kind of failure it was: never a
    stack, never the request (which may hold credentials)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        try:
            status = json.loads(exc.body or "")
            if isinstance(status, dict) and status.get("message"):
                return str(status["message"])[:300]
        except (ValueError, TypeError):
            pass
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    return type(exc).__name__


def _ready(obj: Mapping[str, Any]) -> tuple[str, str]:
    """('True'|'False'|'Unknown', reason) of an InferenceService at the generation it holds."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", -1) < generation:
        return "Unknown", "the controller has not seen this version yet"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            failure = (status.get("modelStatus") or {}).get("lastFailureInfo") or {}
            why = failure.get("message") or cond.get("message") or cond.get("reason") or ""
            return str(cond.get("status", "Unknown")), str(why)
    return "Unknown", "no Ready condition yet"


class ClusterApplier:
    def __init__(self, client_for: ClientFactory = default_client, *, poll: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client_for = client_for
        self.poll = poll
        self.sleep = sleep
        self._clients: dict[str, tuple[Any, Any, Any]] = {}  # context -> (ApiClient, custom, core)

    def _apis(self, s: KServeSettings) -> tuple[Any, Any, Any]:
        if s.context not in self._clients:
            try:
                from kubernetes import client
            except ImportError:
                raise ClusterError(msg.extra_missing()) from None
            try:
                api = self.client_for(s)
            except Exception as exc:  # no kubeconfig, no service account: say so, once per call
                raise ClusterError(msg.cluster_unreachable(type(exc).__name__)) from None
            self._clients[s.context] = (api, client.CustomObjectsApi(api), client.CoreV1Api(api))
        return self._clients[s.context]

    def close(self) -> None:
        for api, _, _ in self._clients.values():
            api.close()
        self._clients.clear()

    # ------------------------------------------------------------------ reading

    def _objects(self, s: KServeSettings, env: str) -> tuple[list[Obj], list[Obj]]:
        """The InferenceServices and ConfigMaps this bot manages for the environment."""
        selector = f"{MANAGED_BY[0]}={MANAGED_BY[1]},{PREFIX}env={env}"
        api, custom, core = self._apis(s)
        try:
            isvcs = custom.list_namespaced_custom_object(GROUP, VERSION, s.namespace, PLURAL, label_selector=selector)
            maps = api.sanitize_for_serialization(core.list_namespaced_config_map(s.namespace, label_selector=selector))
        except _transport_errors() as exc:
            raise ClusterError(msg.cluster_unreachable(_reason(exc))) from None
        return list(isvcs.get("items") or []), list(maps.get("items") or [])

    def live(self, s: KServeSettings, env: str) -> dict[Key, Obj]:
        """What we applied last, object by object, from its annotation."""
        isvcs, maps = self._objects(s, env)
        out: dict[Key, Obj] = {}
        for obj in (*isvcs, *maps):
            note = (obj.get("metadata", {}).get("annotations") or {}).get(APPLIED)
            if note:
                rendered = json.loads(note)
                out[key_of(rendered)] = rendered
        return dict(sorted(out.items()))

    def health(self, s: KServeSettings, env: str) -> dict[str, ModelState]:
        isvcs, _ = self._objects(s, env)
        states: dict[str, ModelState] = {}
        for obj in isvcs:
            meta = obj.get("metadata", {})
            version = (meta.get("annotations") or {}).get(f"{PREFIX}version", "")
            ready, why = _ready(obj)
            state = {"True": "running", "False": "failed"}.get(ready, "pending")
            canary = (obj.get("spec") or {}).get("predictor", {}).get("canaryTrafficPercent")
            if state == "running":
                why = msg.canary(int(canary), version) if isinstance(canary, int) and canary < 100 else ""
            states[meta.get("name", "")] = ModelState(version, state, why)
        return states

    # ------------------------------------------------------------------ writing

    def _apply(self, s: KServeSettings, obj: Obj) -> None:
        """Server-side apply of one object. (Its answer is not read: a creation answers 201,
        which the client's generated code does not decode; the wait reads the object.)"""
        _, custom, core = self._apis(s)
        body = {**obj, "metadata": {**obj["metadata"], "annotations": {**obj["metadata"].get("annotations", {}), APPLIED: json.dumps(obj, sort_keys=True, separators=(",", ":"))}}}
        kind, name = key_of(obj)
        try:
            if kind == ISVC:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, s.namespace, PLURAL, name, body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH
                )
            else:
                core.patch_namespaced_config_map(name, s.namespace, body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH)
        except _transport_errors() as exc:  # the API server's refusal, or no connection
            raise ClusterError(msg.apply_refused(f"{kind} {name}", _reason(exc))) from None

    def _delete(self, s: KServeSettings, key: Key) -> None:
        _, custom, core = self._apis(s)
        kind, name = key
        try:
            if kind == ISVC:
                custom.delete_namespaced_custom_object(GROUP, VERSION, s.namespace, PLURAL, name)
            else:
                core.delete_namespaced_config_map(name, s.namespace)
        except _transport_errors() as exc:
            if _status(exc) == 404:
                return  # already gone
            raise ClusterError(msg.apply_refused(f"the deletion of {kind} {name}", _reason(exc))) from None

    def _wait(self, s: KServeSettings, names: list[str]) -> dict[str, str]:
        """model -> why it is not Ready at the generation it holds; empty when all are."""
        _, custom, _ = self._apis(s)
        deadline = time.monotonic() + s.ready_timeout
        pending = set(names)
        failed: dict[str, str] = {}
        while pending:
            for name in sorted(pending):
                try:
                    obj = custom.get_namespaced_custom_object(GROUP, VERSION, s.namespace, PLURAL, name)
                except _transport_errors() as exc:
                    failed[name] = msg.cluster_unreachable(_reason(exc))
                    pending.discard(name)
                    continue
                ready, why = _ready(obj)
                if ready == "True":
                    pending.discard(name)
                elif ready == "False":
                    failed[name] = why or "Ready is False"
                    pending.discard(name)
            if pending and time.monotonic() >= deadline:
                failed.update({name: msg.ready_timeout(s.ready_timeout) for name in pending})
                break
            if pending:
                self.sleep(self.poll)
        return failed

    def apply(self, s: KServeSettings, desired: Mapping[Key, Obj], previous: Mapping[Key, Obj]) -> dict[str, str]:
        """Make the namespace hold `desired`; model (or '*') -> reason when the release was
        rolled back, empty when it holds."""
        changed = [k for k in desired if previous.get(k) != desired[k]]
        applied: list[Key] = []
        failed: dict[str, str] = {}
        try:
            for key in (k for k in changed if k[0] == ISVC):
                self._apply(s, desired[key])
                applied.append(key)
            failed = self._wait(s, [k[1] for k in applied])
            if not failed:
                for key in (k for k in changed if k[0] == CONFIGMAP):
                    self._apply(s, desired[key])
                    applied.append(key)
        except ClusterError as exc:
            failed["*"] = str(exc)
        if failed:
            failed.update(self._roll_back(s, applied, previous))
            return failed
        for key in previous:
            if key not in desired:
                try:
                    self._delete(s, key)
                except ClusterError as exc:
                    failed[key[1]] = str(exc)  # the release holds; a leftover object is reported
        return failed

    def _roll_back(self, s: KServeSettings, applied: list[Key], previous: Mapping[Key, Obj]) -> dict[str, str]:
        """Put back what we changed and wait until the previous models answer again; what
        could not be put back is reported beside the failure."""
        problems: dict[str, str] = {}
        restored: list[str] = []
        for key in reversed(applied):
            try:
                if key in previous:
                    self._apply(s, previous[key])
                    if key[0] == ISVC:
                        restored.append(key[1])
                else:
                    self._delete(s, key)
            except ClusterError as exc:
                problems[f"rollback {key[1]}"] = str(exc)
        for name, why in self._wait(s, restored).items():
            problems[f"rollback {name}"] = why
        return problems
