"""The Forge port: the operations the bot performs on pull requests, and nothing more."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bot.forges.meta import MetaChange, PrMeta
from bot.policy import Review


@dataclass(frozen=True)
class CheckResult:
    name: str
    state: str
    summary: str
    details: str = ""  # Markdown
    commit: str = ""
    annotations: tuple[Mapping[str, Any], ...] = ()  # {path, line, message, level}

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, "details": self.details, "commit": self.commit}


@dataclass
class PullRequest:
    number: int
    title: str
    body: str
    author: str  # a person's name from the repository config
    branch: str
    base: str
    head: str  # commit sha
    state: str = "open"  # open | merged | closed
    url: str = ""
    checks: dict[str, CheckResult] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    merge_commit: str = ""
    meta: PrMeta = field(default_factory=PrMeta)  # what the bot remembers (bot/forges/meta.py)

    @property
    def is_open(self) -> bool:
        return self.state == "open"


class ForgeError(RuntimeError):
    """The forge refused or failed; the message is fit to show a person."""


EventSink = Callable[[str, dict[str, Any]], None]


class Forge(Protocol):
    kind: str
    clone_url: str

    def open_pr(self, *, branch: str, head: str, title: str, body: str, author: str, meta: PrMeta) -> PullRequest: ...

    def get_pr(self, number: int) -> PullRequest: ...

    def list_prs(self, state: str = "open") -> list[PullRequest]: ...

    def update_head(self, number: int, head: str) -> PullRequest: ...

    def set_check(self, number: int, check: CheckResult) -> None: ...

    def add_review(self, number: int, review: Review) -> None: ...

    def update_meta(self, number: int, change: MetaChange) -> None:
        """Apply `change` to the pull request's metadata as it is now (under the forge's lock)."""

    def merge(self, number: int, *, message: str, expected_head: str) -> str: ...

    def close(self, number: int) -> None: ...

    def comment(self, number: int, body: str) -> None: ...


# --------------------------------------------------------------------------- optional abilities
# A forge that has one of these says so by having the methods; callers check with isinstance.


@runtime_checkable
class EmitsEvents(Protocol):
    """Tells what happened (opened, synchronize, review, closed, push) to a sink: the local
    forge for everything, GitHub for what it sends no webhook for (approvals through the bot)."""

    on_event: EventSink | None


@runtime_checkable
class HoldsConnections(Protocol):
    """Keeps network sessions open that the process must close when it is done."""

    def shutdown(self) -> None: ...


@runtime_checkable
class PrimesFromPayload(Protocol):
    """Can answer get_pr from a webhook's payload instead of asking its API again."""

    def pr_from_payload(self, data: Mapping[str, Any]) -> PullRequest: ...

    def primed(self, pr: PullRequest) -> AbstractContextManager[None]: ...


@runtime_checkable
class ListsRecentMerges(Protocol):
    """Lists the newest merged pull requests, with their metadata, in one call: the sweep finds
    a failed deploy to try again in their deploy records on a forge whose pull requests it does
    not read in full every interval (GitHub: one page of closed pull requests, the record in
    each body). Newest first; successes too, since a newer good apply overtakes older failures."""

    def recent_merges(self, limit: int) -> list[PullRequest]: ...


@runtime_checkable
class FindsPrByCommit(Protocol):
    def find_pr_for_commit(self, sha: str) -> int | None: ...


@dataclass(frozen=True)
class DeploymentReport:
    """One release as the forge shows it (GitHub: a Deployment of `ref` to `environment`, then
    its statuses). Plain data, decided by bot.deploy.github_deployments from a release record."""

    release: str  # the release record's id: finding it again makes a second report a no-op
    ref: str  # the commit that was applied
    environment: str
    task: str  # "deploy:<app>": one environment holds several applications' releases
    description: str
    payload: Mapping[str, Any]
    state: str  # the final status: "success" | "failure"
    status_description: str  # at most 140 characters (GitHub's limit)
    pr: int | None = None  # the pull request that asked for it: the status links to it


@runtime_checkable
class RecordsDeployments(Protocol):
    """Shows each release on the forge's own deployments page (GitHub's Environments)."""

    def record_deployment(self, report: DeploymentReport) -> None: ...
