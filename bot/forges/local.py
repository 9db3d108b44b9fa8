"""The embedded forge: a bare Git repository on disk, pull requests as branches plus records.

It needs no account and no network. Records live in `<home>/forge/prs/<n>.json`, written
atomically under a file lock, so the CLI, the web process and the worker can share them.
Events (opened, synchronize, closed, review, push) go to the same handlers as GitHub's
webhooks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot import messages
from bot.forges.base import CheckResult, EventSink, ForgeError, PullRequest
from bot.forges.meta import MetaChange, PrMeta, read_record, write_record
from bot.fsutil import file_lock, read_json, write_atomic, write_json
from bot.policy import Review
from bot.state import CorruptState, problem_of


def _pr_to_json(pr: PullRequest) -> dict[str, Any]:
    data = dataclasses.asdict(pr)
    data["checks"] = {name: dataclasses.asdict(c) for name, c in pr.checks.items()}
    data["reviews"] = [dataclasses.asdict(r) for r in pr.reviews]
    data["meta"] = write_record(pr.meta)
    return data


def _pr_from_json(data: dict[str, Any]) -> PullRequest:
    checks = {
        name: CheckResult(**{**c, "annotations": tuple(c.get("annotations", ()))}) for name, c in data.pop("checks").items()
    }
    reviews = [Review(**r) for r in data.pop("reviews")]
    meta = read_record(data.pop("meta", None))
    return PullRequest(**data, checks=checks, reviews=reviews, meta=meta)


_STATES = ("open", "merged", "closed")


def _read_record(path: Path) -> PullRequest:
    """One PR record; CorruptState (naming the file) when it cannot be read as one."""
    try:
        data = read_json(path)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        pr = _pr_from_json(data)
        if isinstance(pr.number, bool) or not isinstance(pr.number, int) or pr.state not in _STATES:
            raise TypeError("number or state")
        if not all(isinstance(v, str) for v in (pr.title, pr.author, pr.branch, pr.head, pr.base)):
            raise TypeError("title, author, branch or head")
        return pr
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        number = int(path.stem) if path.stem.isdigit() else 0
        raise CorruptState(str(path), problem_of(exc), messages.record_advice(str(path.parent), number)) from None


class LocalForge:
    kind = "local"

    def __init__(self, home: Path, *, default_branch: str = "main", on_event: EventSink | None = None) -> None:
        self.home = home
        self.bare = home / "repo.git"
        self.root = home / "forge"
        self.default_branch = default_branch
        self.clone_url = str(self.bare)
        self.on_event = on_event

    # ------------------------------------------------------------------ storage

    def _path(self, number: int) -> Path:
        return self.root / "prs" / f"{number}.json"

    def _lock(self) -> Any:
        return file_lock(self.root / "forge.lock")

    def _load(self, number: int) -> PullRequest:
        try:
            return _read_record(self._path(number))
        except FileNotFoundError:
            raise ForgeError(messages.no_such_pr(number)) from None

    def _save(self, pr: PullRequest) -> None:
        write_json(self._path(pr.number), _pr_to_json(pr))

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self.on_event:
            self.on_event(event, payload)

    def url_for(self, number: int) -> str:
        return f"aimodel://local/pr/{number}"

    # ------------------------------------------------------------------ Forge

    def open_pr(self, *, branch: str, head: str, title: str, body: str, author: str, meta: PrMeta) -> PullRequest:
        with self._lock():
            counter = self.root / "next"
            number = self._first_number(counter)
            while True:
                pr = PullRequest(
                    number=number, title=title, body=body, author=author, branch=branch,
                    base=self.default_branch, head=head, url=self.url_for(number), meta=meta,
                )
                if self._create(pr):
                    break
                number += 1  # the counter was behind the records (restored, rolled back): never overwrite
            write_atomic(counter, str(number + 1).encode())
        self._emit("pull_request.opened", {"number": number, "head": head})
        return pr

    def _first_number(self, counter: Path) -> int:
        """The counter's number; when it is missing or unreadable, one past the highest record."""
        try:
            return max(1, int(counter.read_text()))
        except (FileNotFoundError, ValueError):
            folder = self.root / "prs"
            numbers = [int(e.name[:-5]) for e in os.scandir(folder) if e.name.endswith(".json") and e.name[:-5].isdigit()] if folder.exists() else []
            return max(numbers, default=0) + 1

    def _create(self, pr: PullRequest) -> bool:
        """Write a new record only if its number is free: link(2) never replaces a file."""
        path = self._path(pr.number)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write((json.dumps(_pr_to_json(pr), indent=2, sort_keys=True) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def get_pr(self, number: int) -> PullRequest:
        return self._load(number)

    def list_prs(self, state: str = "open") -> list[PullRequest]:
        folder = self.root / "prs"
        if not folder.exists():
            return []
        prs = []
        for entry in os.scandir(folder):
            if entry.name.endswith(".json"):
                pr = _read_record(Path(entry.path))
                if state == "all" or pr.state == state:
                    prs.append(pr)
        return sorted(prs, key=lambda p: p.number)

    def update_head(self, number: int, head: str) -> PullRequest:
        with self._lock():
            pr = self._load(number)
            if not pr.is_open:
                raise ForgeError(messages.pr_not_open(number, pr.state))
            pr.head = head
            self._save(pr)
        self._emit("pull_request.synchronize", {"number": number, "head": head})
        return pr

    def set_check(self, number: int, check: CheckResult) -> None:
        with self._lock():
            pr = self._load(number)
            pr.checks[check.name] = check
            self._save(pr)

    def add_review(self, number: int, review: Review) -> None:
        with self._lock():
            pr = self._load(number)
            if not pr.is_open:
                raise ForgeError(messages.pr_not_open(number, pr.state))
            pr.reviews.append(review)
            self._save(pr)
        self._emit("pull_request_review.submitted", {"number": number, "person": review.person, "state": review.state})

    def update_meta(self, number: int, change: MetaChange) -> None:
        with self._lock():
            pr = self._load(number)
            pr.meta = change(pr.meta)
            self._save(pr)

    def comment(self, number: int, body: str) -> None:
        self.update_meta(number, lambda m: dataclasses.replace(m, summary_comment=body))

    def close(self, number: int) -> None:
        with self._lock():
            pr = self._load(number)
            if not pr.is_open:
                raise ForgeError(f"pull request #{number} is already {pr.state}")
            pr.state = "closed"
            self._save(pr)
        self._git("update-ref", "-d", f"refs/heads/{pr.branch}")
        self._emit("pull_request.closed", {"number": number, "merged": False})

    def merge(self, number: int, *, message: str, expected_head: str) -> str:
        with self._lock():
            pr = self._load(number)
            if not pr.is_open:
                raise ForgeError(messages.pr_not_open(number, pr.state))
            if pr.head != expected_head:
                raise ForgeError(f"pull request #{number} moved to {pr.head[:8]} while it was being merged; try again")
            base_ref = f"refs/heads/{pr.base}"
            base = self._git("rev-parse", base_ref).strip()
            try:
                tree = self._git("merge-tree", "--write-tree", base, pr.head).split("\n", 1)[0].strip()
            except ForgeError:
                raise ForgeError(f"pull request #{number} conflicts with {pr.base}; close it and make the change again") from None
            env = {
                **os.environ,
                "GIT_AUTHOR_NAME": pr.author, "GIT_AUTHOR_EMAIL": f"{pr.author}@aimodel.local",
                "GIT_COMMITTER_NAME": "aimodel-bot", "GIT_COMMITTER_EMAIL": "aimodel-bot@localhost",
            }
            commit = self._git("commit-tree", tree, "-p", base, "-p", pr.head, "-m", message, env=env).strip()
            self._git("update-ref", base_ref, commit, base)  # compare-and-swap: fails if the base moved
            self._git("update-ref", "-d", f"refs/heads/{pr.branch}")
            pr.state = "merged"
            pr.merge_commit = commit
            self._save(pr)
        self._emit("pull_request.closed", {"number": number, "merged": True})
        self._emit("push", {"ref": f"refs/heads/{pr.base}", "before": base, "after": commit, "pr": number})
        return commit

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        from bot.gitrepo import GitError, run_git

        try:
            return run_git(self.bare, *args, env=env)
        except GitError as exc:
            raise ForgeError(str(exc).replace(" failed: ", " failed in the local forge: ", 1)) from None
