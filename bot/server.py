"""The web process: POST /slack/events, POST /github/webhook, /api/v1/..., /healthz, /readyz, /metrics.

Served by gunicorn (threads), never by a development server. Settings are read and
checked once in the master before any worker starts, so a missing secret stops the
start-up, not a request. Each worker builds its own Context after the fork.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request

from bot import logs, metrics
from bot.config import Settings, require_server_secrets

log = logging.getLogger("aimodel.server")


def create_app(settings: Settings, ctx: Any = None) -> Flask:
    from bot.app import build_context

    app = Flask("aimodel")
    metrics.in_process()  # under `serve` the samples go to the shared directory instead
    app.config["AIMODEL_SETTINGS"] = settings
    context = ctx if ctx is not None else build_context(settings)
    app.extensions["aimodel"] = context

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        request_id = (request.headers.get("X-Request-Id") or uuid.uuid4().hex)[:64]
        g.log_fields = logs.bind(request_id=request_id, delivery=request.headers.get("X-GitHub-Delivery", "")[:64])

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        token = g.pop("log_fields", None)
        if token is not None:
            with contextlib.suppress(ValueError):  # set in another context: nothing of ours to undo
                logs.reset(token)

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.http(route, response.status_code, time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"ok": True, "forge": context.forge.kind, "target": context.target.kind, "slack": bool(settings.slack), "github": bool(settings.github)})

    @app.get("/readyz")
    def readyz() -> Response:
        from bot.health import probe, readiness

        ready, body = readiness(probe(context, time.time()))
        response = jsonify(body)
        response.status_code = 200 if ready else 503
        return response

    @app.get("/metrics")
    def metrics_page() -> Response:
        from bot.state import StateUnavailable

        def queue() -> Any:
            try:
                return context.jobs.queue_health()
            except StateUnavailable:
                return None

        body, content_type = metrics.render(queue, time.time)
        return Response(body, content_type=content_type)

    from bot.faces import load

    for install in load(settings).routes:  # each face adds its endpoints (Slack, GitHub)
        install(app, context, settings)
    return app


def _check_state(settings: Settings) -> None:
    """Open the web process's own state once in the master: a damaged file stops the start-up
    with one line (CorruptState) instead of every gunicorn worker failing to boot."""
    from bot.faces import load

    for check in load(settings).state_checks:  # each face opens its own state (GitHub: deliveries)
        check(settings)


def worker_command() -> list[str]:
    """The worker beside the web process runs the installed product: `-P` (PYTHONSAFEPATH)
    keeps the current directory off sys.path, so a folder holding a `bot/` package (or the
    project's own checkout) cannot stand in for it. `python -m bot.cli` would put it first."""
    return [sys.executable, "-P", "-c", "import sys; from bot.entry import main; sys.exit(main())", "worker"]


def gunicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """gunicorn's settings for the web process, by gunicorn's names."""
    return {
        "bind": f"{host}:{port}",
        "worker_class": "gthread",
        "workers": settings.web.workers,
        "threads": settings.web.threads,
        "keepalive": settings.web.keepalive,
        "timeout": 60,
        "graceful_timeout": 10,
        "control_socket_disable": True,  # gunicorn 25.1+: no shared ~/.gunicorn/gunicorn.ctl between servers
        "accesslog": settings.web.access_log or None,
    }


def serve(settings: Settings, *, port: int | None = None, with_worker: bool = True, host: str | None = None) -> int:
    from gunicorn.app.base import BaseApplication

    require_server_secrets(settings)
    _check_state(settings)
    if not (settings.home / "repo.git").exists() and not settings.github:
        from bot import messages
        from bot.app import NotInitialized

        raise NotInitialized(messages.not_initialized(str(settings.home)))
    bind_port = settings.port if port is None else port
    bind_host = host or settings.web.host
    logs.setup()  # JSON lines on stderr unless it is a terminal; gunicorn's workers inherit it
    metrics.prepare(settings)  # before any process starts: they all inherit its directory
    worker_proc: subprocess.Popen[bytes] | None = None
    if with_worker and not settings.redis_url:
        worker_proc = subprocess.Popen(worker_command(), env={**os.environ, "AIMODEL_HOME": str(settings.home)})

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in gunicorn_options(settings, bind_host, bind_port).items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return create_app(settings)

    try:
        _App().run()
    finally:
        if worker_proc is not None:
            worker_proc.terminate()  # SIGTERM: its running jobs get AIMODEL_STOP_GRACE seconds
            try:
                worker_proc.wait(timeout=settings.worker.stop_grace + 10)
            except subprocess.TimeoutExpired:
                worker_proc.kill()  # the sweep runs what it left
                worker_proc.wait(timeout=10)
    return 0
