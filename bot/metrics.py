"""Prometheus metrics (prometheus_client), summed over every process of one home.

A command runs in a CLI process, its checks in the worker, its webhook in one of several
gunicorn workers: each writes its samples into one directory (prometheus_client's
multiprocess mode, PROMETHEUS_MULTIPROC_DIR) and /metrics adds them up at scrape time.
`aimodel serve` makes that directory (AIMODEL_HOME/metrics unless PROMETHEUS_MULTIPROC_DIR
is set, private to the owner) and empties it at start; other processes of the home record
only while it exists, so a CLI with no server never imports prometheus_client (~50 ms).
Queue depth and the oldest job's age are read from the queue at scrape time.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.jobs import QueueHealth

ENV = "PROMETHEUS_MULTIPROC_DIR"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_lock = threading.Lock()
_made: dict[str, Any] = {}
_dir: Path | None = None  # the shared samples directory this process writes into
_in_process = False  # a web app without `serve` (embedded in a test, a WSGI host): its own samples


def directory(settings: Settings) -> Path:
    return settings.metrics_dir or settings.home / "metrics"


def _use(where: Path) -> None:
    """prometheus_client reads the directory from the environment when it is imported and
    when a value is made: hand it on (a write, as for a child process; Settings read it)."""
    global _dir
    _dir = where
    os.environ.update({ENV: str(where)})


def prepare(settings: Settings) -> Path:
    """`aimodel serve`, before any process is started: a fresh, private samples directory
    that its gunicorn workers and its queue worker inherit through the environment."""
    where = directory(settings)
    if settings.metrics_dir is None and where.is_dir():
        shutil.rmtree(where)  # the last run's samples: counters restart with the server
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    _use(where)
    return where


def join(settings: Settings) -> bool:
    """A worker or a CLI command of the home: record into the server's directory when one serves."""
    if _dir is None:
        where = directory(settings)
        if not where.is_dir():
            return False
        _use(where)
    return True


def in_process() -> None:
    global _in_process
    _in_process = True


def _recording() -> bool:
    return _in_process or _dir is not None


def _metric(kind: str, name: str, help_: str, labels: tuple[str, ...]) -> Any:
    with _lock:
        if name not in _made:
            import prometheus_client as pc

            if kind == "counter":
                _made[name] = pc.Counter(name, help_, labels)
            else:
                _made[name] = pc.Histogram(name, help_, labels, buckets=_BUCKETS)
        return _made[name]


def command(verb: str, face: str, result: str) -> None:
    if _recording():
        _metric("counter", "aimodel_commands", "Commands by verb, face and result", ("verb", "face", "result")).labels(verb, face, result).inc()


def check(name: str, result: str, seconds: float) -> None:
    if _recording():
        _metric("counter", "aimodel_checks", "Finished checks by name and result", ("check", "result")).labels(name, result).inc()
        _metric("histogram", "aimodel_check_seconds", "Time a check took", ("check",)).labels(name).observe(seconds)


def deploy(environment: str, result: str) -> None:
    if _recording():
        _metric("counter", "aimodel_deploys", "Deploys by environment and result", ("environment", "result")).labels(environment, result).inc()


def drift(environment: str) -> None:
    """One distinct drift found (told once); prometheus_client names it aimodel_drift_found_total."""
    if _recording():
        _metric("counter", "aimodel_drift_found", "Distinct drifts found in deployed environments", ("env",)).labels(environment).inc()


def http(route: str, status: int, seconds: float) -> None:
    if _recording():
        _metric("counter", "aimodel_http_requests", "HTTP requests by route and status", ("route", "status")).labels(route, str(status)).inc()
        _metric("histogram", "aimodel_http_request_seconds", "HTTP request latency by route (Slack, webhooks)", ("route",)).labels(route).observe(seconds)


def webhook(event: str, outcome: str) -> None:
    if _recording():
        _metric("counter", "aimodel_github_webhooks", "GitHub webhook deliveries by event and outcome", ("event", "outcome")).labels(event, outcome).inc()


def render(queue: Callable[[], QueueHealth | None], now: Callable[[], float]) -> tuple[bytes, str]:
    """The text exposition of every process's samples plus the queue gauges."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.multiprocess import MultiProcessCollector

    class QueueCollector:
        def collect(self) -> Any:
            health = queue()
            up = GaugeMetricFamily("aimodel_queue_reachable", "1 when the queue's store answers")
            up.add_metric([], 0.0 if health is None else 1.0)
            yield up
            if health is None:
                return
            depth = GaugeMetricFamily("aimodel_queue_depth", "Jobs waiting in the queue")
            depth.add_metric([], float(health.depth))
            yield depth
            oldest = GaugeMetricFamily("aimodel_queue_oldest_job_age_seconds", "Age of the oldest queued check or deploy (0: none)")
            oldest.add_metric([], 0.0 if health.oldest_queued is None else max(0.0, now() - health.oldest_queued))
            yield oldest
            seen = GaugeMetricFamily("aimodel_worker_last_seen_age_seconds", "Seconds since a worker's last heartbeat (-1: never)")
            seen.add_metric([], -1.0 if health.worker_seen is None else max(0.0, now() - health.worker_seen))
            yield seen

    registry = CollectorRegistry()
    if _dir is not None:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        with _lock:
            for made in _made.values():
                registry.register(made)
    registry.register(QueueCollector())
    return generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"


def serve_worker(host: str, port: int, queue: Callable[[], QueueHealth | None], now: Callable[[], float]) -> Any:
    """A worker not beside `serve` (its own pod, on Redis) answers GET /metrics on host:port
    from a daemon thread: its checks and deploys, and the queue gauges. Returns the server."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if _dir is None:
        in_process()  # nobody sums this process's samples: keep them here

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body, content_type = render(queue, now)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="aimodel-worker-metrics", daemon=True).start()
    return server
