"""Stage two of manifest parsing: raw YAML values -> validated, typed manifests.

Kinds: AIModel, Application, Dataset (one per file) and the repository config
(`.aimodel/config.yaml`). Every error names the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.sla import Sla, SlaSyntaxError, sla_from_mapping
from bot.yamlload import Path_, RawDocument, YamlError, load_yaml

API_VERSION = "aimodel.dev/v2"
# Data sets and the repository config kept their shape from v1: both versions read alike.
# Models and applications changed (versions; per-environment pins): `aimodel migrate` upgrades them.
OLD_API_VERSIONS = ("aimodel.dev/v1",)
KINDS = ("AIModel", "Application", "Dataset")
UPGRADED_KINDS = ("AIModel", "Application")  # their v1 shape is not read: see OLD_API_VERSIONS
ROLES = ("data-scientist", "application-developer", "data-engineer", "devops-engineer")
VERBS = ("create", "update", "deploy", "destroy", "list", "scan", "validate", "sign", "verify")
LAYOUTS = ("file", "folder")
FORMATS = ("onnx", "pickle", "pytorch", "joblib", "numpy", "safetensors", "keras", "gguf", "other")

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STORE_URI = re.compile(r"store:sha256/([0-9a-f]{64})")  # as bot.store spells it
STORE_SCHEME = "store:"
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class ManifestError(ValueError):
    """A manifest is wrong: file, line, field and what is wrong."""

    def __init__(self, file: str, line: int | None, field_: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field_
        self.message = message
        where = f"{file}:{line}" if line else file
        prefix = f"{field_}: " if field_ else ""
        super().__init__(f"{where}: {prefix}{message}")

    @classmethod
    def from_yaml(cls, exc: YamlError) -> ManifestError:
        return cls(exc.file, exc.line, "", exc.message)


def dns1123_problem(name: str) -> str | None:
    if not name:
        return "must not be empty"
    if len(name) > 63:
        return f"{name!r} is {len(name)} characters; at most 63"
    if not _DNS1123.match(name):
        return (
            f"{name!r} is not a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def version_problem(version: str) -> str | None:
    if not _VERSION.match(version):
        return f"{version!r} is not a version: 1-64 of letters, digits, '.', '+', '_', '-'"
    return None


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Artifact:
    uri: str
    sha256: str
    format: str
    size: int
    source: str = ""  # where the bytes came from (provenance) when uri names the store
    layout: str = "file"  # "folder": uri/sha256 name the stored file list (bot.checks.folders)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its bytes never change once merged."""

    version: str
    artifact: Artifact
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AIModel:
    """A model and its versions. `version`, `artifact` and `metrics` are the newest version's;
    `previous` holds the older ones, oldest first. Which version runs where is the
    applications' business (Application.environments)."""

    name: str
    version: str
    owner: str
    application: str
    dataset: str
    artifact: Artifact
    sla: Sla = field(default_factory=Sla)
    metrics: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    path: str = ""
    kind: str = "AIModel"
    previous: tuple[ModelVersion, ...] = ()

    @property
    def versions(self) -> tuple[ModelVersion, ...]:
        return (*self.previous, ModelVersion(self.version, self.artifact, self.metrics))

    def get(self, version: str) -> ModelVersion | None:
        for v in self.versions:
            if v.version == version:
                return v
        return None


@dataclass(frozen=True)
class Application:
    name: str
    version: str
    owner: str
    models: tuple[str, ...]  # the models it uses
    # per environment, the exact model versions its release there pins: a deploy changes one
    # environment's pins, so dev can run 1.2.0 while prod keeps 1.1.0
    environments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    image: str = ""
    # per environment, model -> the percent of traffic its pinned (new) version takes while the
    # previous one serves the rest (KServe's canaryTrafficPercent); `promote` removes the entry
    canary: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    description: str = ""
    path: str = ""
    kind: str = "Application"


@dataclass(frozen=True)
class Dataset:
    name: str
    uri: str
    label_column: str
    sha256: str = ""
    format: str = "csv"
    source: str = ""  # where the bytes came from (provenance) when uri names the store
    owner: str = ""
    description: str = ""
    path: str = ""
    kind: str = "Dataset"


Manifest = AIModel | Application | Dataset


@dataclass(frozen=True)
class Person:
    name: str
    roles: tuple[str, ...]
    slack: tuple[str, ...] = ()
    github: str = ""
    email: str = ""


@dataclass(frozen=True)
class Environment:
    name: str
    approvals: int = 0
    approvers: tuple[str, ...] = ()  # roles whose approval counts
    accept_declared_metrics: bool = False
    mergers: tuple[str, ...] | None = None  # roles that may merge; None: the roles that may deploy
    allow_skip: bool = False  # a version may enter without having run in the environment before
    target: str = "local"  # local | kserve: where a merged release runs
    kserve: KServeSettings | None = None  # set when target is kserve
    port: int | None = None  # local target: the port its model server listens on (None: a free one)


@dataclass(frozen=True)
class PolicyRules:
    """Who reviews and merges a change to the rules themselves (`policy:` in the config)."""

    owners: tuple[str, ...] = ("devops-engineer",)  # roles whose approval a policy change needs
    approvals: int = 1  # never fewer than one: nobody changes the rules alone
    mergers: tuple[str, ...] = ("devops-engineer",)


# --------------------------------------------------------------------------- sources (where bytes may come from)

DEFAULT_PROTOCOLS = ("file", "s3", "gs", "https")
# fsspec protocols that wrap, cache or alias another file system: a URI through them escapes
# the checks made on the inner one, so no config can allow them.
NEVER_PROTOCOLS = (
    "local", "simplecache", "filecache", "blockcache", "cached", "reference", "dir", "memory",
    "zip", "tar", "libarchive", "jlab", "jupyter", "data",
)


@dataclass(frozen=True)
class Sources:
    """Where artifacts and data sets may be read from: URI prefixes (each names a folder),
    the fsspec protocols accepted, and hosts allowed although they resolve to private addresses."""

    artifacts: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    private_hosts: tuple[str, ...] = ()


def _sources(r: _Reader) -> Sources:
    s = ("sources",)
    r.mapping(s, required=False)
    r.unknown_keys(s, ("artifacts", "datasets", "protocols", "private_hosts"))
    protocols = r.strings((*s, "protocols")) if r.get((*s, "protocols")) is not None else DEFAULT_PROTOCOLS
    for i, proto in enumerate(protocols):
        if proto in NEVER_PROTOCOLS or not re.fullmatch(r"[a-z][a-z0-9+.-]*", proto):
            raise r.fail((*s, "protocols", i), f"{proto!r} cannot be allowed: wrapping, caching and local-alias protocols are refused")
    for key in ("artifacts", "datasets"):
        for i, prefix in enumerate(r.strings((*s, key))):
            if "::" in prefix or not (prefix.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*://", prefix)):
                raise r.fail((*s, key, i), f"{prefix!r} is not a URI prefix (s3://bucket/folder/, https://host/path/) or an absolute folder")
    return Sources(r.strings((*s, "artifacts")), r.strings((*s, "datasets")), protocols, tuple(h.lower() for h in r.strings((*s, "private_hosts"))))


# --------------------------------------------------------------------------- repository config types


SIGN_SERIALIZATIONS = ("auto", "files", "shards")


def _sign_serialization(r: _Reader) -> str:
    path = ("signing", "serialization")
    value = r.string(path, required=False, default="auto")
    if value not in SIGN_SERIALIZATIONS:
        raise r.fail(path, f"expected one of {', '.join(SIGN_SERIALIZATIONS)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RepoConfig:
    people: Mapping[str, Person]
    permissions: Mapping[str, tuple[str, ...]]
    environments: Mapping[str, Environment]
    auto_merge: bool = False
    scan_allow: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = ()
    # how signatures hash: "files" keeps every bundle verifiable by model_signing's command
    # line, which hashes by file only; "shards"/"auto" spread one large file over the cores
    sign_serialization: str = "auto"
    prod_channel: str = ""
    path: str = ".aimodel/config.yaml"
    policy: PolicyRules = field(default_factory=PolicyRules)
    sources: Sources = field(default_factory=Sources)
    promotion: tuple[str, ...] = ()  # the order versions move through; empty: the environments' order

    def promotion_order(self) -> tuple[str, ...]:
        return self.promotion or tuple(self.environments)

    def comes_after(self, env: str) -> str | None:
        """The environment a version must have run in before it enters `env` (None: none)."""
        order = self.promotion_order()
        if env not in order or order.index(env) == 0:
            return None
        e = self.environments.get(env)
        if e is not None and e.allow_skip:
            return None
        return order[order.index(env) - 1]

    def person_for_slack(self, slack_id: str, email: str = "") -> Person | None:
        for person in self.people.values():
            if slack_id in person.slack or (email and person.email.lower() == email.lower()):
                return person
        return None

    def person_for_github(self, login: str) -> Person | None:
        for person in self.people.values():
            if person.github and person.github.lower() == login.lower():
                return person
        return None


# --------------------------------------------------------------------------- stage two


class _Reader:
    """Typed access into a RawDocument; every failure raises ManifestError with the line."""

    def __init__(self, doc: RawDocument) -> None:
        self.doc = doc

    def fail(self, path: Path_, message: str) -> ManifestError:
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        return ManifestError(self.doc.file, self.doc.line_of(path), dotted.replace(".[", "["), message)

    def get(self, path: Path_) -> object:
        value: object = self.doc.data
        for part in path:
            if isinstance(part, str) and isinstance(value, dict):
                value = value.get(part)
            elif isinstance(part, int) and isinstance(value, list) and part < len(value):
                value = value[part]
            else:
                return None
        return value

    def mapping(self, path: Path_, *, required: bool = True) -> dict[str, object]:
        value = self.get(path)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            what = "missing" if value is None else f"expected a mapping, got {_kind(value)}"
            raise self.fail(path, what)
        return value

    def string(self, path: Path_, *, required: bool = True, default: str = "") -> str:
        value = self.get(path)
        if value is None:
            if required:
                raise self.fail(path, "missing")
            return default
        if isinstance(value, (bool, dict, list)):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        if not isinstance(value, str):
            # Unquoted numbers (version 1.10, an all-digit digest): keep the text as written.
            return self.doc.texts.get(path, str(value))
        return value

    def integer(self, path: Path_, *, default: int | None = None) -> int:
        value = self.get(path)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {_kind(value)}")
        return value

    def boolean(self, path: Path_, *, default: bool) -> bool:
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    def strings(self, path: Path_) -> tuple[str, ...]:
        value = self.get(path)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, "expected a list of strings")
        return tuple(value)

    def name(self, path: Path_) -> str:
        name = self.string(path)
        problem = dns1123_problem(name)
        if problem:
            raise self.fail(path, problem)
        return name

    def version(self, path: Path_) -> str:
        version = self.string(path)
        problem = version_problem(version)
        if problem:
            raise self.fail(path, problem)
        return version

    def unknown_keys(self, path: Path_, allowed: tuple[str, ...]) -> None:
        for key in self.mapping(path, required=False):
            if key not in allowed:
                raise self.fail((*path, key), f"unknown field; expected one of: {', '.join(allowed)}")


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), f"{type(value).__name__}"
    )


def _header(r: _Reader, kinds: tuple[str, ...]) -> str:
    if not isinstance(r.doc.data, dict):
        raise r.fail((), f"expected a mapping with apiVersion, kind, metadata, spec; got {_kind(r.doc.data)}")
    r.unknown_keys((), ("apiVersion", "kind", "metadata", "spec"))
    api = r.string(("apiVersion",))
    kind = r.string(("kind",))
    if kind not in kinds:
        raise r.fail(("kind",), f"{kind!r} is not one of {', '.join(kinds)}")
    if api in OLD_API_VERSIONS and kind in UPGRADED_KINDS:
        raise r.fail(("apiVersion",), f"{api} manifests are read no more; `aimodel migrate` opens a pull request that upgrades them to {API_VERSION}")
    if api != API_VERSION and api not in OLD_API_VERSIONS:
        raise r.fail(("apiVersion",), f"{api!r} is not supported; use {API_VERSION}")
    r.unknown_keys(("metadata",), ("name", "owner", "description", "labels"))
    return kind


def _sha256(r: _Reader, path: Path_, *, required: bool) -> str:
    digest = r.string(path, required=required)
    if digest.startswith("sha256:"):
        digest = digest[len("sha256:") :]
    if digest and not _SHA256.match(digest):
        raise r.fail(path, "expected 64 lower-case hex digits (a sha256 digest)")
    return digest


def _stored(r: _Reader, path: Path_, uri: str, sha256: str) -> None:
    """A store URI names its bytes by digest: it must be well formed and agree with sha256."""
    if not uri.startswith(STORE_SCHEME):
        return
    match = _STORE_URI.fullmatch(uri)
    if match is None:
        raise r.fail(path, "a store URI is store:sha256/<64 lower-case hex digits>")
    if match.group(1) != sha256:
        raise r.fail(path, "names other bytes than the sha256 beside it")


def _artifact(r: _Reader, art: Path_) -> Artifact:
    r.mapping(art)
    r.unknown_keys(art, ("uri", "sha256", "format", "size", "source", "layout"))
    layout = r.string((*art, "layout"), required=False, default="file")
    if layout not in LAYOUTS:
        raise r.fail((*art, "layout"), f"{layout!r} is not one of {', '.join(LAYOUTS)}")
    fmt = r.string((*art, "format"), required=False, default="other")
    if fmt not in FORMATS:
        raise r.fail((*art, "format"), f"{fmt!r} is not one of {', '.join(FORMATS)}")
    size = r.integer((*art, "size"), default=0)
    if size < 0:
        raise r.fail((*art, "size"), "must not be negative")
    artifact = Artifact(
        uri=r.string((*art, "uri")), sha256=_sha256(r, (*art, "sha256"), required=True), format=fmt, size=size,
        source=r.string((*art, "source"), required=False), layout=layout,
    )
    _stored(r, (*art, "uri"), artifact.uri, artifact.sha256)
    return artifact


def _metrics(r: _Reader, path: Path_) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in r.mapping(path, required=False).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise r.fail((*path, key), f"expected a number, got {_kind(value)}")
        metrics[key] = float(value)
    return metrics


def _model(r: _Reader, path: str) -> AIModel:
    spec = ("spec",)
    r.unknown_keys(spec, ("application", "dataset", "sla", "versions"))
    sla_raw = r.mapping((*spec, "sla"), required=False)
    try:
        sla = sla_from_mapping(sla_raw)
    except SlaSyntaxError as exc:
        raise r.fail((*spec, "sla"), str(exc)) from None
    listed = r.get((*spec, "versions"))
    if not isinstance(listed, list) or not listed:
        raise r.fail((*spec, "versions"), "expected a list of at least one version (version, artifact), oldest first")
    versions: list[ModelVersion] = []
    for i in range(len(listed)):
        v = (*spec, "versions", i)
        r.mapping(v)
        r.unknown_keys(v, ("version", "artifact", "metrics"))
        version = r.version((*v, "version"))
        if any(seen.version == version for seen in versions):
            raise r.fail((*v, "version"), f"version {version} is listed twice")
        versions.append(ModelVersion(version, _artifact(r, (*v, "artifact")), _metrics(r, (*v, "metrics"))))
    newest = versions[-1]
    return AIModel(
        name=r.name(("metadata", "name")),
        version=newest.version,
        owner=r.string(("metadata", "owner"), required=False),
        application=r.name((*spec, "application")),
        dataset=r.name((*spec, "dataset")),
        artifact=newest.artifact,
        sla=sla,
        metrics=newest.metrics,
        description=r.string(("metadata", "description"), required=False),
        path=path,
        previous=tuple(versions[:-1]),
    )


def _application(r: _Reader, path: str) -> Application:
    spec = ("spec",)
    r.unknown_keys(spec, ("version", "image", "models", "environments", "canary"))
    models = r.strings((*spec, "models"))
    for i, model in enumerate(models):
        problem = dns1123_problem(model)
        if problem:
            raise r.fail((*spec, "models", i), problem)
    if len(set(models)) != len(models):
        raise r.fail((*spec, "models"), "a model is listed twice")
    environments: dict[str, dict[str, str]] = {}
    for env in r.mapping((*spec, "environments"), required=False):
        e = (*spec, "environments", env)
        problem = dns1123_problem(env)
        if problem:
            raise r.fail(e, problem)
        pins: dict[str, str] = {}
        for model in r.mapping(e):
            if model not in models:
                raise r.fail((*e, model), f"pins model {model!r}, which spec.models does not list")
            pins[model] = r.version((*e, model))
        environments[env] = pins
    canary: dict[str, dict[str, int]] = {}
    for env in r.mapping((*spec, "canary"), required=False):
        c = (*spec, "canary", env)
        for model in r.mapping(c):
            if model not in environments.get(env, {}):
                raise r.fail((*c, model), f"a canary of {model!r} in {env!r}, which spec.environments.{env} does not pin")
            percent = r.integer((*c, model))
            if not 1 <= percent <= 99:
                raise r.fail((*c, model), f"{percent} is not a percent of traffic between 1 and 99")
            canary.setdefault(env, {})[model] = percent
    return Application(
        name=r.name(("metadata", "name")),
        version=r.version((*spec, "version")),
        owner=r.string(("metadata", "owner"), required=False),
        models=models,
        environments=environments,
        canary=canary,
        image=r.string((*spec, "image"), required=False),
        description=r.string(("metadata", "description"), required=False),
        path=path,
    )


def _dataset(r: _Reader, path: str) -> Dataset:
    spec = ("spec",)
    r.unknown_keys(spec, ("uri", "sha256", "labelColumn", "format", "source"))
    fmt = r.string((*spec, "format"), required=False, default="csv")
    if fmt not in ("csv", "parquet"):
        raise r.fail((*spec, "format"), f"{fmt!r} is not one of csv, parquet")
    uri, sha256 = r.string((*spec, "uri")), _sha256(r, (*spec, "sha256"), required=False)
    _stored(r, (*spec, "uri"), uri, sha256)
    return Dataset(
        name=r.name(("metadata", "name")),
        uri=uri,
        label_column=r.string((*spec, "labelColumn")),
        sha256=sha256,
        format=fmt,
        source=r.string((*spec, "source"), required=False),
        owner=r.string(("metadata", "owner"), required=False),
        description=r.string(("metadata", "description"), required=False),
        path=path,
    )


_BUILDERS: dict[str, Callable[[_Reader, str], Manifest]] = {
    "AIModel": _model,
    "Application": _application,
    "Dataset": _dataset,
}

# Where each kind lives in the repository: the file path must agree with metadata.name.
KIND_FOLDERS = {"AIModel": "models", "Application": "apps", "Dataset": "datasets"}


def expected_kind(path: str) -> str | None:
    top = path.split("/", 1)[0]
    for kind, folder in KIND_FOLDERS.items():
        if top == folder:
            return kind
    return None


def name_from_path(path: str) -> str:
    """models/x.yaml -> x; models/x/model.yaml -> x."""
    parts = path.split("/")
    if len(parts) == 3 and parts[2] == "model.yaml":
        return parts[1]
    return parts[-1].rsplit(".", 1)[0]


def parse_manifest(text: str | bytes, path: str) -> Manifest:
    try:
        doc = load_yaml(text, path)
    except YamlError as exc:
        raise ManifestError.from_yaml(exc) from None
    return manifest_from_raw(doc)


def manifest_from_raw(doc: RawDocument) -> Manifest:
    r = _Reader(doc)
    kind = _header(r, KINDS)
    want = expected_kind(doc.file)
    if want and kind != want:
        raise r.fail(("kind",), f"a {kind} does not belong in {KIND_FOLDERS[want]}/; expected {want}")
    manifest = _BUILDERS[kind](r, doc.file)
    if want and name_from_path(doc.file) != manifest.name:
        raise r.fail(("metadata", "name"), f"{manifest.name!r} does not match the file name {doc.file!r}")
    return manifest


# --------------------------------------------------------------------------- repository config

CONFIG_PATH = ".aimodel/config.yaml"


def parse_config(text: str | bytes, path: str = CONFIG_PATH) -> RepoConfig:
    try:
        doc = load_yaml(text, path)
    except YamlError as exc:
        raise ManifestError.from_yaml(exc) from None
    r = _Reader(doc)
    if not isinstance(doc.data, dict):
        raise r.fail((), "expected a mapping")
    r.unknown_keys((), ("apiVersion", "kind", "people", "permissions", "environments", "merge", "scan", "signing", "notifications", "policy", "sources", "promotion"))
    if r.string(("kind",), required=False, default="RepositoryConfig") != "RepositoryConfig":
        raise r.fail(("kind",), "expected RepositoryConfig")
    people: dict[str, Person] = {}
    for name in r.mapping(("people",), required=False):
        p = ("people", name)
        r.mapping(p)
        r.unknown_keys(p, ("roles", "slack", "github", "email"))
        roles = r.strings((*p, "roles"))
        for i, role in enumerate(roles):
            if role not in ROLES:
                raise r.fail((*p, "roles", i), f"{role!r} is not a role; roles: {', '.join(ROLES)}")
        slack = r.strings((*p, "slack"))
        for i, sid in enumerate(slack):
            if not _SLACK_ID.match(sid):
                raise r.fail((*p, "slack", i), f"{sid!r} is not a Slack user id (like U012AB3CD)")
        people[name] = Person(name, roles, slack, r.string((*p, "github"), required=False), r.string((*p, "email"), required=False))
    permissions: dict[str, tuple[str, ...]] = {}
    for verb in r.mapping(("permissions",), required=False):
        if verb not in VERBS:
            raise r.fail(("permissions", verb), f"{verb!r} is not a verb; verbs: {', '.join(VERBS)}")
        roles = r.strings(("permissions", verb))
        for i, role in enumerate(roles):
            if role not in (*ROLES, "*"):
                raise r.fail(("permissions", verb, i), f"{role!r} is not a role; roles: {', '.join(ROLES)} or '*'")
        permissions[verb] = roles
    environments: dict[str, Environment] = {}
    for env in r.mapping(("environments",), required=False):
        problem = dns1123_problem(env)
        if problem:
            raise r.fail(("environments", env), problem)
        e = ("environments", env)
        r.mapping(e, required=False)
        r.unknown_keys(e, ("approvals", "approvers", "accept_declared_metrics", "mergers", "allow_skip", "target", "kserve", "port"))
        approvals = r.integer((*e, "approvals"), default=0)
        if approvals < 0:
            raise r.fail((*e, "approvals"), "must not be negative")
        approvers = r.strings((*e, "approvers"))
        for i, role in enumerate(approvers):
            if role not in ROLES:
                raise r.fail((*e, "approvers", i), f"{role!r} is not a role; roles: {', '.join(ROLES)}")
        if approvals and not approvers:
            raise r.fail((*e, "approvers"), "an environment that needs approvals must name the approver roles")
        target, kserve = _target(r, e, env)
        environments[env] = Environment(
            env, approvals, approvers, r.boolean((*e, "accept_declared_metrics"), default=False), _mergers(r, (*e, "mergers")),
            r.boolean((*e, "allow_skip"), default=False), target, kserve, _port(r, (*e, "port"), target, environments),
        )
    _kserve_apart(r, environments)
    promotion = r.strings(("promotion",))
    for i, env in enumerate(promotion):
        if environments and env not in environments:
            raise r.fail(("promotion", i), f"{env!r} is not one of the environments: {', '.join(environments)}")
    if len(set(promotion)) != len(promotion):
        raise r.fail(("promotion",), "an environment is listed twice")
    return RepoConfig(
        people=people,
        permissions=permissions,
        environments=environments,
        auto_merge=r.boolean(("merge", "auto_merge"), default=False),
        scan_allow=r.strings(("scan", "allow")),
        trusted_keys=r.strings(("signing", "trusted_keys")),
        sign_serialization=_sign_serialization(r),
        prod_channel=r.string(("notifications", "prod_channel"), required=False),
        path=path,
        policy=_policy_rules(r),
        sources=_sources(r),
        promotion=promotion,
    )


def _port(r: _Reader, path: Path_, target: str, earlier: Mapping[str, Environment]) -> int | None:
    """`environments.<env>.port`: where that environment's model server listens (bot.serving)."""
    if r.get(path) is None:
        return None
    if target != "local":
        raise r.fail(path, "a port applies only with target: local (KServe serves the models in the cluster)")
    port = r.integer(path)
    if not 1 <= port <= 65535:
        raise r.fail(path, f"{port} is not a port (1..65535)")
    for other in earlier.values():
        if other.port == port:
            raise r.fail(path, f"environment {other.name} already uses port {port}; each environment needs its own")
    return port


# --------------------------------------------------------------------------- config: policy rules
# Who approves and merges changes to the rules, and who merges into each environment.


def _roles(r: _Reader, path: Path_, *, star: bool) -> tuple[str, ...]:
    roles = r.strings(path)
    allowed = (*ROLES, "*") if star else ROLES
    for i, role in enumerate(roles):
        if role not in allowed:
            raise r.fail((*path, i), f"{role!r} is not a role; roles: {', '.join(allowed)}")
    return roles


def _mergers(r: _Reader, path: Path_) -> tuple[str, ...] | None:
    if r.get(path) is None:
        return None
    mergers = _roles(r, path, star=True)
    if not mergers:
        raise r.fail(path, "name the roles that may merge (leave the field out for the roles that may deploy)")
    return mergers


def _policy_rules(r: _Reader) -> PolicyRules:
    p: Path_ = ("policy",)
    r.mapping(p, required=False)
    r.unknown_keys(p, ("owners", "approvals", "mergers"))
    default = PolicyRules()
    owners = _roles(r, (*p, "owners"), star=False) if r.get((*p, "owners")) is not None else default.owners
    if not owners:
        raise r.fail((*p, "owners"), "a policy change needs approvers: name at least one role")
    approvals = r.integer((*p, "approvals"), default=default.approvals)
    if approvals < 1:
        raise r.fail((*p, "approvals"), "a policy change needs at least 1 approval; nobody changes the rules alone")
    mergers = _mergers(r, (*p, "mergers")) or default.mergers
    return PolicyRules(owners, approvals, mergers)


# --------------------------------------------------------------------------- config: deploy target
# `environments.<env>.target: local|kserve` and, for kserve, how the release reaches the cluster.

TARGETS = ("local", "kserve")
KSERVE_MODES = ("gitops", "apply")
# A deploy commit writes only under its path: never over manifests, policy or schemas.
_KSERVE_RESERVED = ("models/", "apps/", "datasets/", ".aimodel/", "schemas/", ".git/", ".github/")
_QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


@dataclass(frozen=True)
class KServeSettings:
    mode: str = "gitops"  # gitops: commit the YAML for Argo CD/Flux; apply: server-side apply
    namespace: str = ""
    path: str = ""  # folder in the manifest repository, ending in "/"
    branch: str = ""  # gitops: the branch the engine syncs; "" is the default branch
    runtime: str = ""  # a ServingRuntime name; "" lets KServe pick one for ONNX
    requests: tuple[tuple[str, str], ...] = ()  # resources.requests: (name, quantity), as written
    limits: tuple[tuple[str, str], ...] = ()
    min_replicas: int | None = None
    max_replicas: int | None = None
    storage_uri: str = ""  # where the cluster reads the artifact store; "" is the store's own URL
    context: str = ""  # kubeconfig context; "" is the current one, or in-cluster
    ready_timeout: int = 300  # apply: seconds to wait for Ready before rolling back


def _target(r: _Reader, e: Path_, env: str) -> tuple[str, KServeSettings | None]:
    target = r.string((*e, "target"), required=False, default="local")
    if target not in TARGETS:
        raise r.fail((*e, "target"), f"expected one of {', '.join(TARGETS)}, got {target!r}")
    k: Path_ = (*e, "kserve")
    if target != "kserve":
        if r.get(k) is not None:
            raise r.fail(k, "kserve settings apply only with target: kserve")
        return target, None
    r.mapping(k, required=False)
    r.unknown_keys(k, ("mode", "namespace", "path", "branch", "runtime", "resources", "min_replicas", "max_replicas", "storage_uri", "context", "ready_timeout"))
    mode = r.string((*k, "mode"), required=False, default="gitops")
    if mode not in KSERVE_MODES:
        raise r.fail((*k, "mode"), f"expected one of {', '.join(KSERVE_MODES)}, got {mode!r}")
    namespace = r.string((*k, "namespace"), required=False, default=env)
    if problem := dns1123_problem(namespace):
        raise r.fail((*k, "namespace"), problem)
    path = r.string((*k, "path"), required=False, default=f"deploy/{env}/").strip("/") + "/"
    parts = path.rstrip("/").split("/")
    if path == "/" or path.startswith(_KSERVE_RESERVED) or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise r.fail((*k, "path"), f"{path!r} is not a folder of its own in the repository (like deploy/{env}/)")
    branch = r.string((*k, "branch"), required=False)
    if branch and (not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or ".." in branch or branch.startswith(("-", "/")) or branch.endswith(("/", ".lock"))):
        raise r.fail((*k, "branch"), f"{branch!r} is not a branch name")
    r.mapping((*k, "resources"), required=False)
    r.unknown_keys((*k, "resources"), ("requests", "limits"))
    resources: dict[str, tuple[tuple[str, str], ...]] = {}
    for kind in ("requests", "limits"):
        pairs = []
        for name in r.mapping((*k, "resources", kind), required=False):
            quantity = r.string((*k, "resources", kind, name))
            if not _QUANTITY.match(quantity):
                raise r.fail((*k, "resources", kind, name), f"{quantity!r} is not a Kubernetes quantity (like 500m, 2Gi)")
            pairs.append((name, quantity))
        resources[kind] = tuple(pairs)
    replicas = [None if r.get((*k, key)) is None else r.integer((*k, key)) for key in ("min_replicas", "max_replicas")]
    for key, value in zip(("min_replicas", "max_replicas"), replicas, strict=True):
        if value is not None and value < 0:
            raise r.fail((*k, key), "must not be negative")
    if replicas[0] is not None and replicas[1] and replicas[0] > replicas[1]:
        raise r.fail((*k, "min_replicas"), "must not be more than max_replicas")
    timeout = r.integer((*k, "ready_timeout"), default=300)
    if timeout < 1:
        raise r.fail((*k, "ready_timeout"), "must be at least 1 second")
    return target, KServeSettings(
        mode, namespace, path, branch, r.string((*k, "runtime"), required=False),
        resources["requests"], resources["limits"], replicas[0], replicas[1], r.string((*k, "storage_uri"), required=False).rstrip("/"),
        r.string((*k, "context"), required=False), timeout,
    )


def _kserve_apart(r: _Reader, environments: Mapping[str, Environment]) -> None:
    """Two environments never share a namespace of one cluster (their InferenceServices are
    named after the models) nor a deploy folder of one branch (each commit replaces it)."""
    seen: dict[tuple[str, ...], str] = {}
    for name, env in environments.items():
        k = env.kserve
        if k is None:
            continue
        for key, field_ in (((("ns", k.context, k.namespace)), "namespace"), (("path", k.branch, k.path), "path")):
            other = seen.setdefault(key, name)
            if other != name:
                raise r.fail(("environments", name, "kserve", field_), f"environment {other} already uses {key[2]!r}; each environment needs its own")


# --------------------------------------------------------------------------- dump


def _meta(m: Manifest) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": m.name}
    if m.owner:
        meta["owner"] = m.owner
    if m.description:
        meta["description"] = m.description
    return meta


def _artifact_doc(a: Artifact) -> dict[str, Any]:
    doc: dict[str, Any] = {"uri": a.uri, "sha256": a.sha256, "format": a.format, "size": a.size}
    if a.source:
        doc["source"] = a.source
    if a.layout != "file":  # a file's manifest reads as it always did
        doc["layout"] = a.layout
    return doc


def to_document(m: Manifest) -> dict[str, Any]:
    spec: dict[str, Any]
    if isinstance(m, AIModel):
        spec = {"application": m.application, "dataset": m.dataset}
        if m.sla:
            spec["sla"] = m.sla.as_mapping()
        versions = []
        for v in m.versions:
            doc: dict[str, Any] = {"version": v.version, "artifact": _artifact_doc(v.artifact)}
            if v.metrics:
                doc["metrics"] = dict(v.metrics)
            versions.append(doc)
        spec["versions"] = versions
    elif isinstance(m, Application):
        spec = {"version": m.version}
        if m.image:
            spec["image"] = m.image
        spec["models"] = list(m.models)
        if m.environments:
            spec["environments"] = {env: dict(sorted(pins.items())) for env, pins in m.environments.items()}
        if m.canary:
            spec["canary"] = {env: dict(sorted(c.items())) for env, c in m.canary.items() if c}
    else:
        spec = {"uri": m.uri, "labelColumn": m.label_column, "format": m.format}
        if m.sha256:
            spec["sha256"] = m.sha256
        if m.source:
            spec["source"] = m.source
    return {"apiVersion": API_VERSION, "kind": m.kind, "metadata": _meta(m), "spec": spec}


def dump_manifest(m: Manifest) -> str:
    return yaml.safe_dump(to_document(m), sort_keys=False, default_flow_style=False, allow_unicode=True)


def manifest_path(kind: str, name: str) -> str:
    if kind == "AIModel":
        return f"models/{name}/model.yaml"
    return f"{KIND_FOLDERS[kind]}/{name}.yaml"
