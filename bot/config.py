"""One typed settings object, read once at start-up from the environment.

A face that is switched on (Slack, GitHub) must have all its secrets: a missing one fails
here, when the process starts, not in the middle of a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """The environment is incomplete or contradictory; the message names the variable."""


@dataclass(frozen=True)
class SlackSettings:
    signing_secret: str
    bot_token: str
    api_url: str = ""  # empty: the real Web API
    app_token: str = ""  # Socket Mode


@dataclass(frozen=True)
class GitHubSettings:
    repo: str  # owner/name
    api_url: str = "https://api.github.com"
    token: str = ""
    app_id: str = ""
    app_private_key: str = ""  # PEM text, or a path to a PEM file
    webhook_secret: str = ""


# The faces are plugins named by configuration: the core never imports them (bot/faces.py).
DEFAULT_FACES = ("handlers.faces",)


# Secrets the bot does not use itself but a process may hold: cloud SDKs read them.
SECRET_ENV = (
    "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET",
    "GITHUB_APP_PRIVATE_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
    "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET",
    "GOOGLE_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MLFLOW_TRACKING_PASSWORD",
)
# Files of credentials cloud SDKs read: no person's URI may reach them.
CREDENTIAL_FILE_ENV = ("GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AZURE_CLIENT_CERTIFICATE_PATH")

# AIMODEL_SCAN_PARALLEL forces how the scanner spreads files over cores (benchmarks/SCAN.md).
SCAN_MODES = ("fork", "process", "spawn", "thread", "serial")


@dataclass(frozen=True)
class WebSettings:
    """The web process (gunicorn gthread): HOST, WEB_CONCURRENCY, WEB_THREADS, AIMODEL_ACCESS_LOG,
    WEB_KEEPALIVE."""

    host: str = "127.0.0.1"
    workers: int = 1
    threads: int = 16
    access_log: str = ""  # a file, or "-" for stderr; empty: none
    # seconds an idle client connection stays open (gunicorn's keepalive; 0: closed after each
    # response). Behind a load balancer, set it above the balancer's idle timeout, or the
    # balancer reuses connections the server has already closed (a 502 now and then).
    keepalive: int = 2


@dataclass(frozen=True)
class SweepSettings:
    """The level-triggered sweep (bot.jobs): AIMODEL_SWEEP_INTERVAL, AIMODEL_CHECK_TIMEOUT (seconds)."""

    interval: int = 60  # how often a worker re-derives the work from state
    check_timeout: int = 600  # a run marked as running or queued longer than this is run again


@dataclass(frozen=True)
class ReleaseSettings:
    """Releases on the target (bot.deploy): AIMODEL_KEEP_RELEASES (releases per environment and
    application whose model versions stay on disk), AIMODEL_DRIFT_INTERVAL (seconds between
    drift checks), AIMODEL_DEPLOY_ATTEMPTS and AIMODEL_DEPLOY_RETRY_DELAY (a failed apply is
    tried again this many times in all, the delay doubling from this many seconds)."""

    keep: int = 3
    drift_interval: int = 300
    attempts: int = 4
    retry_delay: int = 30


@dataclass(frozen=True)
class ServingSettings:
    """The model servers `aimodel serve` runs (bot.serving): AIMODEL_SERVING (off: none even with
    the serve extra installed), AIMODEL_SERVING_HOST, AIMODEL_SERVING_PORTS ("dev=9001,prod=9003";
    over the config's `environments.<env>.port`; an environment named in neither gets a free port), AIMODEL_SERVING_TIMEOUT (seconds a model version
    may take to become ready)."""

    enabled: bool = True
    host: str = "127.0.0.1"  # MLServer itself binds 0.0.0.0 unless told
    ports: tuple[tuple[str, int], ...] = ()  # (env, port): hashable, as Settings is
    timeout: int = 60

    def port_for(self, env: str) -> int:
        """The port AIMODEL_SERVING_PORTS gives, or 0: the config's, else a free one (bot.serving.ports)."""
        return dict(self.ports).get(env, 0)


@dataclass(frozen=True)
class WorkerSettings:
    """The queue worker's life (bot.jobs, bot.health): AIMODEL_HEARTBEAT, AIMODEL_READY_WITHIN,
    AIMODEL_STOP_GRACE (seconds), AIMODEL_WORKER_METRICS_PORT."""

    heartbeat: int = 5  # how often a worker writes its heartbeat into the queue's store
    ready_within: int = 30  # /readyz: a worker's heartbeat must be this recent (a few missed beats)
    stop_grace: int = 30  # SIGTERM: running jobs may finish this long; the sweep takes what is cut off
    metrics_port: int = 0  # AIMODEL_WORKER_METRICS_PORT: a worker serves its own /metrics there (a pod on Redis); 0: off


@dataclass(frozen=True)
class Settings:
    home: Path
    repo: str = ""  # empty or a local path: the local forge; owner/name: GitHub
    port: int = 3000
    redis_url: str = ""
    signing_key: Path | None = None
    slack: SlackSettings | None = None
    github: GitHubSettings | None = None
    default_branch: str = "main"
    faces: tuple[str, ...] = DEFAULT_FACES  # modules that register the faces (bot.faces)
    web: WebSettings = WebSettings()
    user: str = ""  # AIMODEL_USER: the CLI's identity when --as is not given
    scan_parallel: str = ""  # empty: chosen per run
    sweep: SweepSettings = SweepSettings()
    releases: ReleaseSettings = ReleaseSettings()
    serving: ServingSettings = ServingSettings()
    worker: WorkerSettings = WorkerSettings()
    log_file: str = ""  # AIMODEL_LOG_FILE: where a CLI command writes its log line (a file, or "-": stderr); empty: nowhere
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR; None: AIMODEL_HOME/metrics (bot.metrics)
    # What the process holds besides the bot's own secrets: masked in logs and replies (redact.py),
    # never readable through a person's URI (sources.py). Kept out of repr.
    process_secrets: tuple[str, ...] = field(default=(), repr=False)
    credential_files: tuple[str, ...] = ()
    artifact_store: str = ""  # AIMODEL_ARTIFACT_STORE: any fsspec URL; empty: <home>/artifacts

    @property
    def artifact_store_url(self) -> str:
        return self.artifact_store or str(self.home / "artifacts")

    @property
    def forge_kind(self) -> str:
        return "github" if self.github else "local"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.home / "keys" / "signing.pem"


def _is_github_repo(value: str) -> bool:
    parts = value.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not value.startswith((".", "/", "~"))
        and not Path(value).exists()
    )


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range {low}..{high}")
    return value


def scan_parallel(env: Mapping[str, str] | None = None) -> str:
    """AIMODEL_SCAN_PARALLEL, checked: empty, or one of SCAN_MODES. Read on its own by `aimodel
    scan PATH`, which starts without the rest of the settings."""
    env = os.environ if env is None else env
    mode = env.get("AIMODEL_SCAN_PARALLEL", "")
    if mode and mode not in SCAN_MODES:
        raise ConfigError(f"AIMODEL_SCAN_PARALLEL={mode!r} is not one of {', '.join(SCAN_MODES)}")
    return mode


def signing_key_env(env: Mapping[str, str] | None = None) -> str:
    """AIMODEL_SIGNING_KEY as written (the path-signing command reads it without the rest)."""
    env = os.environ if env is None else env
    return env.get("AIMODEL_SIGNING_KEY", "")


def web_settings(env: Mapping[str, str]) -> WebSettings:
    host = env.get("HOST", "") or "127.0.0.1"
    return WebSettings(
        host=host,
        workers=_whole(env, "WEB_CONCURRENCY", 1, 1, 64),
        threads=_whole(env, "WEB_THREADS", 16, 1, 1024),
        access_log=env.get("AIMODEL_ACCESS_LOG", ""),
        keepalive=_whole(env, "WEB_KEEPALIVE", 2, 0, 300),
    )


def _check_store(url: str) -> None:
    """A remote store whose fsspec backend is missing is refused now, naming the extra."""
    if "://" not in url or url.startswith("file://"):
        return
    from bot.store import StoreError, open_filesystem

    try:
        open_filesystem(url)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


def sweep_settings(env: Mapping[str, str]) -> SweepSettings:
    return SweepSettings(
        interval=_whole(env, "AIMODEL_SWEEP_INTERVAL", 60, 1, 3600),
        check_timeout=_whole(env, "AIMODEL_CHECK_TIMEOUT", 600, 1, 7 * 24 * 3600),
    )


def release_settings(env: Mapping[str, str]) -> ReleaseSettings:
    return ReleaseSettings(
        keep=_whole(env, "AIMODEL_KEEP_RELEASES", 3, 1, 1000),
        drift_interval=_whole(env, "AIMODEL_DRIFT_INTERVAL", 300, 1, 7 * 24 * 3600),
        attempts=_whole(env, "AIMODEL_DEPLOY_ATTEMPTS", 4, 1, 100),
        retry_delay=_whole(env, "AIMODEL_DEPLOY_RETRY_DELAY", 30, 0, 24 * 3600),
    )


def _serving_ports(text: str) -> tuple[tuple[str, int], ...]:
    ports: dict[str, int] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        env_name, _, number = item.partition("=")
        try:
            port = int(number)
        except ValueError:
            raise ConfigError(f"AIMODEL_SERVING_PORTS: {item!r} is not ENV=PORT") from None
        if not env_name.strip() or not 1 <= port <= 65535:
            raise ConfigError(f"AIMODEL_SERVING_PORTS: {item!r} is not ENV=PORT with PORT in 1..65535")
        ports[env_name.strip()] = port
    if len(set(ports.values())) != len(ports):
        raise ConfigError("AIMODEL_SERVING_PORTS: two environments are given the same port")
    return tuple(sorted(ports.items()))


def serving_settings(env: Mapping[str, str]) -> ServingSettings:
    switch = env.get("AIMODEL_SERVING", "").strip().lower()
    if switch not in ("", "on", "off"):
        raise ConfigError(f"AIMODEL_SERVING={switch!r} is not one of on, off")
    return ServingSettings(
        enabled=switch != "off",
        host=env.get("AIMODEL_SERVING_HOST", "").strip() or "127.0.0.1",
        ports=_serving_ports(env.get("AIMODEL_SERVING_PORTS", "")),
        timeout=_whole(env, "AIMODEL_SERVING_TIMEOUT", 60, 1, 3600),
    )


def worker_settings(env: Mapping[str, str]) -> WorkerSettings:
    beat = _whole(env, "AIMODEL_HEARTBEAT", 5, 1, 300)
    within = _whole(env, "AIMODEL_READY_WITHIN", 30, 1, 3600)
    if within < 2 * beat:  # one late beat would flip /readyz
        raise ConfigError(f"AIMODEL_READY_WITHIN={within} must be at least twice AIMODEL_HEARTBEAT={beat}")
    return WorkerSettings(heartbeat=beat, ready_within=within, stop_grace=_whole(env, "AIMODEL_STOP_GRACE", 30, 0, 3600),
                          metrics_port=_whole(env, "AIMODEL_WORKER_METRICS_PORT", 0, 0, 65535))


def load_settings(env: Mapping[str, str] | None = None, *, home: str | None = None) -> Settings:
    env = os.environ if env is None else env
    home_path = Path(home or env.get("AIMODEL_HOME") or "./.aimodel").expanduser().resolve()

    port_text = env.get("PORT", "3000")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"PORT={port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"PORT={port} is out of range 0..65535")

    slack: SlackSettings | None = None
    secret, token = env.get("SLACK_SIGNING_SECRET", ""), env.get("SLACK_BOT_TOKEN", "")
    if secret or token:
        missing = [name for name, value in (("SLACK_SIGNING_SECRET", secret), ("SLACK_BOT_TOKEN", token)) if not value]
        if missing:
            raise ConfigError(f"Slack is half configured: {', '.join(missing)} is not set")
        slack = SlackSettings(secret, token, env.get("SLACK_API_URL", ""), env.get("SLACK_APP_TOKEN", ""))

    repo = env.get("AIMODEL_REPO", "")
    github: GitHubSettings | None = None
    if repo and _is_github_repo(repo):
        gh_token = env.get("GITHUB_TOKEN", "")
        app_id = env.get("GITHUB_APP_ID", "")
        app_key = env.get("GITHUB_APP_PRIVATE_KEY", "")
        if not gh_token and not (app_id and app_key):
            raise ConfigError(
                f"AIMODEL_REPO={repo} is a GitHub repository: set GITHUB_TOKEN, "
                "or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
            )
        if bool(app_id) != bool(app_key):
            raise ConfigError("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together; one is missing")
        github = GitHubSettings(
            repo=repo,
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            token=gh_token,
            app_id=app_id,
            app_private_key=app_key,
            webhook_secret=env.get("GITHUB_WEBHOOK_SECRET", ""),
        )

    key = signing_key_env(env)
    faces_text = env.get("AIMODEL_FACES")
    faces = DEFAULT_FACES if faces_text is None else tuple(n.strip() for n in faces_text.split(",") if n.strip())
    bad = [n for n in faces if not all(part.isidentifier() for part in n.split("."))]
    if bad:
        raise ConfigError(f"AIMODEL_FACES: {bad[0]!r} is not a Python module name")
    store = env.get("AIMODEL_ARTIFACT_STORE", "").strip()
    if store:
        _check_store(store)
    return Settings(
        home=home_path,
        artifact_store=store,
        repo=repo,
        port=port,
        redis_url=env.get("REDIS_URL", ""),
        signing_key=Path(key).expanduser() if key else None,
        slack=slack,
        github=github,
        faces=faces,
        web=web_settings(env),
        user=env.get("AIMODEL_USER", ""),
        scan_parallel=scan_parallel(env),
        sweep=sweep_settings(env),
        releases=release_settings(env),
        serving=serving_settings(env),
        worker=worker_settings(env),
        log_file=env.get("AIMODEL_LOG_FILE", ""),
        metrics_dir=Path(d).expanduser() if (d := env.get("PROMETHEUS_MULTIPROC_DIR", "")) else None,
        process_secrets=tuple(v for name in SECRET_ENV if (v := env.get(name, ""))),
        credential_files=tuple(v for name in CREDENTIAL_FILE_ENV if (v := env.get(name, ""))),
    )


def require_server_secrets(settings: Settings) -> None:
    """The web process receives webhooks: each configured face needs its verification secret."""
    if settings.github and not settings.github.webhook_secret:
        raise ConfigError("GITHUB_WEBHOOK_SECRET is not set; the server cannot verify GitHub webhooks")
