"""The values a command parses to: one frozen dataclass per verb (what the faces run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.sla import Sla


@dataclass(frozen=True)
class Create:
    name: str
    app: str
    dataset: str
    artifact: str
    version: str = "1.0.0"
    format: str = ""
    sla: Sla = field(default_factory=Sla)
    dataset_uri: str = ""
    label_column: str = ""
    reason: str = ""
    verb: str = "create"


@dataclass(frozen=True)
class Update:
    name: str
    artifact: str = ""
    version: str = ""
    sla: Sla | None = None
    reason: str = ""
    verb: str = "update"


@dataclass(frozen=True)
class Deploy:
    name: str
    env: str
    reason: str = ""
    verb: str = "deploy"
    version: str = ""  # empty: the newest (first environment) or what runs in the one before
    canary: int = 0  # percent of traffic the new version takes (KServe); 0: all of it


@dataclass(frozen=True)
class Promote:
    name: str  # a model
    env: str
    reason: str = ""
    verb: str = "promote"


@dataclass(frozen=True)
class Rollback:
    name: str  # an application
    env: str
    to: str = ""  # a release id; empty: the release before the one live now
    reason: str = ""
    verb: str = "rollback"


@dataclass(frozen=True)
class Migrate:
    reason: str = ""
    verb: str = "migrate"
    name: str = "repository"  # what the pull request's branch and lock are named after


@dataclass(frozen=True)
class Destroy:
    name: str
    with_apps: bool = False
    reason: str = ""
    verb: str = "destroy"


@dataclass(frozen=True)
class Sync:
    env: str = ""  # empty: every environment
    verb: str = "sync"


@dataclass(frozen=True)
class ListModels:
    app: str = ""
    env: str = ""
    verb: str = "list"


@dataclass(frozen=True)
class Status:
    name: str = ""
    verb: str = "status"


@dataclass(frozen=True)
class History:
    name: str  # an application or a model
    env: str = ""
    at: float | None = None  # seconds since the epoch; None: every release
    verb: str = "history"


@dataclass(frozen=True)
class Scan:
    targets: tuple[str, ...]  # model names or paths
    app_name: str = ""  # the seed's --appName
    sarif: bool = False
    verb: str = "scan"


@dataclass(frozen=True)
class Validate:
    name: str
    sla: Sla | None = None
    verb: str = "validate"


@dataclass(frozen=True)
class Sign:
    target: str
    key: str = ""
    bundle: str = ""
    verb: str = "sign"


@dataclass(frozen=True)
class Verify:
    target: str
    bundle: str = ""
    public_key: str = ""
    verb: str = "verify"


@dataclass(frozen=True)
class PrCommand:
    action: str  # list | show | approve | merge | close | open
    number: int = 0
    state: str = "open"
    verb: str = "pr"
    branch: str = ""  # open: the branch a person pushed to the origin
    title: str = ""


@dataclass(frozen=True)
class Init:
    people: tuple[tuple[str, str], ...] = ()
    verb: str = "init"


@dataclass(frozen=True)
class Serve:
    port: int | None = None
    with_worker: bool = True
    verb: str = "serve"


@dataclass(frozen=True)
class Worker:
    workers: int = 2
    verb: str = "worker"


@dataclass(frozen=True)
class Help:
    topic: str = ""
    verb: str = "help"


Command = (
    Create | Update | Deploy | Promote | Rollback | Migrate | Destroy | ListModels | Status | History | Scan | Validate | Sign | Verify
    | PrCommand | Init | Serve | Worker | Help | Sync
)
PROPOSALS = (Create, Update, Deploy, Promote, Rollback, Migrate, Destroy)
