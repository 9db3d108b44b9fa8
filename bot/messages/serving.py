"""What a person (or the operator's log) reads about model serving (bot.serving): MLServer
runs the deployed models of each environment under `aimodel serve`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SERVE_EXTRA = "pip install 'aimodel-gitops[serve]'"


def off_not_installed() -> str:
    return f"Serving is off: the models are deployed as files only. Install the serve extra ({SERVE_EXTRA}) and run `aimodel serve`."


def off_disabled() -> str:
    return "Serving is off (AIMODEL_SERVING=off): the models are deployed as files only."


def off_not_running() -> str:
    return "Serving is off: `aimodel serve` is not running; it starts MLServer for each environment that has models."


def not_loaded(model: str, version: str, reason: str) -> str:
    return f"MLServer could not load {model} {version}: {reason}"


def not_ready(model: str, version: str, seconds: float) -> str:
    return f"{model} {version} did not become ready in MLServer within {seconds:g} s"


def server_not_started(env: str, seconds: float) -> str:
    return f"no model server answers for {env} after {seconds:g} s (see {env}.log in AIMODEL_HOME/serving)"


# --------------------------------------------------------------------------- the supervisor's log lines


def server_started(env: str, url: str, pid: int, seconds: float) -> str:
    return f"model server for {env} answers at {url} (MLServer pid {pid}, {seconds:.1f} s to start)"


def server_exited(env: str, code: int | None) -> str:
    return f"model server for {env} exited (code {code}); starting it again"


def server_failed_start(env: str, log: str) -> str:
    return f"model server for {env} did not start; its output is in {log}"


def server_stopped(env: str) -> str:
    return f"model server for {env} stopped: the environment has no models"


def server_moving(env: str, was: int, port: int) -> str:
    return f"model server for {env} moves from port {was} to port {port}, as configured: started again there"


def startup_load_failed(env: str, model: str, reason: str) -> str:
    return f"model server for {env}: {model} did not load: {reason}"


def already_supervised(home: str) -> str:
    return f"another `aimodel serve` already runs the model servers of {home}"


def unload_failed(env: str, model: str, version: str, reason: str) -> str:
    return f"model server for {env}: unloading {model} {version} failed: {reason}"


# --------------------------------------------------------------------------- list / status


def serving_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per deployed model version and environment: does it answer, and where."""
    from bot.messages import table

    if not rows:
        return "Serving: no deployed model is served by MLServer (ONNX models are)."
    body = [[r["env"], r["name"], r["version"], "yes" if r["answers"] else "no", r["endpoint"] or "-"] for r in rows]
    return "Serving (MLServer):\n" + table(["ENV", "MODEL", "VERSION", "ANSWERS", "ENDPOINT"], body)


def serving_line(state: Mapping[str, Any]) -> str:
    """`status NAME`: after an environment's version, whether it answers and where."""
    if state.get("answers"):
        return f"answers at {state['endpoint']}"
    return "does not answer"


def servers_status(summary: Sequence[Mapping[str, Any]]) -> str:
    """`status`: one line per environment that has served models."""
    if not summary:
        return "serving: no environment has a model MLServer serves"
    lines = []
    for s in summary:
        if s["url"]:
            lines.append(f"serving {s['env']}: MLServer at {s['url']}, {s['answering']} model version(s) answering")
        else:
            lines.append(f"serving {s['env']}: no model server answers")
    return "\n".join(lines)


def detail_lines(per_env: Mapping[str, Mapping[str, Any]]) -> str:
    """`status NAME`: where each deployed version answers."""
    lines = ["  serving"]
    for env, state in sorted(per_env.items()):
        if "answers" in state:
            lines.append(f"    {env:<8} {state['version']} {serving_line(state)}")
    return "\n".join(lines)
