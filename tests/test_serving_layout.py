"""The serving parts that need no running server: MLServer's repository files, the repository
MLServer reads, the server's environment, the settings, and what `list` says when serving is off."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, ServingSettings, load_settings
from bot.serving import layout
from bot.serving.supervisor import mlserver_env
from tests.conftest import ModelFiles, Run

ROOT = Path(__file__).resolve().parent.parent


def _deployed(tmp_path: Path, name: str = "model.onnx") -> Path:
    folder = tmp_path / "deploy" / "dev" / "fraud" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"onnx bytes")
    (folder / "metadata.json").write_text("{}")
    return folder


def test_a_served_version_gets_model_settings_naming_the_runtime_and_the_deployed_file(tmp_path: Path) -> None:
    folder = _deployed(tmp_path)
    repo = layout.repository(tmp_path, "dev")
    assert layout.write_settings(repo, "fraud", "1.0.0", "onnx", folder) is True
    written = json.loads((repo / "fraud" / "1.0.0" / "model-settings.json").read_text())
    assert written == {
        "name": "fraud",
        "implementation": "bot.serving.onnx_runtime.OnnxRuntime",
        "parameters": {"version": "1.0.0", "uri": str(folder.resolve() / "model.onnx")},
    }
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx"]  # the deployed folder is untouched
    assert layout.served_versions(repo) == {"fraud": ["1.0.0"]}
    layout.remove_settings(repo, "fraud", "1.0.0")
    assert layout.served_versions(repo) == {} and not (repo / "fraud").exists()


def test_a_format_without_a_runtime_is_deployed_as_files_only(tmp_path: Path) -> None:
    folder = _deployed(tmp_path, "model.safetensors")
    repo = layout.repository(tmp_path, "dev")
    assert layout.write_settings(repo, "fraud", "1.0.0", "safetensors", folder) is False
    assert not repo.exists()


def test_an_older_deployed_name_is_found_when_it_is_the_one_onnx_file(tmp_path: Path) -> None:
    folder = _deployed(tmp_path, "fraud-v1.onnx")
    assert layout.model_file(folder, "onnx") == folder / "fraud-v1.onnx"
    (folder / "other.onnx").write_bytes(b"x")
    assert layout.model_file(folder, "onnx") is None  # two candidates: none is guessed


def test_mlserver_reads_only_the_bots_settings_files_and_runtimes(tmp_path: Path) -> None:
    pytest.importorskip("mlserver", reason="needs the serve extra")
    from bot.serving.repository import VersionFolders

    repo = layout.repository(tmp_path, "dev")
    layout.write_settings(repo, "fraud", "1.0.0", "onnx", _deployed(tmp_path))
    nested = repo / "fraud" / "1.0.0" / "deeper" / "x"
    nested.mkdir(parents=True)
    (nested / "model-settings.json").write_text(json.dumps({"name": "evil", "implementation": "os.system"}))
    other = repo / "spam" / "1.0.0"
    other.mkdir(parents=True)
    (other / "model-settings.json").write_text(json.dumps({"name": "spam", "implementation": "evil.Runtime"}))

    found = asyncio.run(VersionFolders(str(repo)).list())
    assert [(s.name, s.version, s.implementation_) for s in found] == [("fraud", "1.0.0", layout.ONNX_RUNTIME)]
    assert [s.name for s in asyncio.run(VersionFolders(str(repo)).find("fraud"))] == ["fraud"]


def test_the_model_server_gets_no_secret_and_binds_where_it_is_told() -> None:
    inherited = {"PATH": "/bin", "SLACK_BOT_TOKEN": "xoxb-1", "GITHUB_TOKEN": "ghp-1", "PROMETHEUS_MULTIPROC_DIR": "/m",
                 "MLSERVER_MODEL_IMPLEMENTATION": "evil.Runtime", "PYTHONPATH": "/src"}
    env = mlserver_env(inherited, ServingSettings(), 9001)
    assert {"SLACK_BOT_TOKEN", "GITHUB_TOKEN", "PROMETHEUS_MULTIPROC_DIR", "MLSERVER_MODEL_IMPLEMENTATION"}.isdisjoint(env)
    assert (env["PATH"], env["PYTHONPATH"]) == ("/bin", "/src")
    assert (env["MLSERVER_HOST"], env["MLSERVER_HTTP_PORT"], env["MLSERVER_PARALLEL_WORKERS"]) == ("127.0.0.1", "9001", "0")
    assert env["MLSERVER_LOAD_MODELS_AT_STARTUP"] == "false"  # one model failing at start-up would stop the server


def test_serving_settings_are_read_once_and_checked(tmp_path: Path) -> None:
    home = {"AIMODEL_HOME": str(tmp_path)}
    assert load_settings(home).serving == ServingSettings()
    read = load_settings({**home, "AIMODEL_SERVING_PORTS": "dev=9001, prod=9003", "AIMODEL_SERVING_TIMEOUT": "5"}).serving
    assert (read.port_for("dev"), read.port_for("prod"), read.port_for("test"), read.timeout) == (9001, 9003, 0, 5)
    assert load_settings({**home, "AIMODEL_SERVING": "off"}).serving.enabled is False
    for value, line in (
        ("dev", "AIMODEL_SERVING_PORTS: 'dev' is not ENV=PORT"),
        ("dev=70000", "AIMODEL_SERVING_PORTS: 'dev=70000' is not ENV=PORT with PORT in 1..65535"),
        ("dev=9001,prod=9001", "AIMODEL_SERVING_PORTS: two environments are given the same port"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings({**home, "AIMODEL_SERVING_PORTS": value})
        assert str(caught.value) == line


def test_without_the_extra_a_deploy_writes_the_files_and_list_says_serving_is_off(
    aimodel: Run, home: Path, created: str, model_files: ModelFiles
) -> None:
    number = str(aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"])
    # the CLI as it runs where MLServer is not installed (the import system finds no mlserver)
    code = "import sys; sys.modules['mlserver'] = None; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "AIMODEL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = {}
    for argv in (["pr", "merge", number, "--as", "dev"], ["list"], ["status", "fraud"]):
        run = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120, cwd=home.parent)
        assert run.returncode == 0, run.stderr
        out[argv[0]] = run.stdout
    assert (home / "deploy" / "dev" / "fraud" / "1.0.0" / "metadata.json").is_file()
    assert not (home / "serving").exists()  # nothing for MLServer was written
    off = "Serving is off: the models are deployed as files only. Install the serve extra (pip install 'aimodel-gitops[serve]')"
    assert off in out["list"] and off in out["status"]


def test_serving_switched_off_says_so(aimodel: Run, home: Path, created: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_SERVING", "off")
    number = str(aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"])
    aimodel("pr", "merge", number, "--as", "dev")
    assert not (home / "serving").exists()
    assert "Serving is off (AIMODEL_SERVING=off)" in aimodel("list").out
    assert "Serving is off (AIMODEL_SERVING=off)" in aimodel("status").out


def test_a_server_bound_to_every_address_is_reached_on_loopback() -> None:
    from bot.serving.servers import ServerRecord

    assert [ServerRecord("dev", 1, host, 9001, 0.0).url for host in ("127.0.0.1", "0.0.0.0", "::", "fd00::5")] == [
        "http://127.0.0.1:9001", "http://127.0.0.1:9001", "http://[::1]:9001", "http://[fd00::5]:9001",
    ]


def test_the_supervisor_starts_what_has_models_and_stops_what_has_none() -> None:
    from bot.serving.supervisor import Plan, plan

    # dev has models and no server; test's server died; prod's runs with nothing left to serve
    assert plan({"dev", "test"}, {"test": False, "prod": True}, {}, 100.0) == Plan(exited=("test",), stop=("prod",), start=("dev", "test"))
    # a server that did not start waits for its retry time; a live one is left alone
    assert plan({"dev", "test"}, {"test": True}, {"dev": 105.0}, 100.0) == Plan()
    assert plan({"dev"}, {}, {"dev": 105.0}, 105.0) == Plan(start=("dev",))


CONFIG = """\
apiVersion: aimodel.dev/v1
kind: RepositoryConfig
environments:
  dev: {port: 9001}
  test: {}
  prod: {port: 9003}
"""


def test_each_environment_may_name_its_model_servers_port_once() -> None:
    import jsonschema
    import yaml

    from bot.init_repo import TEMPLATE
    from bot.manifests import ManifestError, parse_config
    from bot.serving import ports

    schema = json.loads((TEMPLATE / "schemas" / "config.schema.json").read_text())
    config = parse_config(CONFIG)
    jsonschema.validate(yaml.safe_load(CONFIG), schema)
    assert ports.configured(config) == {"dev": 9001, "prod": 9003}
    for bad, line in (
        ("prod: {port: 9001}", ".aimodel/config.yaml:6: environments.prod.port: environment dev already uses port 9001; each environment needs its own"),
        ("prod: {port: 70000}", ".aimodel/config.yaml:6: environments.prod.port: 70000 is not a port (1..65535)"),
        ("prod: {port: '9003'}", ".aimodel/config.yaml:6: environments.prod.port: expected a whole number, got str"),
        ("prod: {port: 9003, target: kserve}",
         ".aimodel/config.yaml:6: environments.prod.port: a port applies only with target: local (KServe serves the models in the cluster)"),
    ):
        text = CONFIG.replace("prod: {port: 9003}", bad)
        with pytest.raises(ManifestError) as caught:
            parse_config(text)
        assert str(caught.value) == line
    for bad_port in (0, 70000, "9003"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(CONFIG.replace("9003", repr(bad_port) if isinstance(bad_port, str) else str(bad_port))), schema)


def test_the_operators_ports_win_over_the_configs_and_a_server_moves_when_its_port_changes(tmp_path: Path) -> None:
    from bot.serving import ports
    from bot.serving.supervisor import Plan, plan

    override = load_settings({"AIMODEL_HOME": str(tmp_path), "AIMODEL_SERVING_PORTS": "dev=8001"}).serving
    configured = {"dev": 9001, "prod": 9003}
    assert [ports.port_for(env, override, configured) for env in ("dev", "prod", "test")] == [8001, 9003, 0]
    # dev listens elsewhere than its port now says: stopped and started again in the same beat
    assert plan({"dev", "prod"}, {"dev": True, "prod": True}, {}, 100.0, frozenset({"dev"})) == Plan(stop=("dev",), start=("dev",))
    # a server whose environment has no models left is only stopped, whatever its port
    assert plan(set(), {"dev": True}, {}, 100.0, frozenset({"dev"})) == Plan(stop=("dev",))


def set_port(home: Path, env: str, port: int) -> None:
    """A DevOps engineer's config change, on the default branch and fetched (as the worker does)."""
    from bot.app import Context

    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        ctx.workspace.fetch()
        base = ctx.workspace.head_of()
        text = ctx.workspace.read_file(base, ".aimodel/config.yaml")
        assert text is not None
        head, envs = text.split(b"\nenvironments:\n", 1)
        lines = [line for line in envs.split(b"\n") if not line.startswith(b"    port: ")]  # the environment's earlier port
        at = lines.index(f"  {env}:".encode())
        lines.insert(at + 1, f"    port: {port}".encode())
        commit = ctx.workspace.commit_change(base, {".aimodel/config.yaml": head + b"\nenvironments:\n" + b"\n".join(lines)}, f"{env} serves on {port}")
        ctx.workspace.push(commit, "main", expect=base)
        ctx.workspace.fetch()


def test_the_supervisor_reads_the_port_from_the_default_branch_as_last_fetched(home: Path) -> None:
    from bot.serving import ports

    now = [0.0]
    read = ports.ConfigPorts(ports.clone_of(load_settings({"AIMODEL_HOME": str(home)})), "main", clock=lambda: now[0])
    assert read() == {}  # the template names no port
    set_port(home, "dev", 9101)
    assert read() == {}  # looked at less than REREAD seconds ago
    now[0] += ports.REREAD
    assert read() == {"dev": 9101}
    set_port(home, "dev", 9102)
    now[0] += ports.REREAD
    assert read() == {"dev": 9102}
    set_port(home, "dev", 9103)
    assert read(fresh=True) == {"dev": 9103}  # a server about to start looks now
