"""The GitHub forge: PyGithub for the API, GitPython for the working clone.

- The clone lives in `<home>/github/<owner>/<name>`; it is made once and fetched, never
  cloned again per command. git authenticates with an `http.extraheader` computed per
  command from the current token, so no token is ever written into `.git/config` and an App's
  installation token can be refreshed under a running process. Changes are built with the
  private-index commits of `Workspace.commit_change`, so concurrent changes never share a
  work tree.
- The bot stays stateless across machines: what it must remember about a pull request
  (verb, model, locks, Slack thread, signed and checked heads, the deploy result, approvals
  given through Slack) is JSON in a hidden HTML comment at the end of the pull request body.
- Checks are reported as one check run per check (`aimodel/manifest`, `aimodel/scan`,
  `aimodel/validate`, `aimodel/sign`, `aimodel/policy`) with App credentials, or as commit
  statuses with a plain token (GitHub refuses check runs from tokens); `get_pr` rebuilds
  `PullRequest.checks` from them for the head commit.
- Every call goes through `_call`: content writes take a token from a small bucket (GitHub's
  secondary limits ask for no more than a few per second); 403/429 with `Retry-After` or a
  rate-limit message, 5xx and connection errors are retried with backoff. What still fails
  raises, and the queued task that called it fails and can be retried: no action is lost.
- Events come from GitHub's webhooks (handlers/github.py), not from this class; the one
  exception is an approval given through the bot (Slack, CLI), which GitHub does not know as
  a review: `add_review` records it in the metadata and emits the review event itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import github
import requests
from github.GithubException import GithubException

from bot.forges.base import CheckResult, EventSink, ForgeError, PullRequest
from bot.forges.github_auth import TokenSource, retry_after_seconds
from bot.fsutil import file_lock
from bot.gitrepo import GitError, Workspace
from bot.manifests import CONFIG_PATH, ManifestError, RepoConfig, parse_config
from bot.messages import github as md
from bot.policy import Review
from bot.review import PrStatus, pr_status

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger("aimodel.github")

T = TypeVar("T")

REVIEW_STATES = {"APPROVED": "approved", "CHANGES_REQUESTED": "changes_requested", "COMMENTED": "commented", "DISMISSED": "dismissed"}
CONCLUSION_STATES = {
    "success": "success", "failure": "failure", "neutral": "skipped", "skipped": "skipped",
    "cancelled": "error", "timed_out": "error", "action_required": "failure", "stale": "error",
}
CHECK_NAMES = ("manifest", "scan", "validate", "sign")
NETWORK_COMMANDS = frozenset({"fetch", "push", "clone", "ls-remote", "pull"})


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


# --------------------------------------------------------------------------- rate of writes


class TokenBucket:
    """At most `rate` writes per second on average, `burst` at once; `take` waits its turn."""

    def __init__(self, rate: float = 3.0, burst: float = 5.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait:
            time.sleep(wait)
        return wait


# --------------------------------------------------------------------------- the working clone


class GitHubWorkspace(Workspace):
    """A Workspace whose network commands carry the current token and whose fetches are
    serialized across processes sharing the clone (CLI, web, worker)."""

    def __init__(self, path: Path, default_branch: str, source: TokenSource) -> None:
        super().__init__(path, default_branch)
        self.source = source

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        if args and args[0] in NETWORK_COMMANDS:
            env = {**(env or {}), **self.source.git_env()}
            for attempt in range(4):
                try:
                    return super()._git(*args, env=env)
                except GitError as exc:
                    text = str(exc)
                    transient = any(s in text for s in ("HTTP 5", "HTTP 429", "Could not resolve", "Connection", "timed out", "early EOF", "RPC failed"))
                    auth = "401" in text or "Authentication failed" in text or "Invalid username" in text
                    if auth and attempt == 0:
                        self.source.invalidate()
                        env = {**env, **self.source.git_env()}
                        continue
                    if not transient or attempt == 3:
                        raise
                    time.sleep(0.5 * 2**attempt)
        return super()._git(*args, env=env)

    def fetch(self) -> None:
        with self._fetch_lock, file_lock(self.path / ".git" / "aimodel-fetch.lock"):
            self._git("fetch", "--quiet", "--prune", "origin")

    @classmethod
    def open_or_clone(cls, path: Path, url: Callable[[], str], default_branch: str, source: TokenSource) -> GitHubWorkspace:
        """The clone at `path`, made on first use (under a lock, into a temporary folder
        renamed into place, so a crash never leaves half a clone behind)."""
        if (path / ".git").exists():
            return cls(path, default_branch, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.parent / f".{path.name}.clone.lock"):
            if not (path / ".git").exists():
                partial = path.parent / f".{path.name}.partial"
                if partial.exists():
                    import shutil

                    shutil.rmtree(partial)
                import git

                git.Repo.clone_from(url(), partial, env=source.git_env(), no_checkout=True).close()
                partial.rename(path)
        return cls(path, default_branch, source)


# --------------------------------------------------------------------------- the forge


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
        self.bucket = TokenBucket(writes_per_second, max(1.0, writes_per_second * 2))
        self.max_attempts = max_attempts
        self.gh = github.Github(
            base_url=self.api_url,
            auth=source.pygithub_auth(),
            retry=None,  # retries are ours: see _call
            timeout=timeout,
            seconds_between_requests=None,
            seconds_between_writes=None,  # the token bucket paces writes instead
            user_agent="aimodel-gitops",
        )
        # A repository object that is never fetched (its URL is all the calls below need).
        self.repo = github.Repository.Repository(
            self.gh.requester, attributes={"url": f"{self.api_url}/repos/{repo}", "full_name": repo}, completed=False
        )
        self._primed = threading.local()
        self._run_ids: dict[tuple[str, str], int] = {}
        self._comment_ids: dict[int, int] = {}
        self._configs: dict[str, RepoConfig] = {}
        self._lock = threading.Lock()
        self.retries = 0
        self.waited_for_writes = 0.0
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
        self.gh.close()

    def _call(self, fn: Callable[[], T], *, write: bool = False, what: str = "") -> T:
        """Run one API operation with pacing for writes and retries for what GitHub says is
        temporary (rate limits with Retry-After, 5xx, dropped connections)."""
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            if write:
                self.waited_for_writes += self.bucket.take()
            try:
                return fn()
            except GithubException as exc:
                last = exc
                status = exc.status
                headers = exc.headers or {}
                message = str((exc.data or {}).get("message", "")) if isinstance(exc.data, dict) else ""
                limited = status == 429 or (
                    status == 403 and ("retry-after" in {k.lower() for k in headers} or "rate limit" in message.lower())
                )
                if status == 401 and self.source.is_app and attempt == 0:
                    self.source.invalidate()
                    continue
                if not (limited or status >= 500):
                    raise
                wait = retry_after_seconds(headers, attempt, secondary=status == 403 and "secondary" in message.lower())
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                wait = min(30.0, 0.5 * 2**attempt)
            self.retries += 1
            log.warning("GitHub %s: %s; retrying in %.1fs", what or "call", last, wait)
            time.sleep(wait)
        assert last is not None
        raise last

    def _request(self, verb: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        write = verb in ("POST", "PATCH", "PUT", "DELETE")

        def go() -> Any:
            _headers, data = self.gh.requester.requestJsonAndCheck(verb, path, parameters=params, input=body)
            return data

        return self._call(go, write=write, what=f"{verb} {path}")

    def _api(self, path: str = "") -> str:
        return f"/repos/{self.full_name}{path}"

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
        visible, meta = md.parse_pr_body(p.body)
        state = "merged" if p.merged else ("open" if p.state == "open" else "closed")
        return PullRequest(
            number=p.number, title=p.title, body=visible, author=str(meta.get("author") or p.user.login),
            branch=p.head.ref, base=p.base.ref, head=p.head.sha, state=state, url=p.html_url,
            checks=checks or {}, reviews=reviews or [], merge_commit=(p.merge_commit_sha or "") if p.merged else "",
            meta=meta,
        )

    @staticmethod
    def pr_from_payload(data: Mapping[str, Any]) -> PullRequest:
        """A PullRequest from a webhook's `pull_request` object (no checks, no reviews)."""
        visible, meta = md.parse_pr_body(data.get("body"))
        merged = bool(data.get("merged"))
        return PullRequest(
            number=int(data["number"]), title=str(data.get("title") or ""), body=visible,
            author=str(meta.get("author") or (data.get("user") or {}).get("login", "")),
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

    def _reviews(self, p: Any, meta: Mapping[str, Any]) -> list[Review]:
        config = self.config_at(p.base.sha)
        timed: list[tuple[float, Review]] = []
        for r in self._call(lambda: list(p.get_reviews()), what="list reviews"):
            state = REVIEW_STATES.get(str(r.state).upper())
            if state is None or r.user is None:
                continue
            timed.append((_epoch(r.submitted_at), Review(self.person_of(config, r.user.login), state, r.commit_id or "")))
        for r in meta.get("reviews", []):
            timed.append((float(r.get("at", 0)), Review(str(r["person"]), str(r["state"]), str(r.get("commit", "")))))
        timed.sort(key=lambda item: item[0])
        return [r for _, r in timed]

    def checks_for(self, sha: str, *, include_policy: bool = False) -> dict[str, CheckResult]:
        """The bot's checks on a commit, rebuilt from check runs (App) or statuses (token)."""
        out: dict[str, CheckResult] = {}
        wanted = (*CHECK_NAMES, md.POLICY) if include_policy else CHECK_NAMES
        if self.use_check_runs:
            data = self._request("GET", self._api(f"/commits/{sha}/check-runs"), params={"per_page": 100, "filter": "latest"})
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
            data = self._request("GET", self._api(f"/commits/{sha}/status"), params={"per_page": 100})
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
            p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
        except GithubException as exc:
            if exc.status == 404:
                raise ForgeError(f"there is no pull request #{number} in {self.full_name}") from None
            raise
        _visible, meta = md.parse_pr_body(p.body)
        if p.head.sha not in (meta.get("signed_head"), meta.get("unsigned_head")) and self._bot_signature(p.head.sha):
            p, meta = self._await_signature_meta(number, p, meta)
        checks: dict[str, CheckResult] = {}
        checked = str(meta.get("checked_head") or "")
        if checked and checked != p.head.sha and meta.get("signed_head") == p.head.sha:
            # the head is the bot's signature commit: the results of the commit it signed are
            # carried over to it (Pipeline._carry_over), so they are part of the answer
            checks.update(self.checks_for(checked))
        checks.update(self.checks_for(p.head.sha))
        pr = self._from_github(p, reviews=self._reviews(p, meta), checks=checks)
        if not meta.get("author"):  # opened by a person on GitHub: their name in the config
            pr.author = self.person_of(self.config_at(p.base.sha), p.user.login)
        return pr

    def _bot_signature(self, sha: str) -> bool:
        """A commit the bot made itself on a pull request's branch (the signature commit)."""
        ws = self.workspace
        if ws is None or not ws.has_commit(sha):
            return False
        from bot.gitrepo import BOT

        try:
            return ws.commit_author(sha) == BOT.name
        except (ValueError, GitError):
            return False

    def _await_signature_meta(self, number: int, p: Any, meta: dict[str, Any], timeout: float = 15.0) -> tuple[Any, dict[str, Any]]:
        """GitHub announces the bot's signature commit (synchronize) as soon as it is pushed,
        before the checks record it as signed in the metadata; a run that read the pull request
        in between would check (and sign) that commit once more, and again, and again. Wait
        for the metadata to catch up (or the head to move on)."""
        head = p.head.sha
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
            _visible, meta = md.parse_pr_body(p.body)
            if meta.get("signed_head") == p.head.sha or p.head.sha != head or p.state != "open":
                break
        return p, meta

    def list_prs(self, state: str = "open") -> list[PullRequest]:
        api_state = {"merged": "closed"}.get(state, state)
        pulls = self._call(lambda: list(self.repo.get_pulls(state=api_state, sort="created", direction="asc")), what="list pulls")
        out = []
        for p in pulls:
            pr = self._from_github(p)
            if state in ("all", pr.state) or (state == "closed" and pr.state in ("closed", "merged")):
                if pr.is_open:
                    pr.checks = self.checks_for(pr.head)
                out.append(pr)
        return sorted(out, key=lambda pr: pr.number)

    # ------------------------------------------------------------------ writing pull requests

    def open_pr(self, *, branch: str, head: str, title: str, body: str, author: str, meta: Mapping[str, Any]) -> PullRequest:
        full_meta = {**meta, "author": author, "opened_at": time.time()}
        text = md.render_pr_body(md.pr_description(body, author=author, via=str(meta.get("via", ""))), full_meta)
        try:
            p = self._call(lambda: self.repo.create_pull(base=self.default_branch, head=branch, title=title, body=text), write=True, what="open pull request")
        except GithubException as exc:
            if exc.status != 422 or "already exists" not in str(exc.data):
                raise ForgeError(f"GitHub refused to open the pull request: {_message(exc)}") from None
            found = self._call(lambda: list(self.repo.get_pulls(state="open", head=f"{self.full_name.split('/')[0]}:{branch}")), what="find pull request")
            if not found:
                raise ForgeError(f"GitHub refused to open the pull request: {_message(exc)}") from None
            p = found[0]
        labels = ["aimodel", f"aimodel:{meta.get('verb', 'change')}"]
        try:
            self._call(lambda: p.add_to_labels(*labels), write=True, what="label")
        except GithubException as exc:  # labels are a courtesy; the pull request stands
            log.warning("could not label #%s: %s", p.number, _message(exc))
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
        checked, sign = str(pr.meta.get("checked_head") or ""), pr.meta.get("sign_result")
        if pr.meta.get("signed_head") == head and checked and isinstance(sign, dict):
            # the bot's signature commit: the checked commit's sign run is done, not left running
            done = CheckResult("sign", str(sign.get("state", "success")), str(sign.get("summary", "signed")), str(sign.get("details", "")), checked)
            self.set_check(number, done)
        return pr

    def update_meta(self, number: int, values: Mapping[str, Any]) -> None:
        lock = file_lock(self.home / "github" / "locks" / f"pr-{number}.lock") if self.home else _null_lock()
        with lock:
            p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
            visible, meta = md.parse_pr_body(p.body)
            meta.update(values)
            text = md.render_pr_body(visible, meta)
            self._call(lambda: p.edit(body=text), write=True, what=f"edit #{number}")

    def add_review(self, number: int, review: Review) -> None:
        """An approval given through the bot (Slack, CLI): kept in the metadata, counted like a
        GitHub review, and announced as a review event (GitHub sends none for it)."""
        lock = file_lock(self.home / "github" / "locks" / f"pr-{number}.lock") if self.home else _null_lock()
        with lock:
            p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
            if p.state != "open":
                raise ForgeError(f"pull request #{number} is {'merged' if p.merged else 'closed'}")
            visible, meta = md.parse_pr_body(p.body)
            entry = {"person": review.person, "state": review.state, "commit": review.commit or p.head.sha, "at": time.time()}
            meta["reviews"] = [*meta.get("reviews", []), entry]
            text = md.render_pr_body(visible, meta)
            self._call(lambda: p.edit(body=text), write=True, what=f"edit #{number}")
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
                log.warning("check runs refused (%s); reporting commit statuses instead", _message(exc))
                self.use_check_runs = False
        state = {"skipped": "success"}.get(check.state, check.state)
        if state not in ("pending", "success", "failure", "error"):
            state = "error"
        body = {
            "state": state, "context": md.check_name(name), "description": md.status_description(check),
            "target_url": f"{self.web_url}/pull/{number}",
        }
        self._request("POST", self._api(f"/statuses/{sha}"), body=body)

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
            runs = self._request("GET", self._api(f"/commits/{sha}/check-runs"), params={"check_name": body["name"], "filter": "latest"})
            for run in runs.get("check_runs", []):
                if run.get("status") != "completed":
                    run_id = int(run["id"])
        if check.state == "pending" or run_id is None:
            created = self._request("POST", self._api("/check-runs"), body=body)
            run_id = int(created["id"])
        else:
            patch = {k: v for k, v in body.items() if k not in ("head_sha",)}
            try:
                self._request("PATCH", self._api(f"/check-runs/{run_id}"), body=patch)
            except GithubException as exc:
                if exc.status not in (403, 404):
                    raise
                run_id = int(self._request("POST", self._api("/check-runs"), body=body)["id"])
        with self._lock:
            if len(self._run_ids) > 4096:
                self._run_ids.clear()
            self._run_ids[key] = run_id

    def comment(self, number: int, body: str) -> None:
        """The one summary comment, found by its hidden marker and edited in place."""
        text = body if md.SUMMARY_MARKER in body else f"{md.SUMMARY_MARKER}\n{body}"
        lock = file_lock(self.home / "github" / "locks" / f"comment-{number}.lock") if self.home else _null_lock()
        with lock:
            comment_id = self._comment_ids.get(number)
            if comment_id is None:
                comments = self._request("GET", self._api(f"/issues/{number}/comments"), params={"per_page": 100})
                for c in comments:
                    if md.SUMMARY_MARKER in str(c.get("body") or ""):
                        comment_id = int(c["id"])
                        break
            if comment_id is not None:
                try:
                    self._request("PATCH", self._api(f"/issues/comments/{comment_id}"), body={"body": text})
                    self._comment_ids[number] = comment_id
                    return
                except GithubException as exc:
                    if exc.status != 404:
                        raise
            created = self._request("POST", self._api(f"/issues/{number}/comments"), body={"body": text})
            self._comment_ids[number] = int(created["id"])

    def merge(self, number: int, *, message: str, expected_head: str) -> str:
        title, _, rest = message.partition("\n\n")
        p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
        if p.state != "open":
            raise ForgeError(f"pull request #{number} is {'merged' if p.merged else 'closed'}")
        try:
            self.set_check(number, CheckResult(md.POLICY, "success", "checks green, approvals met: merged by the bot", "", expected_head))
        except GithubException as exc:
            log.warning("could not complete the policy check of #%s: %s", number, _message(exc))
        try:
            status = self._call(
                lambda: p.merge(commit_title=title, commit_message=rest, merge_method="merge", sha=expected_head),
                write=True, what=f"merge #{number}",
            )
        except GithubException as exc:
            if exc.status == 409:
                raise ForgeError(f"pull request #{number} moved while it was being merged; try again") from None
            if exc.status == 405:
                raise ForgeError(f"GitHub cannot merge #{number}: {_message(exc)}") from None
            raise ForgeError(f"GitHub refused to merge #{number}: {_message(exc)}") from None
        self._delete_branch(p.head.ref)
        return str(status.sha)

    def close(self, number: int) -> None:
        p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
        if p.state != "open":
            raise ForgeError(f"pull request #{number} is already {'merged' if p.merged else 'closed'}")
        self._call(lambda: p.edit(state="closed"), write=True, what=f"close #{number}")
        self._delete_branch(p.head.ref)

    def _delete_branch(self, branch: str) -> None:
        try:
            self._request("DELETE", self._api(f"/git/refs/heads/{branch}"))
        except GithubException as exc:
            if exc.status not in (404, 422):  # already gone
                log.warning("could not delete branch %s: %s", branch, _message(exc))

    # ------------------------------------------------------------------ helpers for the handlers

    def forget_signature(self, number: int, head: str) -> None:
        """Before a re-run a person asked for: the signed head's results are computed again
        instead of carried over (the existing signature is verified, not trusted)."""
        p = self._call(lambda: self.repo.get_pull(number), what=f"get #{number}")
        _visible, meta = md.parse_pr_body(p.body)
        if p.state == "open" and meta.get("signed_head") == head:
            self.update_meta(number, {"signed_head": None, "unsigned_head": head})

    def find_pr_for_commit(self, sha: str) -> int | None:
        """The open pull request whose head is `sha` (check_run payloads may not say)."""
        for p in self._call(lambda: list(self.repo.get_pulls(state="open")), what="list pulls"):
            if p.head.sha == sha:
                return int(p.number)
        return None


@contextmanager
def _null_lock() -> Iterator[bool]:
    yield True


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        text = str(data.get("message", ""))
        errors = data.get("errors")
        if errors:
            text += ": " + "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)
        return text or str(exc.status)
    return str(data or exc.status)


MERGE_RE = re.compile(r"^Merge (?:pull request )?#(\d+)\b")


def merged_pr_number(message: str) -> int | None:
    """The pull request a merge commit came from (`Merge #12: ...`, `Merge pull request #12 from ...`)."""
    match = MERGE_RE.match(message or "")
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the summary comment


class GitHubNotifier:
    """Keeps the pull request's one summary comment and its `aimodel/policy` check in step with
    what the bot tells people. What the pull request needs comes from `status` (GitOps.status,
    that is bot.review.pr_status), the same answer every face and the merge read."""

    enabled = True

    def __init__(self, forge: GitHubForge, status: Callable[[PullRequest], PrStatus]) -> None:
        self.forge = forge
        self.status = status

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        number = data.get("pr")
        if number:
            try:
                self._update(int(number), kind, data)
            except Exception:  # the summary is refreshed on the next event; Slack still hears now
                log.exception("could not refresh the summary of #%s on GitHub", number)

    def _update(self, number: int, kind: str, data: dict[str, Any]) -> None:
        # one refresh of a pull request's summary at a time, each reading the state after the
        # previous one wrote: a slow refresh that read older state never overwrites a newer one
        home = self.forge.home
        lock = file_lock(home / "github" / "locks" / f"summary-{number}.lock") if home else _null_lock()
        with lock:
            self._refresh(number, kind, data)

    def _refresh(self, number: int, kind: str, data: dict[str, Any]) -> None:
        forge = self.forge
        pr = forge.get_pr(number)
        try:
            status = self.status(pr)
        except GitError:  # the clone cannot read the commits yet: judged on the next event
            status = pr_status(pr, None)
        checks = list(status.checks.values())
        blockers = list(status.missing)
        approvals = {"by": list(status.approved_by), "missing": blockers}
        if status.judged:
            approvals["can_approve"] = list(status.can_approve_logins)
        policy: CheckResult | None = None
        if pr.state == "merged":
            text = f"Merged as `{pr.merge_commit[:10]}`."
        elif pr.state == "closed":
            text = "Closed without merging; its locks are released."
        elif status.checks_failed:
            text = md.failed_text()
            policy = CheckResult(md.POLICY, "skipped", "blocked: a check failed", "", pr.head)
        elif kind == "ready" or (status.checks_done and not blockers):
            text = md.ready_text(status.auto_merge)
            policy = CheckResult(md.POLICY, "success", "approvals met", "", pr.head)
        elif not status.checks_done:
            text = "⏳ Checks are running."
            policy = CheckResult(md.POLICY, "pending", "waiting for the checks", "", pr.head)
        else:
            text = md.waiting_text(blockers)
            policy = CheckResult(md.POLICY, "failure" if any("requested changes" in b for b in blockers) else "pending", md.policy_summary(blockers), "", pr.head)
        deploy = data.get("deploy") or pr.meta.get("deploy")
        forge.comment(number, md.summary_comment(pr, checks=checks, approvals=approvals, status=text, deploy=deploy))
        if policy is not None and pr.is_open:
            forge.set_check(number, policy)


# --------------------------------------------------------------------------- wiring


def build_github_forge(settings: Settings) -> dict[str, Any]:
    """The forge, the working clone and the summary-comment notifier (made once the Context
    exists) for `AIMODEL_REPO=owner/name`."""
    gh = settings.github
    assert gh is not None
    source = TokenSource(api_url=gh.api_url, repo=gh.repo, token=gh.token, app_id=gh.app_id, app_private_key=gh.app_private_key)
    forge = GitHubForge(repo=gh.repo, api_url=gh.api_url, source=source, home=settings.home, default_branch=settings.default_branch)
    owner, name = gh.repo.split("/", 1)

    def clone_url() -> str:
        data = forge._request("GET", forge._api())
        return str(data.get("clone_url") or forge.clone_url)

    workspace = GitHubWorkspace.open_or_clone(settings.home / "github" / owner / name, clone_url, settings.default_branch, source)
    forge.workspace = workspace

    def summary(ctx: Any) -> GitHubNotifier:
        return GitHubNotifier(forge, ctx.gitops.status)

    return {"forge": forge, "workspace": workspace, "notifiers": [summary]}
