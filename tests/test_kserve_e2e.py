"""End to end on the embedded forge with the real CLI: an environment whose config says
`target: kserve` gets its merged release as a commit of KServe objects for Argo CD / Flux,
through the same signature gate as the local target; the other environments stay local."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.app import Context
from bot.config import load_settings
from bot.views import listing_cache
from tests.conftest import ModelFiles, Run
from tests.standins.kube_api import KubeStandIn

ROOT = Path(__file__).resolve().parent.parent
KSERVE_DEV = b"""\
  dev:
    target: kserve
    kserve:
      namespace: models
      storage_uri: s3://models/aimodel
"""


def _git(home: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(home / "repo.git"), *args], check=True, capture_output=True, text=True).stdout


def _send_dev_to_kserve(home: Path, settings: bytes = KSERVE_DEV) -> None:
    """A DevOps engineer's config change, pushed to the default branch."""
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        base = ctx.workspace.head_of()
        text = ctx.workspace.read_file(base, ".aimodel/config.yaml")
        assert text is not None
        head, envs = text.split(b"\nenvironments:\n", 1)  # (people are named too: one is "dev")
        assert envs.startswith(b"  dev:\n")
        text = head + b"\nenvironments:\n" + settings + envs[len(b"  dev:\n") :]
        commit = ctx.workspace.commit_change(base, {".aimodel/config.yaml": text}, "dev runs on KServe")
        ctx.workspace.push(commit, "main", expect=base)


def test_a_merged_deploy_to_a_kserve_environment_is_committed_for_the_gitops_engine(
    aimodel: Run, home: Path, created: str, model_files: ModelFiles
) -> None:
    _send_dev_to_kserve(home)
    aimodel("deploy", "fraud", "--env", "dev", "--as", "dev")
    aimodel("pr", "merge", "2", "--as", "dev")

    files = set(_git(home, "ls-tree", "-r", "--name-only", "main", "deploy/").split())
    assert files == {
        "deploy/dev/configmap-aimodel-payments.yaml", "deploy/dev/inferenceservice-fraud.yaml", "deploy/dev/kustomization.yaml",
    }
    isvc = yaml.safe_load(_git(home, "show", "main:deploy/dev/inferenceservice-fraud.yaml"))
    digest = hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/aimodel/serving/{digest}"
    # the bytes that passed the gate, in the bot's store where that URI points (the cluster's name for it)
    assert (home / "artifacts" / "serving" / digest / "model.onnx").read_bytes() == model_files.onnx.read_bytes()
    assert isvc["metadata"]["labels"]["aimodel.dev/env"] == "dev"
    merged = _git(home, "rev-parse", "main~1").strip()  # the merge; the deploy commit is on top of it
    assert isvc["metadata"]["labels"]["aimodel.dev/commit"] == merged
    assert _git(home, "log", "-1", "--format=%s", "main").strip() == "deploy dev: fraud@1.0.0"
    wiring = yaml.safe_load(_git(home, "show", "main:deploy/dev/configmap-aimodel-payments.yaml"))
    assert wiring["data"]["MODEL_FRAUD_URL"] == "http://fraud.models.svc.cluster.local/v2/models/fraud/infer"
    assert not (home / "deploy" / "dev" / "fraud").exists()  # no model placed on this machine for dev

    shown = aimodel("status", "fraud", "--json").json["environments"]["dev"]
    assert shown["version"] == "1.0.0" and shown["state"] == "pending"
    assert shown["reason"].startswith("committed ") and "kserve.context" in shown["reason"]
    # `list` reads dev through its KServe target as `status` does (a first time from the
    # catalog, then from the listing kept for this commit), not from this machine's folders
    listing_cache(home).unlink()
    assert aimodel("list", "--json").json[0]["environments"]["dev"] == shown
    assert json.loads(listing_cache(home).read_bytes())["kserve"] == ["dev"]
    assert aimodel("list", "--json").json[0]["environments"]["dev"] == shown


def test_a_model_the_gate_refuses_is_not_committed(aimodel: Run, home: Path, created: str, model_files: ModelFiles) -> None:
    stored = home / "artifacts" / "sha256" / hashlib.sha256(model_files.onnx.read_bytes()).hexdigest()
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    _send_dev_to_kserve(home)
    aimodel("deploy", "fraud", "--env", "dev", "--as", "dev")
    merged = aimodel("pr", "merge", "2", "--as", "dev", expect=None)
    assert f"the stored object sha256/{stored.name} does not match its digest" in merged.text
    assert _git(home, "ls-tree", "-r", "--name-only", "main", "deploy/").split() == []


def test_a_canary_takes_its_share_until_promoted(aimodel: Run, home: Path, created: str, model_files: ModelFiles) -> None:
    refused = aimodel("deploy", "fraud", "--env", "dev", "--canary", "10", "--as", "dev", expect=1)
    assert "a canary splits traffic on KServe; dev runs on the local target" in refused.err
    assert "--canary 0 is out of range 1..99" in aimodel("deploy", "fraud", "--env", "dev", "--canary", "0", "--as", "dev", expect=2).err
    _send_dev_to_kserve(home)
    aimodel("deploy", "fraud", "--env", "dev", "--as", "dev")
    aimodel("pr", "merge", "2", "--as", "dev")
    number = str(aimodel("update", "fraud", "--artifact", str(model_files.onnx_v2), "--as", "eve", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "eve")

    number = str(aimodel("deploy", "fraud", "--env", "dev", "--canary", "10", "--as", "dev", "--json").json["pr"])
    assert aimodel("pr", "show", number, "--json").json["title"] == "deploy fraud 1.0.1 to dev (canary 10%)"
    aimodel("pr", "merge", number, "--as", "dev")
    isvc = yaml.safe_load(_git(home, "show", "main:deploy/dev/inferenceservice-fraud.yaml"))
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["metadata"]["annotations"]["aimodel.dev/version"] == "1.0.1"

    number = str(aimodel("promote", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"])
    assert aimodel("pr", "show", number, "--json").json["title"] == "promote fraud 1.0.1 in dev to all traffic"
    aimodel("pr", "merge", number, "--as", "dev")
    isvc = yaml.safe_load(_git(home, "show", "main:deploy/dev/inferenceservice-fraud.yaml"))
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["aimodel.dev/version"] == "1.0.1"
    assert "Nothing to do: fraud has no canary in dev" in aimodel("promote", "fraud", "--env", "dev", "--as", "dev", expect=1).err


def test_list_shows_what_the_cluster_says_about_an_environment_applied_with_the_kubernetes_client(
    aimodel: Run, home: Path, created: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KubeStandIn() as kube:
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": kube.url}}],
            "users": [{"name": "bot", "user": {"token": "t"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "bot"}}],
        }
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))  # read by the kubernetes client itself
        _send_dev_to_kserve(home, KSERVE_DEV.replace(b"    kserve:\n", b"    kserve:\n      mode: apply\n      context: standin\n"))
        aimodel("deploy", "fraud", "--env", "dev", "--as", "dev")
        aimodel("pr", "merge", "2", "--as", "dev")
        assert kube.names("InferenceService", "models") == ["fraud"]
        with _serving_on(home):  # this machine's model servers run: they say nothing about dev
            shown = aimodel("status", "fraud", "--json").json["environments"]["dev"]
            assert shown == {"version": "1.0.0", "state": "running"}  # Ready in the cluster
            listing_cache(home).unlink()
            assert aimodel("list", "--json").json[0]["environments"]["dev"] == shown  # from the catalog
            assert aimodel("list", "--json").json[0]["environments"]["dev"] == shown  # from the listing kept for this commit
            assert "dev  fraud" not in aimodel("list").out  # no row in the MLServer table


@contextlib.contextmanager
def _serving_on(home: Path) -> Iterator[None]:
    """The model servers' supervisor `aimodel serve` runs (with the serve extra installed)."""
    from bot.serving import control, servers

    if not control.installed():
        yield  # without the extra, serving is off and nothing is added to any environment
        return
    proc = subprocess.Popen(control.supervisor_command(), env={**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not servers.supervisor_running(home):
            assert proc.poll() is None and time.monotonic() < deadline, "the supervisor did not start"
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)
