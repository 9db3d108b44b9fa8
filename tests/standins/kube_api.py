"""A stateful stand-in for the few Kubernetes API calls the KServe target makes, over real
HTTP on 127.0.0.1, for the official `kubernetes` client (`Configuration(host=standin.url)`).

Served, as the API server serves them:

* ``PATCH`` an InferenceService (``/apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices/<name>``)
  or a ConfigMap (``/api/v1/namespaces/<ns>/configmaps/<name>``): server-side apply only
  (``Content-Type: application/apply-patch+yaml`` and a ``fieldManager``; anything else is 415
  or 400), creating the object or replacing the fields of its one manager;
* ``GET`` one object or a list with an equality ``labelSelector``; ``DELETE`` one object;
* errors as a ``Status`` object (``NotFound`` 404, ``BadRequest`` 400, ``Invalid`` 422).

It plays KServe's controller for InferenceServices: ``metadata.generation`` goes up when the
spec changes, and the controller "reconciles" an object on the second GET after a change:
from then on its status is ``Ready: True`` with a URL at that generation, or ``Ready: False``
with a reason when the test marked it failed (:meth:`KubeStandIn.fail`), or nothing new when
it is held (:meth:`KubeStandIn.hold`). Every request is recorded (:attr:`KubeStandIn.calls`).

Example::

    with KubeStandIn() as kube:
        cfg = kubernetes.client.Configuration(host=kube.url)
        api = kubernetes.client.ApiClient(cfg)
        ...
        assert kube.get("InferenceService", "models", "iris")["spec"]["predictor"]
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

APPLY = "application/apply-patch+yaml"
_ROUTES = (
    (re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?$"), "InferenceService", "serving.kserve.io/v1beta1"),
    (re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$"), "ConfigMap", "v1"),
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


class KubeStandIn:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, ns, name) -> object
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self._failing: dict[str, tuple[str, str | None]] = {}  # name -> (reason, storageUri or None)
        self._held: dict[str, str | None] = {}  # name -> storageUri or None
        self._unreconciled: dict[tuple[str, str, str], int] = {}  # GETs left before the controller acts
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ test controls

    def fail(self, name: str, reason: str, *, storage_uri: str | None = None) -> None:
        """The InferenceService `name` fails to become Ready (only while its predictor loads
        `storage_uri`, when given), as KServe reports a model that cannot load."""
        with self._lock:
            self._failing[name] = (reason, storage_uri)

    def hold(self, name: str, *, storage_uri: str | None = None) -> None:
        """The controller never reconciles `name` (while it loads `storage_uri`, when given):
        it is neither Ready nor failed."""
        with self._lock:
            self._held[name] = storage_uri

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def names(self, kind: str, namespace: str) -> list[str]:
        with self._lock:
            return sorted(n for k, ns, n in self.objects if k == kind and ns == namespace)

    # ------------------------------------------------------------------ server

    def start(self) -> KubeStandIn:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "KubeStandIn is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ the API

    def handle(self, method: str, path: str, query: dict[str, str], content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(Call(method, path, query, content_type))
            for pattern, kind, api_version in _ROUTES:
                match = pattern.match(path)
                if match:
                    namespace, name = match.group(1), match.group(2)
                    return self._route(method, kind, api_version, namespace, name, query, content_type, body)
            return _status(404, "NotFound", f"the server could not find the requested resource ({path})")

    def _route(self, method: str, kind: str, api_version: str, ns: str, name: str | None, query: dict[str, str], content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if name is None:
            if method != "GET":
                return _status(405, "MethodNotAllowed", f"{method} on a list is not served here")
            return 200, self._list(kind, api_version, ns, query.get("labelSelector", ""))
        key = (kind, ns, name)
        if method == "GET":
            if key not in self.objects:
                return _status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            self._reconcile(key)
            return 200, copy.deepcopy(self.objects[key])
        if method == "DELETE":
            if self.objects.pop(key, None) is None:
                return _status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": kind.lower() + "s"}}
        if method == "PATCH":
            return self._apply(key, kind, api_version, query, content_type, body)
        return _status(405, "MethodNotAllowed", f"{method} is not served here")

    def _list(self, kind: str, api_version: str, ns: str, selector: str) -> dict[str, Any]:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        items = [
            copy.deepcopy(obj)
            for (k, n, _), obj in sorted(self.objects.items())
            if k == kind and n == ns and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]
        return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}

    def _apply(self, key: tuple[str, str, str], kind: str, api_version: str, query: dict[str, str], content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if content_type.split(";")[0].strip() != APPLY:
            return _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {APPLY}")
        if not query.get("fieldManager"):
            return _status(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
        try:
            obj = yaml.safe_load(body)
        except yaml.YAMLError:
            return _status(400, "BadRequest", "error decoding YAML")
        if not isinstance(obj, dict) or obj.get("kind") != kind or obj.get("apiVersion") != api_version:
            return _status(400, "BadRequest", f"the object's kind and apiVersion must be {kind} {api_version}")
        meta = obj.get("metadata") or {}
        if meta.get("name") != key[2] or meta.get("namespace", key[1]) != key[1]:
            return _status(400, "BadRequest", "the name or namespace of the object does not match the request")
        old = self.objects.get(key)
        stored = copy.deepcopy(obj)
        stored_meta = stored.setdefault("metadata", {})
        stored_meta["namespace"] = key[1]
        stored_meta["resourceVersion"] = str(next(self._versions))
        stored_meta["managedFields"] = [{"manager": query["fieldManager"], "operation": "Apply"}]
        if old is None:
            stored_meta["uid"] = str(uuid.uuid4())
            stored_meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        else:
            stored_meta["uid"] = old["metadata"]["uid"]
            stored_meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        if kind == "InferenceService":
            generation = old["metadata"]["generation"] if old else 0
            changed = old is None or old.get("spec") != stored.get("spec")
            stored_meta["generation"] = generation + 1 if changed else generation
            stored["status"] = copy.deepcopy(old.get("status", {})) if old else {}
            if changed:
                self._unreconciled[key] = 2
        self.objects[key] = stored
        return (201 if old is None else 200), copy.deepcopy(stored)

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        """KServe's controller, as far as the target can see it: the status of a changed
        InferenceService catches up on the second GET after the change."""
        if key not in self._unreconciled:
            return
        obj = self.objects[key]
        _, ns, name = key
        uri = obj["spec"].get("predictor", {}).get("model", {}).get("storageUri")
        if name in self._held and self._held[name] in (None, uri):
            return
        self._unreconciled[key] -= 1
        if self._unreconciled[key] > 0:
            return
        del self._unreconciled[key]
        failing = self._failing.get(name)
        if failing is not None and failing[1] in (None, uri):
            ready = {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": failing[0]}
            model_status = {"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {"reason": "ModelLoadFailed", "message": failing[0]}}
        else:
            ready = {"type": "Ready", "status": "True"}
            model_status = {"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded"}}
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "url": f"http://{name}.{ns}.example.com",
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "conditions": [ready],
            "modelStatus": model_status,
        }


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


class _Handler(BaseHTTPRequestHandler):
    owner: KubeStandIn
    server_version = "KubeStandIn/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        code, payload = self.owner.handle(method, url.path, query, self.headers.get("Content-Type", ""), body)
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
