"""In-process fakes of the core's ports (Forge, Locks, Notifier), for unit tests of the core.

They keep state in memory and behave like the real adapters on the points the core relies on
(a closed pull request refuses reviews, a merge checks the expected head, locks are all or
nothing); they record what was asked of them so a test can assert it. Tests that need the
real thing over the wire use the stand-ins in tests/standins instead.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.forges.base import CheckResult, ForgeError, PullRequest
from bot.forges.meta import MetaChange, PrMeta
from bot.locks import Holder
from bot.policy import Review


class FakeForge:
    """The Forge port in memory. A merge fast-forwards: the merge commit is the head."""

    kind = "fake"

    def __init__(self, *, clone_url: str = "", default_branch: str = "main") -> None:
        self.clone_url = clone_url
        self.default_branch = default_branch
        self.prs: dict[int, PullRequest] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []  # what a face would hear, in order
        self.comments: dict[int, str] = {}

    def _get(self, number: int) -> PullRequest:
        try:
            return self.prs[number]
        except KeyError:
            raise ForgeError(f"there is no pull request #{number}") from None

    def _open(self, number: int) -> PullRequest:
        pr = self._get(number)
        if not pr.is_open:
            raise ForgeError(f"pull request #{number} is {pr.state}")
        return pr

    def open_pr(self, *, branch: str, head: str, title: str, body: str, author: str, meta: PrMeta) -> PullRequest:
        number = max(self.prs, default=0) + 1
        pr = PullRequest(number=number, title=title, body=body, author=author, branch=branch,
                         base=self.default_branch, head=head, url=f"fake://pr/{number}", meta=meta)
        self.prs[number] = pr
        self.events.append(("pull_request.opened", {"number": number, "head": head}))
        return copy.deepcopy(pr)

    def get_pr(self, number: int) -> PullRequest:
        return copy.deepcopy(self._get(number))  # callers get a snapshot, as from a real forge

    def list_prs(self, state: str = "open") -> list[PullRequest]:
        return [copy.deepcopy(p) for n, p in sorted(self.prs.items()) if state == "all" or p.state == state]

    def update_head(self, number: int, head: str) -> PullRequest:
        pr = self._open(number)
        pr.head = head
        self.events.append(("pull_request.synchronize", {"number": number, "head": head}))
        return copy.deepcopy(pr)

    def set_check(self, number: int, check: CheckResult) -> None:
        self._get(number).checks[check.name] = check

    def add_review(self, number: int, review: Review) -> None:
        self._open(number).reviews.append(review)
        self.events.append(("pull_request_review.submitted", {"number": number, "person": review.person, "state": review.state}))

    def update_meta(self, number: int, change: MetaChange) -> None:
        pr = self._get(number)
        pr.meta = change(pr.meta)

    def merge(self, number: int, *, message: str, expected_head: str) -> str:
        pr = self._open(number)
        if pr.head != expected_head:
            raise ForgeError(f"pull request #{number} moved to {pr.head[:8]} while it was being merged; try again")
        pr.state, pr.merge_commit = "merged", pr.head
        self.events.append(("pull_request.closed", {"number": number, "merged": True}))
        return pr.merge_commit

    def close(self, number: int) -> None:
        pr = self._get(number)
        if not pr.is_open:
            raise ForgeError(f"pull request #{number} is already {pr.state}")
        pr.state = "closed"
        self.events.append(("pull_request.closed", {"number": number, "merged": False}))

    def comment(self, number: int, body: str) -> None:
        self._get(number)
        self.comments[number] = body  # one summary comment, edited in place


class MemoryLocks:
    """The Locks port in one dictionary: all keys or none, released only by their holder."""

    def __init__(self) -> None:
        self.held: dict[str, Holder] = {}

    def acquire(self, keys: Sequence[str], person: str) -> Holder | None:
        for key in keys:
            if key in self.held:
                return self.held[key]
        now = time.time()
        for key in keys:
            self.held[key] = Holder(key, None, person, now)
        return None

    def assign(self, keys: Sequence[str], pr: int) -> None:
        for key in keys:
            old = self.held.get(key)
            self.held[key] = Holder(key, pr, old.person if old else "", old.since if old else time.time())

    def release(self, keys: Sequence[str], pr: int | None = None) -> None:
        for key in keys:
            held = self.held.get(key)
            if held is not None and (pr is None or held.pr == pr):
                del self.held[key]

    def holder(self, key: str) -> Holder | None:
        return self.held.get(key)

    def all(self) -> list[Holder]:
        return [self.held[k] for k in sorted(self.held)]


@dataclass
class RecordingNotifier:
    """The Notifier port: keeps every delivery, in order."""

    enabled: bool = True
    delivered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        self.delivered.append((kind, copy.deepcopy(data)))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.delivered]
