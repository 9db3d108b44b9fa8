"""The GitHub forge: pull requests, reviews, check runs or statuses, through the REST adapter.

- The bot stays stateless across machines: what it must remember about a pull request is
  PrMeta, kept as JSON in a hidden HTML comment at the end of the pull request body
  (bot/forges/meta.py reads and writes it).
- Checks are reported as one check run per check (`aimodel/manifest`, `aimodel/scan`,
  `aimodel/validate`, `aimodel/sign`, `aimodel/policy`) with App credentials, or as commit
  statuses with a plain token (GitHub refuses check runs from tokens); `get_pr` rebuilds
  `PullRequest.checks` from them for the head commit.
- Events come from GitHub's webhooks (handlers/github.py), not from this class; the one
  exception is an approval given through the bot (Slack, CLI), which GitHub does not know as
  a review: `add_review` records it in the metadata and emits the review event itself.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from github.GithubException import GithubException

from bot.forges.base import CheckResult, DeploymentReport, EventSink, ForgeError, PullRequest
from bot.forges.github.api import GitHubApi, error_text
from bot.forges.github.workspace import GitHubWorkspace
from bot.forges.github_auth import TokenSource
from bot.forges.meta import BotReview, MetaChange, PrMeta, read_body, write_body
from bot.fsutil import file_lock
from bot.gitrepo import GitError
from bot.manifests import CONFIG_PATH, ManifestError, RepoConfig, parse_config
from bot.messages import github as md
from bot.policy import Review

log = logging.getLogger("aimodel.github")

REVIEW_STATES = {"APPROVED": "approved", "CHANGES_REQUESTED": "changes_requested", "COMMENTED": "commented", "DISMISSED": "dismissed"}
CONCLUSION_STATES = {
    "success": "success", "failure": "failure", "neutral": "skipped", "skipped": "skipped",
    "cancelled": "error", "timed_out": "error", "action_required": "failure", "stale": "error",
}
CHECK_NAMES = ("manifest", "scan", "validate", "sign")

def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    if isinstance(value, int | float):
        return float(value)
    return 0.0


class GitHubForge:
    kind = "github"

    def __init__(
        self,
        *,
        repo: str,
        api_url: str,
        source: TokenSource,
        workspace: GitHubWorkspace | None = None,
        home: Path | None = None,
        default_branch: str = "main",
        on_event: EventSink | None = None,
        writes_per_second: float = 3.0,
        max_attempts: int = 6,
        timeout: int = 30,
    ) -> None:
        self.full_name = repo
        self.api_url = api_url.rstrip("/")
        self.source = source
        self.workspace = workspace
        self.home = home
        self.default_branch = default_branch
        self.on_event = on_event
        self.api = GitHubApi(repo=repo, api_url=api_url, source=source, writes_per_second=writes_per_second,
                             max_attempts=max_attempts, timeout=timeout)
        self._primed = threading.local()
        self._run_ids: dict[tuple[str, str], int] = {}
        self._comment_ids: dict[int, int] = {}
        self._configs: dict[str, RepoConfig] = {}
        self._lock = threading.Lock()
        # check runs need App credentials with the checks permission; otherwise commit statuses
        self.use_check_runs = source.is_app

    # ------------------------------------------------------------------ plumbing

    @property
    def clone_url(self) -> str:
        return self.web_url + ".git"

    @property
    def web_url(self) -> str:
        base = self.api_url
        if base == "https://api.github.com":
            base = "https://github.com"
        elif base.endswith("/api/v3"):
            base = base[: -len("/api/v3")]
        return f"{base}/{self.full_name}"

    def shutdown(self) -> None:
        """Close the HTTP connections (the Forge's `close` closes a pull request)."""
        self.api.close()

    @property
    def retries(self) -> int:
        return self.api.retries

    @property
    def max_attempts(self) -> int:
        return self.api.max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self.api.max_attempts = value

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event, payload)

    # ------------------------------------------------------------------ people

    def config_at(self, sha: str) -> RepoConfig | None:
        """The repository config at a commit (from the clone), cached by commit."""
        with self._lock:
            if sha in self._configs:
                return self._configs[sha]
        ws = self.workspace
        if ws is None or not sha:
            return None
        if not ws.has_commit(sha):
            ws.fetch()
        try:
            raw = ws.read_file(sha, CONFIG_PATH)
            config = parse_config(raw, CONFIG_PATH) if raw is not None else None
        except (GitError, ManifestError):
            config = None
        if config is not None:
            with self._lock:
                if len(self._configs) > 64:
                    self._configs.clear()
                self._configs[sha] = config
        return config

    @staticmethod
    def person_of(config: RepoConfig | None, login: str) -> str:
        person = config.person_for_github(login) if config else None
        return person.name if person else f"github:{login}"

    # ------------------------------------------------------------------ reading pull requests

    def _from_github(self, p: Any, *, reviews: list[Review] | None = None, checks: dict[str, CheckResult] | None = None) -> PullRequest:
        visible, meta = read_body(p.body)
        state = "merged" if p.merged else ("open" if p.state == "open" else "closed")
        return PullRequest(
            number=p.number, title=p.title, body=visible, author=meta.author or str(p.user.login),
            branch=p.head.ref, base=p.base.ref, head=p.head.sha, state=state, url=p.html_url,
            checks=checks or {}, reviews=reviews or [], merge_commit=(p.merge_commit_sha or "") if p.merged else "",
            meta=meta,
        )

    @staticmethod
    def pr_from_payload(data: Mapping[str, Any]) -> PullRequest:
        """A PullRequest from a webhook's `pull_request` object (no checks, no reviews)."""
        visible, meta = read_body(data.get("body"))
        merged = bool(data.get("merged"))
        return PullRequest(
            number=int(data["number"]), title=str(data.get("title") or ""), body=visible,
            author=meta.author or str((data.get("user") or {}).get("login", "")),
            branch=str(data["head"]["ref"]), base=str(data["base"]["ref"]), head=str(data["head"]["sha"]),
            state="merged" if merged else str(data.get("state") or "open"), url=str(data.get("html_url") or ""),
            merge_commit=str(data.get("merge_commit_sha") or "") if merged else "", meta=meta,
        )

    @contextmanager
    def primed(self, pr: PullRequest) -> Iterator[None]:
        """Within this block and thread, get_pr(pr.number) answers from a webhook's payload
        instead of the API (the web process must answer GitHub fast)."""
        previous = getattr(self._primed, "prs", None)
        self._primed.prs = {**(previous or {}), pr.number: pr}
        try:
            yield
        finally:
            self._primed.prs = previous

    def _reviews(self, p: Any, meta: PrMeta) -> list[Review]:
        config = self.config_at(p.base.sha)
        timed: list[tuple[float, Review]] = []
        for r in self.api.call(lambda: list(p.get_reviews()), what="list reviews"):
            state = REVIEW_STATES.get(str(r.state).upper())
            if state is None or r.user is None:
                continue
            timed.append((_epoch(r.submitted_at), Review(self.person_of(config, r.user.login), state, r.commit_id or "")))
        for r in meta.reviews:
            timed.append((r.at, Review(r.person, r.state, r.commit)))
        timed.sort(key=lambda item: item[0])
        return [r for _, r in timed]

    def checks_for(self, sha: str, *, include_policy: bool = False) -> dict[str, CheckResult]:
        """The bot's checks on a commit, rebuilt from check runs (App) or statuses (token)."""
        out: dict[str, CheckResult] = {}
        wanted = (*CHECK_NAMES, md.POLICY) if include_policy else CHECK_NAMES
        if self.use_check_runs:
            data = self.api.request("GET", self.api.path(f"/commits/{sha}/check-runs"), params={"per_page": 100, "filter": "latest"})
            runs = sorted(data.get("check_runs", []), key=lambda r: r["id"])
            for run in runs:  # oldest first: the newest run of a name wins
                name = md.plain_name(run["name"])
                if name is None or name not in wanted:
                    continue
                external = str(run.get("external_id") or "")
                if external.startswith("aimodel:"):
                    state = external.split(":", 1)[1]
                elif run["status"] != "completed":
                    state = "pending"
                else:
                    state = CONCLUSION_STATES.get(str(run.get("conclusion")), "error")
                output = run.get("output") or {}
                out[name] = CheckResult(name, state, str(output.get("title") or ""), str(output.get("text") or ""), sha)
                with self._lock:
                    self._run_ids[(sha, name)] = int(run["id"])
        else:
            data = self.api.request("GET", self.api.path(f"/commits/{sha}/status"), params={"per_page": 100})
            for status in data.get("statuses", []):  # the newest of each context
                name = md.plain_name(str(status.get("context", "")))
                if name is None or name not in wanted or name in out:
                    continue
                description = str(status.get("description") or "")
                state = str(status["state"])
                if state == "success" and description.startswith("skipped: "):
                    state, description = "skipped", description[len("skipped: ") :]
                out[name] = CheckResult(name, state, description, "", sha)
        return out

    def get_pr(self, number: int) -> PullRequest:
        primed = getattr(self._primed, "prs", None)
        if primed and number in primed:
            pr: PullRequest = primed[number]
            return pr
        try:
            p = self.api.call(lambda: self.api.repo.get_pull(number), what=f"get #{number}")
        except GithubException as exc:
            if exc.status == 404:
                raise ForgeError(f"there is no pull request #{number} in {self.full_name}") from None
            raise
        _visible, meta = read_body(p.body)
        checks: dict[str, CheckResult] = {}
        checked = meta.checked_head
        if checked and checked != p.head.sha and meta.signed_head == p.head.sha:
            # the head is a signature commit of an older bot (signatures are in the artifact
            # store now): the results of the commit it signed were carried over to it
            checks.update(self.checks_for(checked))
        checks.update(self.checks_for(p.head.sha))
        pr = self._from_github(p, reviews=self._reviews(p, meta), checks=checks)
        if not meta.author:  # opened by a person on GitHub: their name in the config
            pr.author = self.person_of(self.config_at(p.base.sha), p.user.login)
        return pr

    def list_prs(self, state: str = "open") -> list[PullRequest]:
        api_state = {"merged": "closed"}.get(state, state)
        pulls = self.api.call(lambda: list(self.api.repo.get_pulls(state=api_state, sort="created", direction="asc")), what="list pulls")
        out = []
        for p in pulls:
            pr = self._from_github(p)
            if state in ("all", pr.state) or (state == "closed" and pr.state in ("closed", "merged")):
                if pr.is_open:
                    pr.checks = self.checks_for(pr.head)
                out.append(pr)
        return sorted(out, key=lambda pr: pr.number)

    # ------------------------------------------------------------------ writing pull requests

    def open_pr(self, *, branch: str, head: str, title: str, body: str, author: str, meta: PrMeta) -> PullRequest:
        full_meta = dataclasses.replace(meta, author=author, opened_at=time.time())
        text = write_body(md.pr_description(body, author=author, via=meta.via), full_meta)
        try:
            p = self.api.call(lambda: self.api.repo.create_pull(base=self.default_branch, head=branch, title=title, body=text), write=True, what="open pull request")
        except GithubException as exc:
            if exc.status != 422 or "already exists" not in str(exc.data):
                raise ForgeError(f"GitHub refused to open the pull request: {error_text(exc)}") from None
            found = self.api.call(lambda: list(self.api.repo.get_pulls(state="open", head=f"{self.full_name.split('/')[0]}:{branch}")), what="find pull request")
            if not found:
                raise ForgeError(f"GitHub refused to open the pull request: {error_text(exc)}") from None
            p = found[0]
        labels = ["aimodel", f"aimodel:{meta.verb or 'change'}"]
        try:
            self.api.call(lambda: p.add_to_labels(*labels), write=True, what="label")
        except GithubException as exc:  # labels are a courtesy; the pull request stands
            log.warning("could not label #%s: %s", p.number, error_text(exc))
        return self._from_github(p)

    def update_head(self, number: int, head: str) -> PullRequest:
        """The branch was pushed already; wait until GitHub shows the new head (it updates
        pull requests asynchronously). GitHub itself sends the `synchronize` webhook."""
        deadline = time.monotonic() + 15
        while True:
            pr = self.get_pr(number)
            if not pr.is_open:
                raise ForgeError(f"pull request #{number} is {pr.state}")
            if pr.head == head or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return pr

    def update_meta(self, number: int, change: MetaChange) -> None:
        lock = file_lock(self.home / "github" / "locks" / f"pr-{number}.lock") if self.home else null_lock()
        with lock:
            p = self.api.call(lambda: self.api.repo.get_pull(number), what=f"get #{number}")
            visible, meta = read_body(p.body)
            text = write_body(visible, change(meta))
            self.api.call(lambda: p.edit(body=text), write=True, what=f"edit #{number}")

    def add_review(self, number: int, review: Review) -> None:
        """An approval given through the bot (Slack, CLI): kept in the metadata, counted like a
        GitHub review, and announced as a review event (GitHub sends none for it)."""
        lock = file_lock(self.home / "github" / "locks" / f"pr-{number}.lock") if self.home else null_lock()
        with lock:
            p = self.api.call(lambda: self.api.repo.get_pull(number), what=f"get #{number}")
            if p.state != "open":
                raise ForgeError(f"pull request #{number} is {'merged' if p.merged else 'closed'}")
            visible, meta = read_body(p.body)
            entry = BotReview(review.person, review.state, review.commit or p.head.sha, time.time())
            text = write_body(visible, dataclasses.replace(meta, reviews=(*meta.reviews, entry)))
            self.api.call(lambda: p.edit(body=text), write=True, what=f"edit #{number}")
        self._emit("pull_request_review.submitted", {"number": number, "person": review.person, "state": review.state})

    def set_check(self, number: int, check: CheckResult) -> None:
        sha = check.commit or self.get_pr(number).head
        name = check.name
        if self.use_check_runs:
            try:
                self._check_run(sha, check)
                return
            except GithubException as exc:
                if exc.status != 403:
                    raise
                # an App installed without the "checks" permission: statuses it is, from now on
                log.warning("check runs refused (%s); reporting commit statuses instead", error_text(exc))
                self.use_check_runs = False
        state = {"skipped": "success"}.get(check.state, check.state)
        if state not in ("pending", "success", "failure", "error"):
            state = "error"
        body = {
            "state": state, "context": md.check_name(name), "description": md.status_description(check),
            "target_url": f"{self.web_url}/pull/{number}",
        }
        self.api.request("POST", self.api.path(f"/statuses/{sha}"), body=body)

    def _check_run(self, sha: str, check: CheckResult) -> None:
        body: dict[str, Any] = {
            "name": md.check_name(check.name), "head_sha": sha, "external_id": f"aimodel:{check.state}",
            "output": md.check_run_output(check),
        }
        if check.state == "pending":
            body["status"] = "in_progress"
        else:
            body["status"] = "completed"
            body["conclusion"] = {"success": "success", "skipped": "skipped", "failure": "failure"}.get(check.state, "failure")
            body["completed_at"] = _iso_now()
        key = (sha, check.name)
        with self._lock:
            run_id = self._run_ids.get(key)
        if run_id is None and check.state != "pending":
            runs = self.api.request("GET", self.api.path(f"/commits/{sha}/check-runs"), params={"check_name": body["name"], "filter": "latest"})
            for run in runs.get("check_runs", []):
                if run.get("status") != "completed":
                    run_id = int(run["id"])
        if check.state == "pending" or run_id is None:
            created = self.api.request("POST", self.api.path("/check-runs"), body=body)
            run_id = int(created["id"])
        else:
            patch = {k: v for k, v in body.items() if k not in ("head_sha",)}
            try:
                self.api.request("PATCH", self.api.path(f"/check-runs/{run_id}"), body=patch)
            except GithubException as exc:
                if exc.status not in (403, 404):
                    raise
                run_id = int(self.api.request("POST", self.api.path("/check-runs"), body=body)["id"])
        with self._lock:
            if len(self._run_ids) > 4096:
                self._run_ids.clear()
            self._run_ids[key] = run_id

    def comment(self, number: int, body: str) -> None:
        """The one summary comment, found by its hidden marker and edited in place."""
        text = body if md.SUMMARY_MARKER in body else f"{md.SUMMARY_MARKER}\n{body}"
        lock = file_lock(self.home / "github" / "locks" / f"comment-{number}.lock") if self.home else null_lock()
        with lock:
            comment_id = self._comment_ids.get(number)
            if comment_id is None:
                comments = self.api.request("GET", self.api.path(f"/issues/{number}/comments"), params={"per_page": 100})
                for c in comments:
                    if md.SUMMARY_MARKER in str(c.get("body") or ""):
                        comment_id = int(c["id"])
                        break
            if comment_id is not None:
                try:
                    self.api.request("PATCH", self.api.path(f"/issues/comments/{comment_id}"), body={"body": text})
                    self._comment_ids[number] = comment_id
                    return
                except GithubException as exc:
                    if exc.status != 404:
                        raise
            created = self.api.request("POST", self.api.path(f"/issues/{number}/comments"), body={"body": text})
            self._comment_ids[number] = int(created["id"])

    def merge(self, number: int, *, message: str, expected_head: str) -> str:
        title, _, rest = message.partition("\n\n")
        p = self.api.call(lambda: self.api.repo.get_pull(number), what=f"get #{number}")
        if p.state != "open":
            raise ForgeError(f"pull request #{number} is {'merged' if p.merged else 'closed'}")
        try:
            self.set_check(number, CheckResult(md.POLICY, "success", "checks green, approvals met: merged by the bot", "", expected_head))
        except GithubException as exc:
            log.warning("could not complete the policy check of #%s: %s", number, error_text(exc))
        try:
            status = self.api.call(
                lambda: p.merge(commit_title=title, commit_message=rest, merge_method="merge", sha=expected_head),
                write=True, what=f"merge #{number}",
            )
        except GithubException as exc:
            if exc.status == 409:
                raise ForgeError(f"pull request #{number} moved while it was being merged; try again") from None
            if exc.status == 405:
                raise ForgeError(f"GitHub cannot merge #{number}: {error_text(exc)}") from None
            raise ForgeError(f"GitHub refused to merge #{number}: {error_text(exc)}") from None
        self._delete_branch(p.head.ref)
        return str(status.sha)

    def close(self, number: int) -> None:
        p = self.api.call(lambda: self.api.repo.get_pull(number), what=f"get #{number}")
        if p.state != "open":
            raise ForgeError(f"pull request #{number} is already {'merged' if p.merged else 'closed'}")
        self.api.call(lambda: p.edit(state="closed"), write=True, what=f"close #{number}")
        self._delete_branch(p.head.ref)

    def _delete_branch(self, branch: str) -> None:
        try:
            self.api.request("DELETE", self.api.path(f"/git/refs/heads/{branch}"))
        except GithubException as exc:
            if exc.status not in (404, 422):  # already gone
                log.warning("could not delete branch %s: %s", branch, error_text(exc))

    # ------------------------------------------------------------------ helpers for the handlers

    def record_deployment(self, report: DeploymentReport) -> None:
        """RecordsDeployments: the release on the repository's Environments page (deployments.py)."""
        from bot.forges.github.deployments import record_deployment

        record_deployment(self.api, self.web_url, report)

    def recent_merges(self, limit: int) -> list[PullRequest]:
        """ListsRecentMerges: one page of the newest closed pull requests, the merged ones with
        the metadata of their bodies (the deploy record), newest first. The list's objects carry
        `merged_at`, not `merged` (GitHub sets that on a single pull request only)."""
        try:
            data = self.api.request("GET", self.api.path("/pulls"),
                                    params={"state": "closed", "sort": "created", "direction": "desc", "per_page": max(1, min(100, limit))})
        except GithubException as exc:  # the sweep logs it and looks again next interval
            raise ForgeError(f"GitHub refused the list of merged pull requests: {error_text(exc)}") from None
        merged = [self.pr_from_payload({**p, "merged": True}) for p in data if isinstance(p, Mapping) and p.get("merged_at")]
        return sorted(merged, key=lambda pr: pr.number, reverse=True)[:limit]

    def find_pr_for_commit(self, sha: str) -> int | None:
        """The open pull request whose head is `sha` (check_run payloads may not say)."""
        for p in self.api.call(lambda: list(self.api.repo.get_pulls(state="open")), what="list pulls"):
            if p.head.sha == sha:
                return int(p.number)
        return None


@contextmanager
def null_lock() -> Iterator[bool]:
    yield True


MERGE_RE = re.compile(r"^Merge (?:pull request )?#(\d+)\b")


def merged_pr_number(message: str) -> int | None:
    """The pull request a merge commit came from (`Merge #12: ...`, `Merge pull request #12 from ...`)."""
    match = MERGE_RE.match(message or "")
    return int(match.group(1)) if match else None
