"""The local target applies a release: place (from the real store, digest verified) -> the
model server loads -> each application's release switches -> records -> retirement beyond
the last N releases. Plans are plain data (bot.deploy.plan), as the reconciler hands them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.checks.fetch import ArtifactError, copy_verified
from bot.deploy.drift import Actual, LiveRelease, Placed, differences, drifted
from bot.deploy.plan import AppRelease, EnvPlan, ModelRelease
from bot.deploy.records import ReleaseLog
from bot.deploy.targets.base import DeployRefused, ModelServer, Provenance, deployed_name
from bot.deploy.targets.local import LocalTarget
from bot.store import LocalStore, store_uri


@dataclass
class World:
    root: Path
    store: LocalStore
    log: ReleaseLog
    digests: dict[str, str] = field(default_factory=dict)  # version -> digest

    def version(self, v: str, body: bytes | None = None) -> ModelRelease:
        data = body if body is not None else f"model bytes of fraud {v}\n".encode() * 1000
        digest, size = self.store.put(_Bytes(data))
        self.digests[v] = digest
        return ModelRelease("fraud", v, store_uri(digest), digest, "onnx", size, "payments", source="file:///src/fraud.onnx")

    def plan(self, model: ModelRelease, app_version: str = "2.0.0", commit: str = "c0") -> EnvPlan:
        app = AppRelease("payments", app_version, "registry/payments:2", ((model.name, model.version),))
        return EnvPlan("dev", commit, {model.name: model}, {app.name: app})

    def install(self, release: ModelRelease, folder: Path) -> None:
        """The store half of bot.deploy.reconcile's installer (signatures are its own tests')."""
        try:
            copy_verified(release.uri, release.sha256, folder / deployed_name(release), None, store=self.store)  # type: ignore[arg-type]
        except ArtifactError as exc:
            raise DeployRefused(str(exc)) from None

    def target(self, keep: int = 3, server: ModelServer | None = None) -> LocalTarget:
        return LocalTarget(self.root / "deploy", server, releases=self.log, keep=keep)

    def live(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "deploy" / "dev" / "_releases" / "payments.json").read_text())
        return data

    def versions(self) -> list[str]:
        return sorted(p.name for p in (self.root / "deploy" / "dev" / "fraud").iterdir())


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at:end], min(end, len(self.data))
        return chunk


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, LocalStore(tmp_path / "artifacts"), ReleaseLog(tmp_path / "releases"))


class Server:
    """The serving port as the serving helper implements it, seen from outside: what it was
    asked, and what the environment looked like at that moment."""

    def __init__(self, world: World, refuse: str = "") -> None:
        self.world, self.refuse = world, refuse
        self.events: list[tuple[str, str, object]] = []
        self.serving: set[tuple[str, str]] = set()

    def load(self, env: str, model: str, version: str, folder: Path, fmt: str) -> None:
        live = self.world.live()["models"] if (folder.parents[1] / "_releases" / "payments.json").exists() else None
        self.events.append(("load", version, {"metadata": (folder / "metadata.json").is_file(), "live": live, "fmt": fmt}))
        if version == self.refuse:
            raise DeployRefused(f"{model} {version} did not become ready")
        self.serving.add((model, version))

    def unload(self, env: str, model: str, version: str) -> None:
        self.events.append(("unload", version, self.world.live()["models"]))
        self.serving.discard((model, version))

    def endpoint(self, env: str, model: str, version: str) -> str | None:
        return f"http://127.0.0.1/v2/models/{model}/versions/{version}/infer" if (model, version) in self.serving else None


def test_a_release_places_loads_then_switches_then_retires(world: World) -> None:
    server = Server(world)
    assert isinstance(server, ModelServer)
    target = world.target(keep=1, server=server)
    v1, v2 = world.version("1.0.0"), world.version("1.1.0")
    assert target.apply(world.plan(v1), world.install).ok
    result = target.apply(world.plan(v2), world.install, Provenance(7, "eve", ("dev",)))
    assert result.ok and result.applied == ["fraud@1.1.0"] and result.apps == ["payments"]
    assert result.removed == ["fraud@1.0.0"] and result.records == ["dev-payments-2"]
    # 1.1.0 was loaded complete (metadata written) while payments still ran 1.0.0; 1.0.0 unloaded after the switch.
    assert server.events == [
        ("load", "1.0.0", {"metadata": True, "live": None, "fmt": "onnx"}),
        ("load", "1.1.0", {"metadata": True, "live": {"fraud": "1.0.0"}, "fmt": "onnx"}),
        ("unload", "1.0.0", {"fraud": "1.1.0"}),
    ]
    assert world.live()["release"] == "dev-payments-2" and world.versions() == ["1.1.0"]


def test_the_deployed_folder_names_the_file_and_its_release(world: World) -> None:
    v1 = world.version("1.0.0")
    world.target().apply(world.plan(v1, commit="abc123"), world.install)
    folder = world.root / "deploy" / "dev" / "fraud" / "1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert {k: meta[k] for k in ("name", "version", "file", "sha256", "format", "release", "commit")} == {
        "name": "fraud", "version": "1.0.0", "file": "model.onnx", "sha256": v1.sha256, "format": "onnx",
        "release": "dev-payments-1", "commit": "abc123",
    }
    assert meta["files"] == {"model.onnx": v1.sha256} and meta["source"] == "file:///src/fraud.onnx"
    other = ModelRelease("m", "1", "u", "d", "other", 0, "a", source="https://hub.example/x/pytorch_model.BIN")
    assert deployed_name(other) == "model.bin"
    assert deployed_name(ModelRelease("m", "1", "u", "d", "safetensors", 0, "a")) == "model.safetensors"


def test_keep_the_model_versions_of_the_last_n_releases(world: World) -> None:
    target = world.target(keep=2)
    kept = []
    for v in ("1.0.0", "1.0.1", "1.0.2", "1.0.3"):
        assert target.apply(world.plan(world.version(v)), world.install).ok
        kept.append(world.versions())
    assert kept == [["1.0.0"], ["1.0.0", "1.0.1"], ["1.0.1", "1.0.2"], ["1.0.2", "1.0.3"]]
    assert [r.id for r in world.log.records("dev")] == [f"dev-payments-{n}" for n in (1, 2, 3, 4)]
    # Back to a kept version: switched from what is on disk, nothing copied.
    back = target.apply(world.plan(world.version("1.0.2")), world.install)
    assert back.ok and back.applied == [] and back.apps == ["payments"] and world.live()["models"] == {"fraud": "1.0.2"}


def test_a_refused_version_leaves_the_previous_release_live_and_is_recorded(world: World) -> None:
    target = world.target()
    v1, v2 = world.version("1.0.0"), world.version("1.1.0")
    target.apply(world.plan(v1), world.install)
    stored = world.store.local_path(v2.sha256)
    stored.chmod(0o644)
    stored.write_bytes(b"tampered" + stored.read_bytes()[8:])
    (world.root / "deploy" / "dev" / ".staging" / "dead").mkdir(parents=True)  # what a killed apply left
    (world.root / "deploy" / "dev" / ".staging" / "dead" / "model.onnx.partial").write_bytes(b"half")

    result = target.apply(world.plan(v2, app_version="2.1.0"), world.install, Provenance(8, "eve", ("dev",)))
    assert not result.ok and "does not match its digest" in result.failed["fraud"]
    assert world.live()["models"] == {"fraud": "1.0.0"} and world.live()["version"] == "2.0.0"  # all of it, not half
    assert world.versions() == ["1.0.0"] and not (world.root / "deploy" / "dev" / ".staging").exists()
    failed = world.log.get("dev-payments-2")
    assert failed is not None and failed.result == "failed" and "does not match its digest" in failed.reason
    assert failed.pr == 8 and failed.app_version == "2.1.0" and world.log.live("dev")["payments"].id == "dev-payments-1"
    state = target.status("dev").models["fraud"]
    assert state.state == "failed" and state.version == "1.0.0" and state.reason.startswith("1.1.0: ")
    assert target.last_apply("dev")["failed"] == [f"fraud 1.1.0: {result.failed['fraud']}"]

    stored.write_bytes(b"model bytes of fraud 1.1.0\n" * 1000)  # restored
    again = target.apply(world.plan(v2, app_version="2.1.0"), world.install)
    assert again.ok and world.live()["models"] == {"fraud": "1.1.0"} and target.last_apply("dev")["failed"] == []
    assert [r.result for r in world.log.records("dev")] == ["ok", "failed", "ok"]


def test_a_version_the_server_cannot_load_is_refused_like_bad_bytes(world: World) -> None:
    server = Server(world, refuse="1.1.0")
    target = world.target(server=server)
    target.apply(world.plan(world.version("1.0.0")), world.install)
    result = target.apply(world.plan(world.version("1.1.0")), world.install)
    assert result.failed == {"fraud": "fraud 1.1.0 did not become ready"} and result.kept == {"payments": "fraud refused: fraud 1.1.0 did not become ready"}
    assert world.live()["models"] == {"fraud": "1.0.0"} and ("fraud", "1.0.0") in server.serving


def test_sync_places_again_a_file_changed_by_hand(world: World) -> None:
    target = world.target()
    v1 = world.version("1.0.0")
    target.apply(world.plan(v1), world.install)
    deployed = world.root / "deploy" / "dev" / "fraud" / "1.0.0" / "model.onnx"
    deployed.write_bytes(b"changed by hand")
    assert target.apply(world.plan(v1), world.install).repaired == []  # a deploy trusts what is live
    recorded = {"payments": LiveRelease("2.0.0", {"fraud": "1.0.0"})}
    assert drifted(target.actual("dev", measure=True), recorded) == [
        "dev: fraud 1.0.0: model.onnx was changed (its sha256 differs from what was deployed)"
    ]
    repaired = target.apply(world.plan(v1), world.install, repair=True)
    assert repaired.repaired == ["fraud@1.0.0"] and repaired.records == []  # the same release, its bytes again
    assert hashlib.sha256(deployed.read_bytes()).hexdigest() == v1.sha256
    assert drifted(target.actual("dev", measure=True), recorded) == []


def test_differences_say_what_differs_from_plain_data(world: World) -> None:
    v1 = world.version("1.0.0")
    plan = world.plan(v1)
    placed = {("fraud", "1.0.0"): Placed(v1.sha256, {"model.onnx": v1.sha256}, {"model.onnx": v1.sha256})}
    same = Actual("dev", {"payments": LiveRelease("2.0.0", {"fraud": "1.0.0"})}, placed)
    assert differences(plan, same) == []
    older = Actual("dev", {"payments": LiveRelease("2.0.0", {"fraud": "0.9.0"})}, {})
    assert differences(plan, older) == [
        "dev: payments runs 2.0.0 (fraud 0.9.0), the desired release is 2.0.0 (fraud 1.0.0)",
        "dev: fraud 1.0.0 is not in place",
    ]
    gone = Actual("dev", {"billing": LiveRelease("1", {})}, {("fraud", "1.0.0"): Placed(v1.sha256, {"model.onnx": v1.sha256}, {})})
    assert differences(plan, gone) == [
        "dev: payments 2.0.0 (fraud 1.0.0) is not released",
        "dev: billing is still released, the desired state no longer has it there",
        "dev: fraud 1.0.0: model.onnx was removed",
    ]
    assert drifted(gone, {"payments": LiveRelease("2.0.0", {"fraud": "1.0.0"})}) == ["dev: the release of payments was removed by hand"]


def test_a_release_file_changed_by_hand_is_drift_and_sync_writes_it_again(world: World) -> None:
    target = world.target()
    v1 = world.version("1.0.0")
    target.apply(world.plan(v1), world.install)
    recorded = {r.app: LiveRelease(r.app_version, {m: p.version for m, p in r.models.items()}) for r in world.log.live("dev").values()}
    path = world.root / "deploy" / "dev" / "_releases" / "payments.json"
    path.write_text(json.dumps({**world.live(), "version": "9.9.9"}))
    assert drifted(target.actual("dev", measure=True), recorded) == [
        "dev: the release of payments was changed by hand: it names 9.9.9 (fraud 1.0.0), the last release was 2.0.0 (fraud 1.0.0)"
    ]
    synced = target.apply(world.plan(v1), world.install, repair=True)
    assert synced.apps == ["payments"] and world.live()["version"] == "2.0.0"
    assert drifted(target.actual("dev", measure=True), {"payments": LiveRelease("2.0.0", {"fraud": "1.0.0"})}) == []
