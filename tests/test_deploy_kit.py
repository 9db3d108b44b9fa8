"""The deployment kit: the Dockerfile, its entry point and health check, and the Helm chart.

No docker daemon runs where these tests run, so the Dockerfile is read, not built: its stages,
user, installs and copies are checked as text, and the two scripts it copies into the image
(deploy/docker/entrypoint.sh, healthcheck.py) run for real against the real CLI and web process.
The chart is linted and rendered by Helm's own engine (the helm binary, or Helm's Go SDK from
the helm-python-sdk package); where neither is installed those tests skip and say so."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import messages
from bot.config import SECRET_ENV

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "deploy" / "helm" / "aimodel-gitops"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"


# --- the Dockerfile, read as instructions ---------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def arg_defaults(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in stage if keyword == "ARG" and "=" in rest)


def test_dockerfile_builds_in_one_stage_and_runs_as_an_unprivileged_user_in_another() -> None:
    built = stages(DOCKERFILE.read_text())
    assert len(built) >= 2, "a builder stage and a runtime stage"
    final = built[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    for name, value in arg_defaults(final).items():
        user = user.replace("${" + name + "}", value).replace("$" + name, value)
    assert user not in ("root", "0", ""), f"the image runs as {users[-1]!r} = {user!r}"
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    # The wheels come from the builder stage; the runtime stage installs them without an index.
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "from=builder" in runs and "--no-index" in runs


def test_the_runtime_stage_installs_no_build_tools_and_no_torch() -> None:
    final = stages(DOCKERFILE.read_text())[-1]
    words = {word.strip('"\'[],') for keyword, rest in final if keyword == "RUN" for word in rest.split()}
    for tool in ("gcc", "g++", "build-essential", "make", "cmake", "python3-dev", "torch"):
        assert tool not in words, f"the runtime stage installs {tool}"
    assert not any("torch" in word for word in words)


def test_no_secret_is_baked_into_the_image() -> None:
    names = {*SECRET_ENV, "AIMODEL_SIGNING_KEY", "GITHUB_APP_ID", "REDIS_URL"}
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword in ("ENV", "ARG"):
            for part in shlex.split(rest):
                name = part.split("=", 1)[0]
                assert name not in names, f"{keyword} {name} would bake a secret or a deployment's setting in"
                assert not any(w in name.upper() for w in ("TOKEN", "SECRET", "PASSWORD")), name
        if keyword in ("COPY", "ADD"):
            assert ".aimodel" not in rest and ".pem" not in rest and ".env" not in rest, rest
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for must in (".git", ".aimodel", "*.pem", "*.key", ".env"):
        assert must in ignored, f".dockerignore lets {must} into the build context"


def test_every_file_the_dockerfile_copies_exists_and_is_not_ignored() -> None:
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [shlex.split(rest) for keyword, rest in instructions(DOCKERFILE.read_text()) if keyword == "COPY"]
    assert copies
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not any(source == i or source.startswith(i + "/") for i in ignored), f"{source} is in .dockerignore"


def test_the_healthcheck_runs_the_script_the_image_copies() -> None:
    text = instructions(DOCKERFILE.read_text())
    copied = {shlex.split(rest)[-1] for keyword, rest in text if keyword == "COPY"}
    checks = [rest for keyword, rest in text if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split("CMD", 1)[1])
    assert command[0] == "python" and command[1] in copied
    entry = json.loads(next(rest for keyword, rest in text if keyword == "ENTRYPOINT"))
    assert entry[-1] in copied


# --- the entry point and health check, run for real ------------------------------------------


def procfile() -> dict[str, str]:
    roles = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        roles[name.strip()] = command.strip()
    return roles


def test_the_image_roles_are_the_procfile_commands() -> None:
    text = ENTRYPOINT.read_text()
    for role, command in procfile().items():
        assert f'{role}) ' in text and f"exec {command} " in text, f"{role} does not run `{command}`"


@pytest.fixture
def launcher(tmp_path: Path) -> dict[str, str]:
    """PATH with an `aimodel` that runs this checkout's CLI (the image has it installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "aimodel"
    script.write_text(f'#!/bin/sh\ncd {shlex.quote(str(ROOT))} && exec {shlex.quote(sys.executable)} -m bot.cli "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:  # a 404 or 503 is an answer, not a failure to connect
        with error:
            text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, None


def healthcheck(role: str, port: int) -> int:
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run([sys.executable, str(HEALTHCHECK), role], env=env, timeout=30).returncode


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_any_other_command_runs_as_given(launcher: dict[str, str]) -> None:
    done = subprocess.run(["sh", str(ENTRYPOINT), "aimodel", "--version"], env=launcher, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("aimodel ")


def test_web_role_answers_healthz_and_the_healthcheck_follows_it(
    home: Path, launcher: dict[str, str], stopper: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = {**launcher, "AIMODEL_HOME": str(home), "PORT": str(port), "HOST": "127.0.0.1"}
    web = subprocess.Popen(["sh", str(ENTRYPOINT), "web"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopper.append(web)
    deadline = time.monotonic() + 60
    while True:  # wait until it listens: the proof it started
        try:
            status, body = get(f"http://127.0.0.1:{port}/healthz")
            break
        except OSError:
            assert web.poll() is None, f"the web role exited {web.returncode}: {web.stderr.read().decode() if web.stderr else ''}"
            assert time.monotonic() < deadline, "the web role did not listen within 60 s"
            time.sleep(0.2)
    assert status == 200 and body["ok"] is True
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert get(f"http://127.0.0.1:{port}{values['probes']['livenessPath']}")[0] == 200
    # the web role runs no worker: not ready until one runs beside it, then ready
    readiness = f"http://127.0.0.1:{port}{values['probes']['readinessPath']}"
    status, body = get(readiness)
    assert (status, body["ready"], body["worker"]) == (503, False, "never seen")
    worker = subprocess.Popen(["sh", str(ENTRYPOINT), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopper.append(worker)
    while (status := get(readiness)[0]) != 200:
        assert worker.poll() is None, f"the worker role exited {worker.returncode}"
        assert time.monotonic() < deadline + 60, "/readyz did not become ready with a worker running"
        time.sleep(0.2)
    assert healthcheck("web", port) == 0
    web.send_signal(signal.SIGTERM)
    web.wait(timeout=30)
    assert healthcheck("web", port) == 1


def test_worker_role_starts_the_queue_worker(home: Path, launcher: dict[str, str], stopper: list[subprocess.Popen[bytes]]) -> None:
    env = {**launcher, "AIMODEL_HOME": str(home)}
    worker = subprocess.Popen(["sh", str(ENTRYPOINT), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopper.append(worker)
    assert worker.stderr is not None
    line = worker.stderr.readline().decode()  # said once it holds the home's worker lock
    assert line.strip() == messages.worker_ready(str(home)).strip()


def test_healthcheck_tells_the_roles_apart_by_their_command_lines() -> None:
    import runpy

    role_of = runpy.run_path(str(HEALTHCHECK))["role_of"]
    assert role_of(["/usr/local/bin/python", "/usr/local/bin/aimodel", "serve", "--no-worker"]) == "web"
    assert role_of(["/usr/local/bin/python", "/usr/local/bin/aimodel", "worker"]) == "worker"
    assert role_of(["python", "-m", "bot.cli", "worker"]) == "worker"
    assert role_of(["tini", "--", "/usr/local/bin/aimodel-entrypoint", "web"]) == ""
    assert role_of(["/usr/local/bin/aimodel", "--version"]) == ""


# --- the Helm chart ------------------------------------------------------------------------------


def test_chart_files_without_helm() -> None:
    """What can be read without Helm; the rendered manifests are checked below, with Helm."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == CHART.name
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["probes"]["livenessPath"] == "/healthz"
    assert values["probes"]["readinessPath"] == "/readyz"
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    for role in ("web", "worker"):
        assert {"requests", "limits"} <= values[role]["resources"].keys()
    templates = "".join(p.read_text() for p in (CHART / "templates").iterdir())
    for needle in (".Values.probes.livenessPath", ".Values.probes.readinessPath", "secretKeyRef", "persistentVolumeClaim"):
        assert needle in templates


class Helm:
    """`helm lint` and `helm template` through the helm binary or Helm's Go SDK (helm-python-sdk)."""

    def __init__(self) -> None:
        self.binary = shutil.which("helm")
        if not self.binary:
            try:
                import helm_python  # noqa: F401
            except ImportError as error:
                pytest.skip(f"helm not installed (no helm binary; helm-python-sdk: {error})")
            except OSError as error:  # the package is there but its Helm library does not load here
                pytest.skip(f"helm not installed (no helm binary; helm-python-sdk cannot load Helm: {error})")

    def lint(self) -> list[str]:
        """Warnings and errors (strict); info lines such as 'icon is recommended' are left out."""
        if self.binary:
            done = subprocess.run([self.binary, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
            return [] if done.returncode == 0 else [done.stdout + done.stderr]
        import helm_python

        report = helm_python.lint(str(CHART), strict=True)
        return [*report["errors"], *(m["error"] for m in report["messages"] if m["severity"] >= 2)]

    def template(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        if self.binary:
            done = subprocess.run([self.binary, "template", "demo", str(CHART), "--namespace", "ns", "-f", "-"],
                                  input=yaml.safe_dump(values), capture_output=True, text=True, timeout=120, check=True)
            texts = [done.stdout]
        else:
            import helm_python

            with helm_python.Chart.load(str(CHART)) as chart:
                rendered = chart.render(values, name="demo", namespace="ns")
            texts = [text for path, text in rendered.items() if path.endswith((".yaml", ".yml"))]
        return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm()


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_chart_lints_clean(helm: Helm) -> None:
    assert helm.lint() == []


def test_embedded_default_runs_web_and_worker_in_one_pod_on_the_home_volume(helm: Helm) -> None:
    docs = helm.template({"init": {"people": ["alice=application-developer"]}})
    deployments = by_kind(docs, "Deployment")
    assert list(deployments) == ["demo-aimodel-gitops-web"], "no Redis: one pod, never two workers on one home"
    web = deployments["demo-aimodel-gitops-web"]
    assert web["spec"]["replicas"] == 1 and web["spec"]["strategy"]["type"] == "Recreate"
    pod = web["spec"]["template"]["spec"]
    assert {name: c["args"] for name, c in containers(web).items()} == {"web": ["web"], "worker": ["worker"]}
    assert pod["initContainers"][0]["args"] == ["aimodel", "init", "--person", "alice=application-developer"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == set(by_kind(docs, "PersistentVolumeClaim")) == {"demo-aimodel-gitops-home"}
    for c in [*pod["containers"], *pod["initContainers"]]:
        assert env_of(c)["AIMODEL_HOME"] == "/var/lib/aimodel"
        assert {"mountPath": "/var/lib/aimodel", "name": "home"} in c["volumeMounts"]
        assert "REDIS_URL" not in env_of(c)
    service = by_kind(docs, "Service")["demo-aimodel-gitops"]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_with_redis_web_and_workers_scale_apart(helm: Helm) -> None:
    docs = helm.template({"redis": {"enabled": True}, "web": {"replicas": 3}, "worker": {"replicas": 2}})
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"demo-aimodel-gitops-web", "demo-aimodel-gitops-worker", "demo-aimodel-gitops-redis"}
    web, worker = deployments["demo-aimodel-gitops-web"], deployments["demo-aimodel-gitops-worker"]
    assert (web["spec"]["replicas"], worker["spec"]["replicas"]) == (3, 2)
    assert list(containers(web)) == ["web"] and list(containers(worker)) == ["worker"]
    assert "demo-aimodel-gitops-redis" in by_kind(docs, "Service")
    for d in (web, worker):
        assert env_of(next(iter(containers(d).values())))["REDIS_URL"] == "redis://demo-aimodel-gitops-redis:6379/0"
    external = helm.template({"externalRedis": {"existingSecret": "redis-conn"}})
    worker = by_kind(external, "Deployment")["demo-aimodel-gitops-worker"]
    assert env_of(containers(worker)["worker"])["REDIS_URL"] == {"secretKeyRef": {"name": "redis-conn", "key": "REDIS_URL"}}


def test_secrets_come_only_from_existing_secrets(helm: Helm) -> None:
    docs = helm.template({
        "redis": {"enabled": True},
        "config": {"repo": "acme/models", "githubAppId": "12345", "extraEnvFrom": [{"secretRef": {"name": "aws-read"}}]},
        "secrets": {"slack": {"existingSecret": "slack"}, "github": {"existingSecret": "github", "tokenKey": "GITHUB_TOKEN"},
                    "signingKey": {"existingSecret": "signing"}},
    })
    assert not by_kind(docs, "Secret"), "the chart never writes a Secret"
    expected = {"SLACK_SIGNING_SECRET": "slack", "SLACK_BOT_TOKEN": "slack", "GITHUB_WEBHOOK_SECRET": "github",
                "GITHUB_TOKEN": "github", "GITHUB_APP_PRIVATE_KEY": "github"}
    for deployment in (d for name, d in by_kind(docs, "Deployment").items() if not name.endswith("-redis")):
        pod = deployment["spec"]["template"]["spec"]
        for c in pod["containers"]:
            env = env_of(c)
            for name, secret in expected.items():
                assert env[name] == {"secretKeyRef": {"name": secret, "key": name}}, f"{c['name']}: {name}"
            assert env["AIMODEL_REPO"] == "acme/models" and env["GITHUB_APP_ID"] == "12345"
            assert c["envFrom"] == [{"secretRef": {"name": "aws-read"}}]
            key_path = Path(env["AIMODEL_SIGNING_KEY"])
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(key_path.parent))
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            assert volume["secret"]["secretName"] == "signing" and mount["readOnly"] is True
            assert volume["secret"]["items"] == [{"key": key_path.name, "path": key_path.name}]
    rendered = yaml.safe_dump_all(docs)
    assert "password" not in rendered.lower()


def test_probes_resources_and_an_unprivileged_pod(helm: Helm) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for docs in (helm.template({}), helm.template({"redis": {"enabled": True}})):
        for name, deployment in by_kind(docs, "Deployment").items():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
            for c in [*pod["containers"], *pod.get("initContainers", [])]:
                assert {"requests", "limits"} <= c["resources"].keys(), f"{name}/{c['name']} has no requests and limits"
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            for c in pod["containers"]:
                if c["name"] == "web":
                    assert c["livenessProbe"]["httpGet"]["path"] == values["probes"]["livenessPath"] == "/healthz"
                    assert c["readinessProbe"]["httpGet"]["path"] == values["probes"]["readinessPath"]
                    assert c["livenessProbe"]["httpGet"]["port"] == "http" == c["ports"][0]["name"]
    other = by_kind(helm.template({"probes": {"readinessPath": "/healthz"}}), "Deployment")["demo-aimodel-gitops-web"]
    assert containers(other)["web"]["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_pods_serve_their_own_metrics_and_prometheus_is_told_where(helm: Helm) -> None:
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
    deployments = by_kind(helm.template({"redis": {"enabled": True}}), "Deployment")
    worker, web = deployments["demo-aimodel-gitops-worker"], deployments["demo-aimodel-gitops-web"]
    port = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["workerPort"]
    container = containers(worker)["worker"]
    assert env_of(container)["AIMODEL_WORKER_METRICS_PORT"] == str(port)
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert worker["spec"]["template"]["metadata"]["annotations"] == {**scrape, "prometheus.io/port": str(port)}
    assert web["spec"]["template"]["metadata"]["annotations"] == {**scrape, "prometheus.io/port": "3000"}
    # the setting the chart sets is the one the worker reads
    from bot.config import load_settings

    assert load_settings({"AIMODEL_HOME": "/tmp/x", **{k: str(v) for k, v in env_of(container).items() if isinstance(v, str)}}).worker.metrics_port == port

    # the embedded default: the worker beside the web container counts into the web's /metrics
    pod = by_kind(helm.template({}), "Deployment")["demo-aimodel-gitops-web"]
    assert "AIMODEL_WORKER_METRICS_PORT" not in env_of(containers(pod)["worker"]) and "ports" not in containers(pod)["worker"]
    assert pod["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "3000"

    off = by_kind(helm.template({"redis": {"enabled": True}, "metrics": {"enabled": False}}), "Deployment")
    for name in ("demo-aimodel-gitops-worker", "demo-aimodel-gitops-web"):
        assert "annotations" not in off[name]["spec"]["template"]["metadata"]
    assert "AIMODEL_WORKER_METRICS_PORT" not in env_of(containers(off["demo-aimodel-gitops-worker"])["worker"])
    assert "ports" not in containers(off["demo-aimodel-gitops-worker"])["worker"]


def test_grafana_dashboard_asks_only_for_metrics_the_bot_exports() -> None:
    """Every series the sample dashboard queries is one bot/metrics.py defines."""
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "aimodel-gitops.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    source = (ROOT / "bot" / "metrics.py").read_text()
    names = {re.sub(r"_(total|bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"aimodel_[a-z_]+", e)}
    assert len(names) >= 8
    assert {n for n in names if f'"{n}"' not in source} == set()
