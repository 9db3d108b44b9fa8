"""A stateful stand-in for the GitHub REST API, git hosting and webhook delivery, for tests.

It serves real HTTP on 127.0.0.1 (an OS-chosen port). The REST API lives under the GitHub
Enterprise style prefix ``/api/v3``, so PyGithub works against it unchanged::

    with GitHubStandIn() as gh_api:                       # or .start() / .stop()
        gh_api.create_repo("acme", "models", files={"models/a.yaml": "name: a\n"})
        gh = gh_api.client()      # = Github(base_url=gh_api.api_url, auth=Auth.Token(gh_api.token),
                                  #          seconds_between_requests=None, seconds_between_writes=None)
        pr = gh.get_repo("acme/models").create_pull(base="main", head="x", title="t")
        gh.close()

Git: every repository is a real bare repository in a temporary folder, served over git's smart
HTTP protocol (``git http-backend`` run as CGI) at ``http://127.0.0.1:PORT/<owner>/<name>.git``
(the ``clone_url`` in repo JSON). Git clients authenticate with basic auth
``x-access-token:<token>`` (``.clone_url(owner, name, token)`` embeds it); the token is checked.
Pushes are seen by comparing refs before and after ``git-receive-pack``.

Identities: ``token`` (default ``ghp_standin_default_token``, user ``octo-dev``) is valid from the
start; ``.add_token(token, login)`` adds more users (a reviewer must not be the PR's author: GitHub
refuses to let you approve your own pull request, and so does the stand-in). A GitHub App:
``.register_app(app_id, public_key_pem, installation_id, owner="acme")``; its RS256 JWTs are
verified, ``POST /app/installations/{id}/access_tokens`` issues ``ghs_`` tokens with
``expires_at`` (``.expire_token(t)`` ages one). Check runs need an installation token, as on
GitHub (``GitHubStandIn(pat_check_runs=True)`` relaxes that). Unknown or expired tokens get 401
``{"message": "Bad credentials", "documentation_url": ...}``.

REST endpoints: only those the bot calls (PyGithub and its own requests) and the tests use, all
under ``/repos/{owner}/{repo}`` but the first: ``POST /app/installations/{id}/access_tokens``;
``GET ''``, ``GET /installation``, ``DELETE /git/refs/{r}``; ``POST /statuses/{sha}``,
``GET /commits/{ref}/status`` (combined), ``POST /check-runs``, ``PATCH /check-runs/{id}``,
``GET /commits/{ref}/check-runs``; ``GET|POST /pulls`` (state/head/base filters),
``GET|PATCH /pulls/{n}`` (title, body, base, state open/closed),
``GET|POST /pulls/{n}/reviews`` (APPROVE, REQUEST_CHANGES, COMMENT, pending),
``PUT /pulls/{n}/merge`` (a real merge commit on the base branch; 405 when not mergeable or closed,
409 when ``sha`` is not the head); ``GET /issues/{n}``, ``POST /issues/{n}/labels``,
``GET|POST /issues/{n}/comments``, ``PATCH /issues/comments/{id}``; ``GET|POST /deployments`` (filters sha,
ref, task, environment; newest first; 409 when ``required_contexts`` is left out and a status of the commit is
not success), ``GET|POST /deployments/{id}/statuses`` (description at most 140 characters; ``auto_inactive``
as on GitHub). Lists paginate with ``Link``
headers. Anything else is 404, as for a route GitHub does not have.

Webhooks: ``.add_webhook(owner, name, url, secret, events=None, ping=False)`` (events default
``["*"]``, everything). Deliveries go out from a background thread, signed like GitHub
(``X-Hub-Signature-256: sha256=<hmac>``, ``X-GitHub-Event``, ``X-GitHub-Delivery`` uuid,
``User-Agent: GitHub-Hookshot/...``, JSON body). Sent: ``push`` (any ref change: git push, a
deleted ref, a merge), ``pull_request`` opened / edited / synchronize (head branch moved) /
labeled / closed (``merged`` true or false; also when the head branch is deleted) / reopened,
``pull_request_review`` submitted (review state lowercase, as in webhooks),
``issue_comment`` created / edited, ``check_run`` rerequested
(``.rerequest_check_run(id)``), ``ping``. With a registered app for the owner, payloads carry
``installation``. Inspect with ``.deliveries(event=None)``, block with
``.wait_for(event, action=None, count=1)``, and resend
with ``.redeliver(delivery_id)`` (same X-GitHub-Delivery). ``tests/fixtures/github/`` holds
payloads written by hand from GitHub's documentation; the stand-in's deliveries are checked
against them.

Failure injection: ``.fail_next(method, path_regex, status, headers=None, body=None, times=1)``
answers the next matching request(s) (``method`` ``*`` for any; ``path_regex`` searched in the
full path, e.g. ``/api/v3/repos/acme/models/pulls`` or ``/acme/models.git/git-receive-pack``)
with that status, e.g. a 403 secondary rate limit with ``Retry-After``, a 429, a 502.

Inspection: ``.requests`` ((method, path, status) per request), ``.pulls(o, r)``,
``.reviews(o, r, n)``, ``.check_runs(o, r, sha=None)``, ``.statuses(o, r, sha=None)``,
``.comments(o, r, n=None)``, ``.deployments(o, r)`` (each with its statuses), ``.branch_sha(o, r, b)``,
``.errors`` (exceptions inside the stand-in; answered 500). ``.commit_files(o, r, branch, files)``
commits as someone else would push.

Not covered (the bot does not use them): the rest of the REST API, GraphQL, squash and rebase
merges, forks, branch protection, line review comments, check suites, a deployment's ``auto_merge``
and the ``deployment`` / ``deployment_status`` webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import jwt
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

API_PREFIX = "/api/v3"
ZERO_SHA = "0" * 40
DOCS_URL = "https://docs.github.com/rest"
HOOKSHOT_AGENT = "GitHub-Hookshot/standin"

_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


class ApiError(Exception):
    """Raised by a handler to answer with GitHub's JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.errors:
            out["errors"] = self.errors
        out["documentation_url"] = DOCS_URL
        out["status"] = str(self.status)
        return out


@dataclass
class _Identity:
    """Who a token or JWT speaks for."""

    login: str
    kind: str  # "user" (PAT), "installation" (ghs_ token), "app" (JWT)
    app_id: int | None = None
    installation_id: int | None = None
    expires_at: float | None = None


@dataclass
class _App:
    app_id: int
    public_key_pem: str
    installation_id: int
    slug: str
    name: str
    owner: str
    token_ttl: int
    repos: list[str] = field(default_factory=list)  # full names; empty = all


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: Any
    times: int


@dataclass
class _Hook:
    id: int
    url: str
    secret: str
    events: list[str]
    active: bool = True
    created_at: str = field(default_factory=_now_iso)


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    path: str
    created_at: str
    owner_type: str = "Organization"
    pushed_at: float = field(default_factory=time.time)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)  # each with its "statuses", newest first
    hooks: list[_Hook] = field(default_factory=list)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        return


def _default_failure_body(status: int) -> dict[str, Any]:
    messages = {
        403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        404: "Not Found",
        409: "Conflict",
        422: "Validation Failed",
        429: "API rate limit exceeded for installation.",
        500: "Server Error",
        502: "Server Error",
        503: "Service Unavailable",
    }
    return {
        "message": messages.get(status, "Injected failure"),
        "documentation_url": DOCS_URL,
        "status": str(status),
    }


class GitHubStandIn:
    """A running fake of github.com's REST API, git hosting and webhook delivery.

    :param token: a personal access token that is valid from the start (``self.token``).
    :param login: the user that ``token`` belongs to.
    :param pat_check_runs: GitHub refuses check runs from a personal access token
        ("You must authenticate via a GitHub App."); set True to allow them anyway.
    :param hook_timeout: seconds a webhook receiver may take to answer (GitHub: 10).
    """

    def __init__(
        self,
        token: str = "ghp_standin_default_token",
        login: str = "octo-dev",
        *,
        pat_check_runs: bool = False,
        hook_timeout: float = 10.0,
    ) -> None:
        self.token = token
        self.login = login
        self.pat_check_runs = pat_check_runs
        self.hook_timeout = hook_timeout
        self.requests: list[tuple[str, str, int]] = []
        #: exceptions raised inside the stand-in's handlers (answered with 500); should stay empty
        self.errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._tokens: dict[str, _Identity] = {token: _Identity(login, "user")}
        self._user_ids: dict[str, int] = {}
        self._ids = itertools.count(1001)
        self._repos: dict[str, _Repo] = {}
        self._apps: dict[int, _App] = {}
        self._failures: list[_Failure] = []
        self._deliveries: list[dict[str, Any]] = []
        self._delivery_cond = threading.Condition(self._lock)
        self._hook_queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._tmp: str | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._hook_thread: threading.Thread | None = None
        self.port = 0
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GitHubStandIn:
        if self._server is not None:
            return self
        self._tmp = tempfile.mkdtemp(prefix="github-standin-")
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-standin-http",
            daemon=True,
        )
        self._thread.start()
        self._hook_thread = threading.Thread(
            target=self._hook_worker, name="github-standin-hooks", daemon=True
        )
        self._hook_thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._hook_queue.put(None)
        if self._hook_thread is not None:
            self._hook_thread.join(timeout=self.hook_timeout + 5)
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (html_url and git clone URLs live here)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST API root, for ``Github(base_url=...)``."""
        return f"{self.base_url}{API_PREFIX}"

    # ------------------------------------------------------------------ setup helpers

    def add_token(self, token: str, login: str) -> str:
        """Make ``token`` a valid personal access token of user ``login``."""
        with self._lock:
            self._tokens[token] = _Identity(login, "user")
        return token

    def expire_token(self, token: str) -> None:
        """Make an issued token expired now (to test refresh)."""
        with self._lock:
            ident = self._tokens.get(token)
            if ident is not None:
                ident.expires_at = time.time() - 1

    def clone_url(self, owner: str, name: str, token: str | None = None) -> str:
        """The git URL; with ``token``, credentials are embedded (``x-access-token:TOKEN@``)."""
        if token is None:
            return f"{self.base_url}/{owner}/{name}.git"
        return f"http://x-access-token:{token}@127.0.0.1:{self.port}/{owner}/{name}.git"

    def create_repo(
        self,
        owner: str,
        name: str,
        default_branch: str = "main",
        files: dict[str, str] | None = None,
        *,
        owner_type: str = "Organization",
    ) -> dict[str, Any]:
        """Create a repository backed by a bare git repo.

        ``files`` become the initial commit on ``default_branch``. ``None`` gives a README.md;
        an empty dict gives an empty repository (no branches), as GitHub does.
        """
        if self._tmp is None:
            raise RuntimeError("start() the stand-in first")
        path = os.path.join(self._tmp, "git", owner, f"{name}.git")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _git(None, "init", "--bare", "--quiet", f"--initial-branch={default_branch}", path)
        _git(path, "config", "http.receivepack", "true")
        if files is None:
            files = {"README.md": f"# {name}\n"}
        with self._lock:
            repo = _Repo(
                id=next(self._ids),
                owner=owner,
                name=name,
                default_branch=default_branch,
                path=path,
                created_at=_now_iso(),
                owner_type=owner_type,
            )
            self._repos[repo.full_name.lower()] = repo
        if files:
            sha = _commit_files(
                path, None, files, "Initial commit", author=("Octo Dev", "dev@example.com")
            )
            _git(path, "update-ref", f"refs/heads/{default_branch}", sha)
        return self._repo_json(repo)

    def commit_files(
        self,
        owner: str,
        name: str,
        branch: str,
        files: dict[str, str | None],
        message: str = "Update files",
        *,
        author: tuple[str, str] = ("Octo Dev", "dev@example.com"),
        pusher: str | None = None,
    ) -> str:
        """Commit straight onto ``branch`` (created from the default branch if missing), like a
        push from someone else: fires ``push`` (and ``synchronize``) webhooks. ``None`` deletes
        a file. Returns the new commit sha."""
        repo = self._repo(owner, name)
        with self._lock:
            before = _refs(repo.path)
            parent = before.get(f"refs/heads/{branch}") or before.get(
                f"refs/heads/{repo.default_branch}"
            )
            sha = _commit_files(repo.path, parent, files, message, author=author)
            _git(repo.path, "update-ref", f"refs/heads/{branch}", sha)
            self._after_ref_change(repo, before, pusher or self.login)
        return sha

    def register_app(
        self,
        app_id: int,
        public_key_pem: str | bytes,
        installation_id: int,
        *,
        slug: str = "aimodel-bot",
        name: str = "AIModel Bot",
        owner: str = "acme",
        token_ttl: int = 3600,
        repositories: list[str] | None = None,
    ) -> None:
        """Register a GitHub App whose JWTs (RS256) are verified with ``public_key_pem``, and one
        installation of it. Installation tokens live ``token_ttl`` seconds."""
        if isinstance(public_key_pem, bytes):
            public_key_pem = public_key_pem.decode()
        with self._lock:
            self._apps[app_id] = _App(
                app_id=app_id,
                public_key_pem=public_key_pem,
                installation_id=installation_id,
                slug=slug,
                name=name,
                owner=owner,
                token_ttl=token_ttl,
                repos=[r.lower() for r in repositories or []],
            )

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests whose method matches (``*`` for any) and whose path
        (``/api/v3/...`` or ``/owner/name.git/...``) matches ``path_regex`` (re.search) with
        ``status``. ``body`` defaults to GitHub's JSON error for that status."""
        with self._lock:
            self._failures.append(
                _Failure(
                    method.upper(),
                    re.compile(path_regex),
                    status,
                    dict(headers or {}),
                    body if body is not None else _default_failure_body(status),
                    times,
                )
            )

    def add_webhook(
        self,
        owner: str,
        name: str,
        url: str,
        secret: str,
        events: list[str] | None = None,
        *,
        ping: bool = False,
    ) -> int:
        """Subscribe ``url`` to the repo's events (default all). With ``ping`` a ``ping`` event is
        delivered first, as GitHub does on hook creation. Returns the hook id."""
        repo = self._repo(owner, name)
        with self._lock:
            hook = _Hook(id=next(self._ids), url=url, secret=secret, events=events or ["*"])
            repo.hooks.append(hook)
            if ping:
                payload = {
                    "zen": "Keep it logically awesome.",
                    "hook_id": hook.id,
                    "hook": self._hook_json(repo, hook),
                    "repository": self._repo_json(repo),
                    "sender": self._user(self.login),
                }
                self._enrich(repo, payload)
                self._enqueue(repo, hook, "ping", payload)
        return hook.id

    def rerequest_check_run(self, check_run_id: int, sender: str | None = None) -> None:
        """Act like a person clicking "Re-run" on a check run: a ``check_run`` ``rerequested``
        webhook."""
        with self._lock:
            for repo in self._repos.values():
                run = repo.check_runs.get(check_run_id)
                if run is not None:
                    payload = {
                        "action": "rerequested",
                        "check_run": self._check_run_json(repo, run),
                        "repository": self._repo_json(repo),
                        "sender": self._user(sender or self.login),
                    }
                    self._emit(repo, "check_run", payload)
                    return
        raise KeyError(check_run_id)

    # ------------------------------------------------------------------ inspection

    def repo_path(self, owner: str, name: str) -> str:
        """The bare repository on disk (tests read a branch's files with git)."""
        return self._repo(owner, name).path

    def branch_sha(self, owner: str, name: str, branch: str) -> str | None:
        return _refs(self._repo(owner, name).path).get(f"refs/heads/{branch}")

    def pulls(self, owner: str, name: str) -> list[dict[str, Any]]:
        repo = self._repo(owner, name)
        with self._lock:
            return [self._pr_json(repo, pr) for pr in repo.pulls.values()]

    def reviews(self, owner: str, name: str, number: int) -> list[dict[str, Any]]:
        repo = self._repo(owner, name)
        with self._lock:
            pr = repo.pulls[number]
            return [self._review_json(repo, pr, r) for r in pr["reviews"]]

    def check_runs(self, owner: str, name: str, sha: str | None = None) -> list[dict[str, Any]]:
        repo = self._repo(owner, name)
        with self._lock:
            return [
                self._check_run_json(repo, r)
                for r in repo.check_runs.values()
                if sha is None or r["head_sha"] == sha
            ]

    def statuses(self, owner: str, name: str, sha: str | None = None) -> list[dict[str, Any]]:
        repo = self._repo(owner, name)
        with self._lock:
            out: list[dict[str, Any]] = []
            for s, items in repo.statuses.items():
                if sha is None or s == sha:
                    out.extend(dict(i) for i in items)
            return out

    def deployments(self, owner: str, name: str) -> list[dict[str, Any]]:
        """Every deployment, oldest first, each with its ``statuses`` (oldest first)."""
        repo = self._repo(owner, name)
        with self._lock:
            return [
                {**self._deployment_json(repo, d), "statuses": [self._deployment_status_json(repo, d, st) for st in reversed(d["statuses"])]}
                for d in sorted(repo.deployments.values(), key=lambda d: d["id"])
            ]

    def comments(self, owner: str, name: str, number: int | None = None) -> list[dict[str, Any]]:
        repo = self._repo(owner, name)
        with self._lock:
            return [
                self._comment_json(repo, c)
                for c in repo.comments.values()
                if number is None or c["number"] == number
            ]

    def deliveries(self, event: str | None = None) -> list[dict[str, Any]]:
        """Every webhook delivery so far (oldest first): ``id`` (X-GitHub-Delivery), ``event``,
        ``action``, ``payload`` (parsed), ``body`` (bytes as sent), ``headers``, ``url``,
        ``status_code`` (None until answered, or on a connection error), ``error``,
        ``redelivery``, ``duration``, ``delivered``."""
        with self._lock:
            return [dict(d) for d in self._deliveries if event is None or d["event"] == event]

    def wait_for(
        self, event: str, action: str | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Block until ``count`` deliveries of ``event`` (and ``action``) have been attempted;
        return those deliveries."""
        deadline = time.monotonic() + timeout
        with self._delivery_cond:
            while True:
                found = [
                    dict(d)
                    for d in self._deliveries
                    if d["delivered"]
                    and d["event"] == event
                    and (action is None or d["action"] == action)
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} {event}/{action} deliveries after {timeout}s: "
                        f"{[(d['event'], d['action']) for d in self._deliveries]}"
                    )
                self._delivery_cond.wait(left)

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        """A PyGithub ``Github`` for this stand-in (``token`` defaults to ``self.token``), with
        PyGithub's politeness pauses between requests off so tests run fast. Close it."""
        import github

        kwargs.setdefault("seconds_between_requests", None)
        kwargs.setdefault("seconds_between_writes", None)
        return github.Github(
            base_url=self.api_url, auth=github.Auth.Token(token or self.token), **kwargs
        )

    def redeliver(self, delivery_id: str) -> None:
        """Send a past delivery again with the same X-GitHub-Delivery (as GitHub's "Redeliver")."""
        with self._lock:
            for d in self._deliveries:
                if d["id"] == delivery_id:
                    record = {
                        **d,
                        "redelivery": True,
                        "status_code": None,
                        "error": None,
                        "delivered": False,
                        "duration": None,
                    }
                    self._deliveries.append(record)
                    self._hook_queue.put(record)
                    return
        raise KeyError(delivery_id)

    # ------------------------------------------------------------------ WSGI entry

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "") or "/"
        status, headers, body = self._dispatch(method, path, environ)
        with self._lock:
            self.requests.append((method, path, status))
        reason = _REASONS.get(status, "Unknown")
        start_response(f"{status} {reason}", list(headers.items()))
        return [body]

    def _dispatch(
        self, method: str, path: str, environ: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        failure = self._take_failure(method, path)
        if failure is not None:
            headers = {"Content-Type": "application/json; charset=utf-8", **failure.headers}
            body = failure.body
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            return failure.status, headers, raw
        if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
            return self._api(method, path[len(API_PREFIX) :] or "/", environ)
        m = re.match(
            r"^/([^/]+)/([^/]+?)(?:\.git)?(/info/refs|/git-upload-pack|/git-receive-pack)$", path
        )
        if m:
            return self._git_http(method, m.group(1), m.group(2), m.group(3), environ)
        return 404, {"Content-Type": "text/plain"}, b"Not Found"

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for f in self._failures:
                if f.method in ("*", method) and f.pattern.search(path):
                    f.times -= 1
                    if f.times <= 0:
                        self._failures.remove(f)
                    return f
        return None

    # ------------------------------------------------------------------ auth

    def _authenticate(self, environ: dict[str, Any]) -> _Identity:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise ApiError(401, "Requires authentication")
        scheme, _, cred = header.partition(" ")
        scheme = scheme.lower()
        cred = cred.strip()
        if scheme == "basic":
            try:
                user, _, pw = base64.b64decode(cred).decode().partition(":")
            except Exception as exc:
                raise ApiError(401, "Bad credentials") from exc
            cred = pw or user
            scheme = "token"
        if scheme not in ("token", "bearer"):
            raise ApiError(401, "Bad credentials")
        if cred.count(".") == 2 and scheme == "bearer":
            return self._verify_jwt(cred)
        with self._lock:
            ident = self._tokens.get(cred)
        if ident is None or (ident.expires_at is not None and ident.expires_at < time.time()):
            raise ApiError(401, "Bad credentials")
        return ident

    def _verify_jwt(self, token: str) -> _Identity:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            app = self._apps.get(int(claims.get("iss")))
        except Exception as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        if app is None:
            raise ApiError(401, "Integration not found")
        try:
            jwt.decode(
                token,
                key=app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=60,
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future "
                "time at which the assertion expires",
            ) from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        if claims["exp"] - claims["iat"] > 600 + 60:
            raise ApiError(
                401,
                "'Expiration time' claim ('exp') is too far in the future",
            )
        return _Identity(f"{app.slug}[bot]", "app", app_id=app.app_id)

    # ------------------------------------------------------------------ git smart HTTP

    def _git_http(
        self, method: str, owner: str, name: str, service_path: str, environ: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        challenge = {"WWW-Authenticate": 'Basic realm="GitHub"', "Content-Type": "text/plain"}
        try:
            ident = self._authenticate(environ)
        except ApiError:
            return 401, challenge, b"Invalid username or token.\n"
        if ident.kind == "app":
            return 401, challenge, b"Invalid username or token.\n"
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None or not self._may_access(ident, repo):
            return 404, {"Content-Type": "text/plain"}, b"Repository not found.\n"
        body = _read_body(environ)
        qs = environ.get("QUERY_STRING", "")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self._tmp or "/tmp",
            "GIT_PROJECT_ROOT": os.path.join(self._tmp or "", "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH_INFO": f"/{repo.owner}/{repo.name}.git{service_path}",
            "REQUEST_METHOD": method,
            "QUERY_STRING": qs,
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": ident.login,
            "REMOTE_ADDR": "127.0.0.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for key in ("HTTP_GIT_PROTOCOL", "HTTP_CONTENT_ENCODING"):
            if environ.get(key):
                env[key] = environ[key]
        if environ.get("HTTP_GIT_PROTOCOL"):
            env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
        if service_path == "/git-receive-pack" and method == "POST":
            with self._lock:
                before = _refs(repo.path)
                out = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                ).stdout
                self._after_ref_change(repo, before, ident.login)
        else:
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            ).stdout
        return _parse_cgi(out)

    # ------------------------------------------------------------------ ref changes -> events

    def _after_ref_change(self, repo: _Repo, before: dict[str, str], actor: str) -> None:
        """Compare refs with ``before`` and emit push / pull_request events (lock held)."""
        after = _refs(repo.path)
        changed = [
            (ref, before.get(ref, ZERO_SHA), after.get(ref, ZERO_SHA))
            for ref in sorted(set(before) | set(after))
            if before.get(ref) != after.get(ref)
        ]
        if not changed:
            return
        repo.pushed_at = time.time()
        for ref, old, new in changed:
            self._emit(repo, "push", self._push_payload(repo, ref, old, new, actor, after))
            if not ref.startswith("refs/heads/"):
                continue
            branch = ref[len("refs/heads/") :]
            for pr in repo.pulls.values():
                if pr["state"] != "open" or pr["head_ref"] != branch:
                    continue
                if new == ZERO_SHA:
                    # GitHub closes a pull request whose head branch is deleted.
                    pr["head_sha"] = old
                    self._close_pr(repo, pr, actor, merged=False)
                    continue
                pr["head_sha"] = new
                pr["updated_at"] = _now_iso()
                payload = self._pr_event(repo, pr, "synchronize", actor)
                payload["before"] = old
                payload["after"] = new
                self._emit(repo, "pull_request", payload)

    def _push_payload(
        self, repo: _Repo, ref: str, old: str, new: str, actor: str, refs_now: dict[str, str]
    ) -> dict[str, Any]:
        created, deleted = old == ZERO_SHA, new == ZERO_SHA
        commits: list[dict[str, Any]] = []
        forced = False
        if not deleted:
            others = [s for r, s in refs_now.items() if r != ref]
            if created:
                shas = _git(repo.path, "rev-list", "--reverse", new, "--not", *others).split()
                distinct = set(shas)
            else:
                shas = _git(repo.path, "rev-list", "--reverse", f"{old}..{new}").split()
                forced = not _is_ancestor(repo.path, old, new)
                # GitHub marks commits already pushed to another branch as not distinct
                distinct = set(_git(repo.path, "rev-list", new, "--not", old, *others).split())
            commits = [self._push_commit(repo, s, s in distinct) for s in shas[-20:]]
        head_commit = (
            None if deleted else (commits[-1] if commits else self._push_commit(repo, new))
        )
        html = self._html(repo)
        compare = f"{html}/commit/{new}" if created else f"{html}/compare/{old[:12]}...{new[:12]}"
        sender = self._user(actor)
        payload: dict[str, Any] = {
            "ref": ref,
            "before": old,
            "after": new,
            "repository": self._repo_json(repo, push_style=True),
            "pusher": {"name": actor, "email": f"{actor}@users.noreply.github.com"},
            "sender": sender,
            "created": created,
            "deleted": deleted,
            "forced": forced,
            "base_ref": None,
            "compare": compare,
            "commits": commits,
            "head_commit": head_commit,
        }
        return payload

    def _push_commit(self, repo: _Repo, sha: str, distinct: bool = True) -> dict[str, Any]:
        info = _commit_info(repo.path, sha)
        added, removed, modified = [], [], []
        parent = info["parents"][0] if info["parents"] else None
        args = ["diff-tree", "-r", "--no-commit-id", "--name-status"]
        out = (
            _git(repo.path, *args, parent, sha) if parent else _git(repo.path, *args, "--root", sha)
        )
        for line in out.splitlines():
            status, _, fname = line.partition("\t")
            {"A": added, "D": removed}.get(status[:1], modified).append(fname)
        return {
            "id": sha,
            "tree_id": info["tree"],
            "distinct": distinct,
            "message": info["message"],
            "timestamp": info["author"]["date"],
            "url": f"{self._html(repo)}/commit/{sha}",
            "author": {
                "name": info["author"]["name"],
                "email": info["author"]["email"],
                "username": info["author"]["name"],
            },
            "committer": {
                "name": info["committer"]["name"],
                "email": info["committer"]["email"],
                "username": info["committer"]["name"],
            },
            "added": added,
            "removed": removed,
            "modified": modified,
        }

    # ------------------------------------------------------------------ webhooks

    def _emit(self, repo: _Repo, event: str, payload: dict[str, Any]) -> None:
        """Queue ``event`` for every hook of ``repo`` that wants it (lock held)."""
        self._enrich(repo, payload)
        for hook in repo.hooks:
            if hook.active and ("*" in hook.events or event in hook.events):
                self._enqueue(repo, hook, event, payload)

    def _enrich(self, repo: _Repo, payload: dict[str, Any]) -> None:
        """Add ``installation`` and ``organization`` as GitHub does for app / org repos."""
        inst = self._installation_for(repo)
        if inst is not None and "installation" not in payload:
            payload["installation"] = {
                "id": inst.installation_id,
                "node_id": _node_id("IntegrationInstallation", inst.installation_id),
            }
        if repo.owner_type == "Organization" and "organization" not in payload:
            payload["organization"] = self._org_json(repo.owner)

    def _org_json(self, login: str) -> dict[str, Any]:
        uid = self._user_id(login)
        api = f"{self.api_url}/orgs/{quote(login)}"
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("Organization", uid),
            "url": api,
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks",
            "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"{self.base_url}/avatars/u/{uid}?v=4",
            "description": None,
        }

    def _enqueue(self, repo: _Repo, hook: _Hook, event: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()  # GitHub sends it minified
        delivery_id = str(uuid.uuid4())
        sig256 = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        sig1 = hmac.new(hook.secret.encode(), body, hashlib.sha1).hexdigest()
        headers = {
            "User-Agent": HOOKSHOT_AGENT,
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-ID": str(repo.id),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-Hub-Signature": f"sha1={sig1}",
            "X-Hub-Signature-256": f"sha256={sig256}",
        }
        record = {
            "id": delivery_id,
            "hook_id": hook.id,
            "url": hook.url,
            "event": event,
            "action": payload.get("action"),
            "payload": payload,
            "body": body,
            "headers": headers,
            "status_code": None,
            "response_body": None,
            "error": None,
            "redelivery": False,
            "delivered": False,
            "duration": None,
        }
        self._deliveries.append(record)
        self._hook_queue.put(record)

    def _hook_worker(self) -> None:
        with requests.Session() as session:
            while True:
                record = self._hook_queue.get()
                if record is None:
                    return
                started = time.monotonic()
                status: int | None = None
                error: str | None = None
                text: str | None = None
                try:
                    with session.post(
                        record["url"],
                        data=record["body"],
                        headers=record["headers"],
                        timeout=self.hook_timeout,
                    ) as resp:
                        status = resp.status_code
                        text = resp.text[:2000]
                except requests.RequestException as exc:
                    error = f"{type(exc).__name__}: {exc}"
                with self._delivery_cond:
                    record["status_code"] = status
                    record["response_body"] = text
                    record["error"] = error
                    record["duration"] = time.monotonic() - started
                    record["delivered"] = True
                    self._delivery_cond.notify_all()

    def _hook_json(self, repo: _Repo, hook: _Hook) -> dict[str, Any]:
        url = f"{self._api_repo_url(repo)}/hooks/{hook.id}"
        return {
            "type": "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": hook.events,
            "config": {
                "content_type": "json",
                "url": hook.url,
                "insecure_ssl": "0",
                **({"secret": "********"} if hook.secret else {}),
            },
            "updated_at": hook.created_at,
            "created_at": hook.created_at,
            "url": url,
            "test_url": f"{url}/test",
            "ping_url": f"{url}/pings",
            "deliveries_url": f"{url}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        }

    # ------------------------------------------------------------------ JSON builders

    def _user_id(self, login: str) -> int:
        with self._lock:
            if login not in self._user_ids:
                self._user_ids[login] = 100000 + len(self._user_ids) * 7 + 1
            return self._user_ids[login]

    def _user(self, login: str, type_: str | None = None) -> dict[str, Any]:
        uid = self._user_id(login)
        api = f"{self.api_url}/users/{quote(login)}"
        if type_ is None:
            type_ = "Bot" if login.endswith("[bot]") else "User"
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("User", uid),
            "avatar_url": f"{self.base_url}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.base_url}/{quote(login)}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": type_,
            "site_admin": False,
        }

    def _api_repo_url(self, repo: _Repo) -> str:
        return f"{self.api_url}/repos/{repo.owner}/{repo.name}"

    def _html(self, repo: _Repo) -> str:
        return f"{self.base_url}/{repo.owner}/{repo.name}"

    def _repo_json(self, repo: _Repo, *, push_style: bool = False) -> dict[str, Any]:
        u = self._api_repo_url(repo)
        html = self._html(repo)
        open_count = sum(1 for p in repo.pulls.values() if p["state"] == "open")
        owner = self._user(repo.owner, repo.owner_type)
        if push_style:
            owner = {"name": repo.owner, "email": None, **owner}
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": owner,
            "html_url": html,
            "description": None,
            "fork": False,
            "url": html if push_style else u,
            "forks_url": f"{u}/forks",
            "keys_url": f"{u}/keys{{/key_id}}",
            "collaborators_url": f"{u}/collaborators{{/collaborator}}",
            "teams_url": f"{u}/teams",
            "hooks_url": f"{u}/hooks",
            "issue_events_url": f"{u}/issues/events{{/number}}",
            "events_url": f"{u}/events",
            "assignees_url": f"{u}/assignees{{/user}}",
            "branches_url": f"{u}/branches{{/branch}}",
            "tags_url": f"{u}/tags",
            "blobs_url": f"{u}/git/blobs{{/sha}}",
            "git_tags_url": f"{u}/git/tags{{/sha}}",
            "git_refs_url": f"{u}/git/refs{{/sha}}",
            "trees_url": f"{u}/git/trees{{/sha}}",
            "statuses_url": f"{u}/statuses/{{sha}}",
            "languages_url": f"{u}/languages",
            "stargazers_url": f"{u}/stargazers",
            "contributors_url": f"{u}/contributors",
            "subscribers_url": f"{u}/subscribers",
            "subscription_url": f"{u}/subscription",
            "commits_url": f"{u}/commits{{/sha}}",
            "git_commits_url": f"{u}/git/commits{{/sha}}",
            "comments_url": f"{u}/comments{{/number}}",
            "issue_comment_url": f"{u}/issues/comments{{/number}}",
            "contents_url": f"{u}/contents/{{+path}}",
            "compare_url": f"{u}/compare/{{base}}...{{head}}",
            "merges_url": f"{u}/merges",
            "archive_url": f"{u}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{u}/downloads",
            "issues_url": f"{u}/issues{{/number}}",
            "pulls_url": f"{u}/pulls{{/number}}",
            "milestones_url": f"{u}/milestones{{/number}}",
            "notifications_url": f"{u}/notifications{{?since,all,participating}}",
            "labels_url": f"{u}/labels{{/name}}",
            "releases_url": f"{u}/releases{{/id}}",
            "deployments_url": f"{u}/deployments",
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": _iso(repo.pushed_at),
            "git_url": f"git://127.0.0.1:{self.port}/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": None,
            "allow_forking": False,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "default_branch": repo.default_branch,
        }
        if push_style:
            created = datetime.strptime(repo.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            data["created_at"] = int(created.timestamp())
            data["pushed_at"] = int(repo.pushed_at)
            data["stargazers"] = 0
            data["master_branch"] = repo.default_branch
            data["organization"] = repo.owner
        return data

    def _full_repo_json(self, repo: _Repo, ident: _Identity | None) -> dict[str, Any]:
        data = self._repo_json(repo)
        admin = ident is not None and ident.kind == "user"
        data["permissions"] = {
            "admin": admin,
            "maintain": admin,
            "push": True,
            "triage": True,
            "pull": True,
        }
        data.update(
            {
                "allow_squash_merge": True,
                "allow_merge_commit": True,
                "allow_rebase_merge": False,
                "allow_auto_merge": False,
                "delete_branch_on_merge": False,
                "network_count": 0,
                "subscribers_count": 0,
            }
        )
        if repo.owner_type == "Organization":
            data["organization"] = self._user(repo.owner, "Organization")
        return data

    def _pr_head_base(self, repo: _Repo, pr: dict[str, Any]) -> tuple[str, str]:
        """Current head and base shas (live while open, frozen once closed)."""
        if pr["state"] == "open":
            refs = _refs(repo.path)
            head = refs.get(f"refs/heads/{pr['head_ref']}", pr["head_sha"])
            base = refs.get(f"refs/heads/{pr['base_ref']}", pr["base_sha"])
            pr["head_sha"], pr["base_sha"] = head, base
        return pr["head_sha"], pr["base_sha"]

    def _mergeable(self, repo: _Repo, pr: dict[str, Any]) -> tuple[bool | None, str]:
        if pr["merged"] or pr["state"] != "open":
            return None, "unknown"
        head, base = self._pr_head_base(repo, pr)
        clean, _ = _merge_tree(repo.path, base, head)
        if not clean:
            return False, "dirty"
        if pr["draft"]:
            return True, "draft"
        return True, "clean"

    def _pr_json(
        self, repo: _Repo, pr: dict[str, Any], *, full: bool = True
    ) -> dict[str, Any]:
        u = self._api_repo_url(repo)
        n = pr["number"]
        html = f"{self._html(repo)}/pull/{n}"
        head, base = self._pr_head_base(repo, pr)
        owner_user = self._user(repo.owner, repo.owner_type)
        repo_json = self._repo_json(repo)
        data: dict[str, Any] = {
            "url": f"{u}/pulls/{n}",
            "id": pr["id"],
            "node_id": _node_id("PullRequest", pr["id"]),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{u}/issues/{n}",
            "number": n,
            "state": pr["state"],
            "locked": False,
            "title": pr["title"],
            "user": self._user(pr["user"]),
            "body": pr["body"],
            "created_at": pr["created_at"],
            "updated_at": pr["updated_at"],
            "closed_at": pr["closed_at"],
            "merged_at": pr["merged_at"],
            "merge_commit_sha": pr["merge_commit_sha"],
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [self._label_json(repo, name) for name in pr["labels"]],
            "milestone": None,
            "draft": pr["draft"],
            "commits_url": f"{u}/pulls/{n}/commits",
            "review_comments_url": f"{u}/pulls/{n}/comments",
            "review_comment_url": f"{u}/pulls/comments{{/number}}",
            "comments_url": f"{u}/issues/{n}/comments",
            "statuses_url": f"{u}/statuses/{head}",
            "head": {
                "label": f"{repo.owner}:{pr['head_ref']}",
                "ref": pr["head_ref"],
                "sha": head,
                "user": owner_user,
                "repo": repo_json,
            },
            "base": {
                "label": f"{repo.owner}:{pr['base_ref']}",
                "ref": pr["base_ref"],
                "sha": base,
                "user": owner_user,
                "repo": repo_json,
            },
            "_links": {
                "self": {"href": f"{u}/pulls/{n}"},
                "html": {"href": html},
                "issue": {"href": f"{u}/issues/{n}"},
                "comments": {"href": f"{u}/issues/{n}/comments"},
                "review_comments": {"href": f"{u}/pulls/{n}/comments"},
                "review_comment": {"href": f"{u}/pulls/comments{{/number}}"},
                "commits": {"href": f"{u}/pulls/{n}/commits"},
                "statuses": {"href": f"{u}/statuses/{head}"},
            },
            "author_association": "MEMBER",
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if full:
            mergeable, mstate = self._mergeable(repo, pr)
            merge_base = _merge_base(repo.path, base, head) or base
            stats = _diff_stats(repo.path, merge_base, head)
            ncommits = (
                len(_git(repo.path, "rev-list", f"{base}..{head}").split())
                if not pr["merged"]
                else pr["commit_count"]
            )
            data.update(
                {
                    "merged": pr["merged"],
                    "mergeable": mergeable,
                    "rebaseable": False if mergeable is not None else None,
                    "mergeable_state": mstate,
                    "merged_by": self._user(pr["merged_by"]) if pr["merged_by"] else None,
                    "comments": sum(1 for c in repo.comments.values() if c["number"] == n),
                    "review_comments": 0,
                    "maintainer_can_modify": False,
                    "commits": ncommits,
                    "additions": sum(s[0] for s in stats),
                    "deletions": sum(s[1] for s in stats),
                    "changed_files": len(stats),
                }
            )
        return data

    def _pr_event(self, repo: _Repo, pr: dict[str, Any], action: str, actor: str) -> dict[str, Any]:
        return {
            "action": action,
            "number": pr["number"],
            "pull_request": self._pr_json(repo, pr),
            "repository": self._repo_json(repo),
            "sender": self._user(actor),
        }

    def _issue_json(self, repo: _Repo, pr: dict[str, Any]) -> dict[str, Any]:
        u = self._api_repo_url(repo)
        n = pr["number"]
        return {
            "url": f"{u}/issues/{n}",
            "repository_url": u,
            "labels_url": f"{u}/issues/{n}/labels{{/name}}",
            "comments_url": f"{u}/issues/{n}/comments",
            "events_url": f"{u}/issues/{n}/events",
            "html_url": f"{self._html(repo)}/pull/{n}",
            "id": pr["id"] + 500000,
            "node_id": _node_id("Issue", pr["id"]),
            "number": n,
            "title": pr["title"],
            "user": self._user(pr["user"]),
            "labels": [self._label_json(repo, name) for name in pr["labels"]],
            "state": pr["state"],
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": sum(1 for c in repo.comments.values() if c["number"] == n),
            "created_at": pr["created_at"],
            "updated_at": pr["updated_at"],
            "closed_at": pr["closed_at"],
            "author_association": "MEMBER",
            "active_lock_reason": None,
            "draft": pr["draft"],
            "pull_request": {
                "url": f"{u}/pulls/{n}",
                "html_url": f"{self._html(repo)}/pull/{n}",
                "diff_url": f"{self._html(repo)}/pull/{n}.diff",
                "patch_url": f"{self._html(repo)}/pull/{n}.patch",
                "merged_at": pr["merged_at"],
            },
            "body": pr["body"],
            "state_reason": None,
        }

    def _label_json(self, repo: _Repo, name: str) -> dict[str, Any]:
        label = repo.labels.get(name)
        if label is None:
            lid = next(self._ids)
            label = {
                "id": lid,
                "node_id": _node_id("Label", lid),
                "url": f"{self._api_repo_url(repo)}/labels/{quote(name)}",
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }
            repo.labels[name] = label
        return dict(label)

    def _review_json(self, repo: _Repo, pr: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
        pr_url = f"{self._api_repo_url(repo)}/pulls/{pr['number']}"
        html = f"{self._html(repo)}/pull/{pr['number']}#pullrequestreview-{r['id']}"
        return {
            "id": r["id"],
            "node_id": _node_id("PullRequestReview", r["id"]),
            "user": self._user(r["user"]),
            "body": r["body"],
            "commit_id": r["commit_id"],
            "submitted_at": r["submitted_at"],
            "state": r["state"],
            "html_url": html,
            "pull_request_url": pr_url,
            "author_association": "MEMBER",
            "_links": {"html": {"href": html}, "pull_request": {"href": pr_url}},
        }

    def _comment_json(self, repo: _Repo, c: dict[str, Any]) -> dict[str, Any]:
        u = self._api_repo_url(repo)
        return {
            "url": f"{u}/issues/comments/{c['id']}",
            "html_url": f"{self._html(repo)}/pull/{c['number']}#issuecomment-{c['id']}",
            "issue_url": f"{u}/issues/{c['number']}",
            "id": c["id"],
            "node_id": _node_id("IssueComment", c["id"]),
            "user": self._user(c["user"]),
            "created_at": c["created_at"],
            "updated_at": c["updated_at"],
            "author_association": "MEMBER",
            "body": c["body"],
            "performed_via_github_app": None,
        }

    def _app_json(self, app: _App) -> dict[str, Any]:
        return {
            "id": app.app_id,
            "slug": app.slug,
            "node_id": _node_id("Integration", app.app_id),
            "client_id": f"Iv1.{app.app_id:016x}",
            "owner": self._user(app.owner, "Organization"),
            "name": app.name,
            "description": "",
            "external_url": self.base_url,
            "html_url": f"{self.base_url}/apps/{app.slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {
                "checks": "write",
                "contents": "write",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
                "statuses": "write",
            },
            "events": ["check_run", "pull_request", "pull_request_review", "push"],
            "installations_count": 1,
        }

    def _installation_json(self, app: _App) -> dict[str, Any]:
        iid = app.installation_id
        return {
            "id": iid,
            "account": self._user(app.owner, "Organization"),
            "repository_selection": "selected" if app.repos else "all",
            "access_tokens_url": f"{self.api_url}/app/installations/{iid}/access_tokens",
            "repositories_url": f"{self.api_url}/installation/repositories",
            "html_url": f"{self.base_url}/organizations/{app.owner}/settings/installations/{iid}",
            "app_id": app.app_id,
            "app_slug": app.slug,
            "target_id": self._user_id(app.owner),
            "target_type": "Organization",
            "permissions": self._app_json(app)["permissions"],
            "events": self._app_json(app)["events"],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def _installation_for(self, repo: _Repo) -> _App | None:
        for app in self._apps.values():
            if app.owner.lower() == repo.owner.lower() and (
                not app.repos or repo.full_name.lower() in app.repos
            ):
                return app
        return None

    def _check_run_json(self, repo: _Repo, r: dict[str, Any]) -> dict[str, Any]:
        u = self._api_repo_url(repo)
        app = self._apps.get(r["app_id"]) if r["app_id"] else None
        app_json = self._app_json(app) if app else None
        prs = [
            {
                "url": f"{u}/pulls/{p['number']}",
                "id": p["id"],
                "number": p["number"],
                "head": {
                    "ref": p["head_ref"],
                    "sha": p["head_sha"],
                    "repo": {"id": repo.id, "url": u, "name": repo.name},
                },
                "base": {
                    "ref": p["base_ref"],
                    "sha": p["base_sha"],
                    "repo": {"id": repo.id, "url": u, "name": repo.name},
                },
            }
            for p in repo.pulls.values()
            if p["state"] == "open" and p["head_sha"] == r["head_sha"]
        ]
        output = r["output"]
        return {
            "id": r["id"],
            "head_sha": r["head_sha"],
            "node_id": _node_id("CheckRun", r["id"]),
            "external_id": r["external_id"],
            "url": f"{u}/check-runs/{r['id']}",
            "html_url": f"{self._html(repo)}/runs/{r['id']}",
            "details_url": r["details_url"],
            "status": r["status"],
            "conclusion": r["conclusion"],
            "started_at": r["started_at"],
            "completed_at": r["completed_at"],
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(output.get("annotations") or []),
                "annotations_url": f"{u}/check-runs/{r['id']}/annotations",
            },
            "name": r["name"],
            "check_suite": {
                "id": r["suite_id"],
                "head_branch": r["head_branch"],
                "head_sha": r["head_sha"],
                "status": r["status"],
                "conclusion": r["conclusion"],
                "url": f"{u}/check-suites/{r['suite_id']}",
                "before": None,
                "after": r["head_sha"],
                "pull_requests": prs,
                "app": app_json,
                "created_at": r["started_at"],
                "updated_at": r["completed_at"] or r["started_at"],
            },
            "app": app_json,
            "pull_requests": prs,
        }

    # ------------------------------------------------------------------ API dispatch

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Any]]:
        R = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        table = [  # only what the bot (PyGithub + its own requests) and the tests call
            ("POST", r"/app/installations/(?P<iid>\d+)/access_tokens", self._h_access_token),
            ("GET", R, self._h_repo),
            ("GET", R + r"/installation", self._h_repo_installation),
            ("DELETE", R + r"/git/refs/(?P<ref>.+)", self._h_delete_ref),
            ("GET", R + r"/commits/(?P<ref>[^/]+)/status", self._h_combined_status),
            ("GET", R + r"/commits/(?P<ref>[^/]+)/check-runs", self._h_list_check_runs),
            ("POST", R + r"/statuses/(?P<sha>[0-9a-f]{40})", self._h_create_status),
            ("POST", R + r"/check-runs", self._h_create_check_run),
            ("PATCH", R + r"/check-runs/(?P<cid>\d+)", self._h_update_check_run),
            ("GET", R + r"/deployments", self._h_list_deployments),
            ("POST", R + r"/deployments", self._h_create_deployment),
            ("GET", R + r"/deployments/(?P<did>\d+)/statuses", self._h_list_deployment_statuses),
            ("POST", R + r"/deployments/(?P<did>\d+)/statuses", self._h_create_deployment_status),
            ("GET", R + r"/pulls", self._h_list_pulls),
            ("POST", R + r"/pulls", self._h_create_pull),
            ("GET", R + r"/pulls/(?P<n>\d+)", self._h_get_pull),
            ("PATCH", R + r"/pulls/(?P<n>\d+)", self._h_update_pull),
            ("GET", R + r"/pulls/(?P<n>\d+)/reviews", self._h_list_reviews),
            ("POST", R + r"/pulls/(?P<n>\d+)/reviews", self._h_create_review),
            ("PUT", R + r"/pulls/(?P<n>\d+)/merge", self._h_merge),
            ("GET", R + r"/issues/(?P<n>\d+)", self._h_get_issue),
            ("POST", R + r"/issues/(?P<n>\d+)/labels", self._h_add_labels),
            ("GET", R + r"/issues/(?P<n>\d+)/comments", self._h_list_comments),
            ("POST", R + r"/issues/(?P<n>\d+)/comments", self._h_create_comment),
            ("PATCH", R + r"/issues/comments/(?P<cid>\d+)", self._h_edit_comment),
        ]
        return [(m, re.compile(f"^{p}/?$"), h) for m, p, h in table]

    def _api(
        self, method: str, path: str, environ: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
        }
        try:
            matched_path = False
            for m, pattern, handler in self._routes:
                match = pattern.match(path)
                if not match:
                    continue
                matched_path = True
                if m != method:
                    continue
                ident = self._authenticate(environ)
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                body = _read_body(environ)
                try:
                    data = json.loads(body) if body.strip() else {}
                except ValueError as exc:
                    raise ApiError(400, "Problems parsing JSON") from exc
                ctx = _Ctx(ident, query, data, environ, headers)
                with self._lock:  # one API call at a time: simple, and plenty fast for tests
                    result = handler(ctx, **params)
                status, payload = result if isinstance(result, tuple) else (200, result)
                if status == 204:
                    return 204, {k: v for k, v in headers.items() if k != "Content-Type"}, b""
                if isinstance(payload, list) and ctx.paginate:
                    payload = self._paginate(ctx, path, payload)
                return status, headers, json.dumps(payload).encode()
            if matched_path:
                raise ApiError(404, "Not Found")
            raise ApiError(404, "Not Found")
        except ApiError as err:
            headers.update(err.headers)
            return err.status, headers, json.dumps(err.body()).encode()
        except Exception as exc:  # a bug in the stand-in: answer like GitHub's 500, keep the cause
            self.errors.append(exc)
            body = {
                "message": f"Server Error ({type(exc).__name__}: {exc})",
                "documentation_url": DOCS_URL,
            }
            return 500, headers, json.dumps(body).encode()

    def _paginate(self, ctx: _Ctx, path: str, items: list[Any]) -> list[Any]:
        per_page = max(1, min(100, int(ctx.query.get("per_page", 30))))
        page = max(1, int(ctx.query.get("page", 1)))
        last = max(1, (len(items) + per_page - 1) // per_page)
        links = []
        base = f"{self.api_url}{path}"
        other = "&".join(
            f"{k}={quote(v)}" for k, v in ctx.query.items() if k not in ("page", "per_page")
        )
        other = f"&{other}" if other else ""
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}{other}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}{other}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page=1{other}>; rel="first"')
            links.append(f'<{base}?per_page={per_page}&page={page - 1}{other}>; rel="prev"')
        if links:
            ctx.headers["Link"] = ", ".join(links)
        return items[(page - 1) * per_page : page * per_page]

    def _repo(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def _may_access(self, ident: _Identity, repo: _Repo) -> bool:
        if ident.kind != "installation":
            return True
        app = self._apps.get(ident.app_id or -1)
        return app is not None and (
            app.owner.lower() == repo.owner.lower()
            and (not app.repos or repo.full_name.lower() in app.repos)
        )

    def _repo_for(self, ctx: _Ctx, owner: str, name: str) -> _Repo:
        if ctx.ident.kind == "app":
            raise ApiError(403, "Resource not accessible by integration")
        repo = self._repo(owner, name)
        if not self._may_access(ctx.ident, repo):
            raise ApiError(404, "Not Found")
        return repo

    def _pr(self, repo: _Repo, n: str) -> dict[str, Any]:
        pr = repo.pulls.get(int(n))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def _resolve(self, repo: _Repo, ref: str) -> str:
        refs = _refs(repo.path)
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if candidate in refs:
                return refs[candidate]
        if re.fullmatch(r"[0-9a-f]{4,40}", ref):
            try:
                return _git(
                    repo.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
                ).strip()
            except subprocess.CalledProcessError:
                pass
        raise ApiError(422, f"No commit found for SHA: {ref}")

    # ------------------------------------------------------------------ handlers: meta / app

    def _require_app(self, ctx: _Ctx) -> _App:
        if ctx.ident.kind != "app":
            raise ApiError(
                401,
                "A JSON web token could not be decoded",
            )
        return self._apps[ctx.ident.app_id or -1]

    def _h_access_token(self, ctx: _Ctx, iid: str) -> tuple[int, dict[str, Any]]:
        app = self._require_app(ctx)
        if int(iid) != app.installation_id:
            raise ApiError(404, "Not Found")
        token = "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
        expires = time.time() + app.token_ttl
        with self._lock:
            self._tokens[token] = _Identity(
                f"{app.slug}[bot]", "installation", app.app_id, app.installation_id, expires
            )
        perms = ctx.data.get("permissions") or self._app_json(app)["permissions"]
        return 201, {
            "token": token,
            "expires_at": _iso(expires),
            "permissions": perms,
            "repository_selection": "selected" if app.repos else "all",
        }

    def _h_repo_installation(self, ctx: _Ctx, owner: str, name: str) -> dict[str, Any]:
        app = self._require_app(ctx)
        repo = self._repo(owner, name)
        inst = self._installation_for(repo)
        if inst is None or inst.app_id != app.app_id:
            raise ApiError(404, "Not Found")
        return self._installation_json(app)

    # ------------------------------------------------------------------ handlers: repo, refs, contents

    def _h_repo(self, ctx: _Ctx, owner: str, name: str) -> dict[str, Any]:
        return self._full_repo_json(self._repo_for(ctx, owner, name), ctx.ident)

    def _h_delete_ref(self, ctx: _Ctx, owner: str, name: str, ref: str) -> tuple[int, None]:
        repo = self._repo_for(ctx, owner, name)
        full = ref if ref.startswith("refs/") else f"refs/{ref}"
        with self._lock:
            before = _refs(repo.path)
            if full not in before:
                raise ApiError(422, "Reference does not exist")
            _git(repo.path, "update-ref", "-d", full, before[full])
            self._after_ref_change(repo, before, ctx.ident.login)
        return 204, None

    # ------------------------------------------------------------------ handlers: commits, statuses, checks

    def _h_create_status(
        self, ctx: _Ctx, owner: str, name: str, sha: str
    ) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        state = ctx.data.get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "Status",
                        "code": "custom",
                        "field": "state",
                        "message": "state is not included in the list",
                    }
                ],
            )
        if not _object_exists(repo.path, sha):
            raise ApiError(422, f"No commit found for SHA: {sha}")
        sid = next(self._ids)
        now = _now_iso()
        status = {
            "url": f"{self._api_repo_url(repo)}/statuses/{sha}",
            "avatar_url": f"{self.base_url}/avatars/u/{self._user_id(ctx.ident.login)}",
            "id": sid,
            "node_id": _node_id("StatusContext", sid),
            "state": state,
            "description": ctx.data.get("description"),
            "target_url": ctx.data.get("target_url"),
            "context": ctx.data.get("context") or "default",
            "created_at": now,
            "updated_at": now,
            "creator": self._user(ctx.ident.login),
        }
        with self._lock:
            repo.statuses.setdefault(sha, []).insert(0, status)
        return 201, status

    # ------------------------------------------------------------------ deployments

    def _deployment_json(self, repo: _Repo, d: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._api_repo_url(repo)}/deployments/{d['id']}"
        return {
            "url": url, "id": d["id"], "node_id": _node_id("Deployment", d["id"]), "sha": d["sha"], "ref": d["ref"],
            "task": d["task"], "payload": d["payload"], "original_environment": d["environment"],
            "environment": d["environment"], "description": d["description"], "creator": d["creator"],
            "created_at": d["created_at"], "updated_at": d["updated_at"], "statuses_url": f"{url}/statuses",
            "repository_url": self._api_repo_url(repo), "transient_environment": d["transient_environment"],
            "production_environment": d["production_environment"],
        }

    def _deployment(self, repo: _Repo, did: str) -> dict[str, Any]:
        d = repo.deployments.get(int(did))
        if d is None:
            raise ApiError(404, "Not Found")
        return d

    def _h_create_deployment(self, ctx: _Ctx, owner: str, name: str) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        data = ctx.data if isinstance(ctx.data, dict) else {}
        ref = data.get("ref")
        if not isinstance(ref, str) or not ref:
            raise ApiError(422, "Invalid request.\n\n\"ref\" wasn't supplied.")
        try:
            sha = self._resolve(repo, ref)
        except ApiError:
            raise ApiError(422, f"No ref found for: {ref}") from None
        required = data.get("required_contexts")
        if required is None:  # GitHub: every context submitted for the commit must be success
            latest: dict[str, str] = {}
            for s in repo.statuses.get(sha, []):  # newest first
                latest.setdefault(s["context"], s["state"])
            failing = sorted(c for c, state in latest.items() if state != "success")
            if failing:
                raise ApiError(409, "Conflict: Commit status checks failed for " + ref + ".",
                               [{"contexts": [{"context": c, "state": latest[c]} for c in failing], "resource": "Deployment", "field": "required_contexts", "code": "invalid"}])
        payload = data.get("payload", {})
        if isinstance(payload, str):
            try:
                payload = json.loads(payload) if payload else {}
            except ValueError:
                raise ApiError(422, "Validation Failed", [{"resource": "Deployment", "field": "payload", "code": "invalid"}]) from None
        environment = str(data.get("environment") or "production")
        now = _now_iso()
        did = next(self._ids)
        d = {
            "id": did, "sha": sha, "ref": ref, "task": str(data.get("task") or "deploy"), "payload": payload,
            "environment": environment, "description": data.get("description"), "creator": self._user(ctx.ident.login),
            "created_at": now, "updated_at": now, "transient_environment": bool(data.get("transient_environment", False)),
            "production_environment": bool(data.get("production_environment", environment == "production")),
            "statuses": [],
        }
        repo.deployments[did] = d
        return 201, self._deployment_json(repo, d)

    def _h_list_deployments(self, ctx: _Ctx, owner: str, name: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        q = ctx.query
        found = [
            d for d in repo.deployments.values()
            if all(not q.get(k) or str(d[k]) == q[k] for k in ("sha", "ref", "task", "environment"))
        ]
        return [self._deployment_json(repo, d) for d in sorted(found, key=lambda d: d["id"], reverse=True)]

    def _deployment_status_json(self, repo: _Repo, d: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._api_repo_url(repo)}/deployments/{d['id']}"
        return {
            "url": f"{url}/statuses/{st['id']}", "id": st["id"], "node_id": _node_id("DeploymentStatus", st["id"]),
            "state": st["state"], "creator": st["creator"], "description": st["description"],
            "environment": st["environment"], "target_url": st["log_url"], "log_url": st["log_url"],
            "environment_url": st["environment_url"], "created_at": st["created_at"], "updated_at": st["created_at"],
            "deployment_url": url, "repository_url": self._api_repo_url(repo),
        }

    def _h_create_deployment_status(self, ctx: _Ctx, owner: str, name: str, did: str) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        d = self._deployment(repo, did)
        data = ctx.data if isinstance(ctx.data, dict) else {}
        state = data.get("state")
        if state not in ("error", "failure", "inactive", "in_progress", "queued", "pending", "success"):
            raise ApiError(422, "Validation Failed", [{"resource": "DeploymentStatus", "code": "custom", "field": "state", "message": "state is not included in the list"}])
        description = str(data.get("description") or "")
        if len(description) > 140:
            raise ApiError(422, "Validation Failed", [{"resource": "DeploymentStatus", "code": "custom", "field": "description", "message": "description is too long (maximum is 140 characters)"}])
        if data.get("environment"):
            d["environment"] = str(data["environment"])
        st = {
            "id": next(self._ids), "state": state, "description": description, "environment": d["environment"],
            "log_url": str(data.get("log_url") or data.get("target_url") or ""),
            "environment_url": str(data.get("environment_url") or ""), "creator": self._user(ctx.ident.login),
            "created_at": _now_iso(),
        }
        d["statuses"].insert(0, st)
        d["updated_at"] = st["created_at"]
        if state == "success" and data.get("auto_inactive", True):
            # GitHub: earlier non-transient, non-production deployments of this environment become inactive
            for other in repo.deployments.values():
                if other is not d and other["environment"] == d["environment"] and not other["transient_environment"] \
                        and not other["production_environment"] and other["statuses"] and other["statuses"][0]["state"] != "inactive":
                    other["statuses"].insert(0, {**other["statuses"][0], "id": next(self._ids), "state": "inactive", "created_at": st["created_at"]})
        return 201, self._deployment_status_json(repo, d, st)

    def _h_list_deployment_statuses(self, ctx: _Ctx, owner: str, name: str, did: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        d = self._deployment(repo, did)
        return [self._deployment_status_json(repo, d, st) for st in d["statuses"]]

    def _h_combined_status(self, ctx: _Ctx, owner: str, name: str, ref: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        sha = self._resolve(repo, ref)
        latest: dict[str, dict[str, Any]] = {}
        for s in repo.statuses.get(sha, []):  # newest first
            latest.setdefault(s["context"], s)
        items = list(latest.values())
        states = {s["state"] for s in items}
        if states & {"error", "failure"}:
            state = "failure"
        elif not items or "pending" in states:
            state = "pending"
        else:
            state = "success"
        u = self._api_repo_url(repo)
        ctx.paginate = False
        return {
            "state": state,
            "statuses": items,
            "sha": sha,
            "total_count": len(items),
            "repository": self._repo_json(repo),
            "commit_url": f"{u}/commits/{sha}",
            "url": f"{u}/commits/{sha}/status",
        }

    def _check_writer(self, ctx: _Ctx) -> int | None:
        if ctx.ident.kind == "installation":
            return ctx.ident.app_id
        if self.pat_check_runs:
            return None
        raise ApiError(403, "You must authenticate via a GitHub App.")

    def _h_create_check_run(self, ctx: _Ctx, owner: str, name: str) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        app_id = self._check_writer(ctx)
        d = ctx.data
        if not d.get("name") or not d.get("head_sha"):
            raise ApiError(422, 'Invalid request.\n\n"name", "head_sha" weren\'t supplied.')
        if not _object_exists(repo.path, d["head_sha"]):
            raise ApiError(422, "No commit found for SHA: " + d["head_sha"])
        run_id = next(self._ids)
        now = _now_iso()
        conclusion = d.get("conclusion")
        status = "completed" if conclusion else d.get("status", "queued")
        head_branch = next(
            (p["head_ref"] for p in repo.pulls.values() if p["head_sha"] == d["head_sha"]), None
        )
        run = {
            "id": run_id,
            "suite_id": next(self._ids),
            "app_id": app_id,
            "name": d["name"],
            "head_sha": d["head_sha"],
            "head_branch": head_branch,
            "external_id": d.get("external_id", ""),
            "details_url": d.get("details_url"),
            "status": status,
            "conclusion": conclusion,
            "started_at": d.get("started_at") or now,
            "completed_at": d.get("completed_at") or (now if status == "completed" else None),
            "output": dict(d.get("output") or {}),
        }
        if status == "completed" and not conclusion:
            raise ApiError(
                422, 'Invalid request.\n\n"conclusion" is required when status is "completed".'
            )
        with self._lock:
            repo.check_runs[run_id] = run
        return 201, self._check_run_json(repo, run)

    def _h_update_check_run(self, ctx: _Ctx, owner: str, name: str, cid: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        app_id = self._check_writer(ctx)
        run = repo.check_runs.get(int(cid))
        if run is None:
            raise ApiError(404, "Not Found")
        if run["app_id"] != app_id:
            raise ApiError(
                403, f"Invalid app_id `{app_id}` - check run can only be modified by its creator"
            )
        d = ctx.data
        with self._lock:
            for key in ("name", "details_url", "external_id", "started_at"):
                if key in d:
                    run[key] = d[key]
            if "output" in d:
                run["output"] = {**run["output"], **(d["output"] or {})}
            if "status" in d:
                run["status"] = d["status"]
            if d.get("conclusion"):
                run["conclusion"] = d["conclusion"]
                run["status"] = "completed"
            if run["status"] == "completed":
                if not run["conclusion"]:
                    raise ApiError(
                        422,
                        'Invalid request.\n\n"conclusion" is required when status is "completed".',
                    )
                run["completed_at"] = d.get("completed_at") or run["completed_at"] or _now_iso()
        return self._check_run_json(repo, run)

    def _h_list_check_runs(self, ctx: _Ctx, owner: str, name: str, ref: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        sha = self._resolve(repo, ref)
        runs = [r for r in repo.check_runs.values() if r["head_sha"] == sha]
        if ctx.query.get("check_name"):
            runs = [r for r in runs if r["name"] == ctx.query["check_name"]]
        if ctx.query.get("status"):
            runs = [r for r in runs if r["status"] == ctx.query["status"]]
        if ctx.query.get("filter", "latest") == "latest":
            latest: dict[str, dict[str, Any]] = {}
            for r in sorted(runs, key=lambda r: r["id"]):
                latest[r["name"]] = r
            runs = list(latest.values())
        ctx.paginate = False
        items = [self._check_run_json(repo, r) for r in sorted(runs, key=lambda r: -r["id"])]
        return {"total_count": len(items), "check_runs": items}

    # ------------------------------------------------------------------ handlers: pulls

    def _h_list_pulls(self, ctx: _Ctx, owner: str, name: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        state = ctx.query.get("state", "open")
        head = ctx.query.get("head")
        base = ctx.query.get("base")
        out = []
        for pr in sorted(repo.pulls.values(), key=lambda p: -p["number"]):
            if state != "all" and pr["state"] != state:
                continue
            if (
                head
                and f"{repo.owner}:{pr['head_ref']}".lower() != head.lower()
                and pr["head_ref"] != head
            ):
                continue
            if base and pr["base_ref"] != base:
                continue
            out.append(self._pr_json(repo, pr, full=False))
        if ctx.query.get("direction") == "asc":
            out.reverse()
        return out

    def _h_create_pull(self, ctx: _Ctx, owner: str, name: str) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        d = ctx.data
        head = str(d.get("head") or "")
        if ":" in head:
            head_owner, head = head.split(":", 1)
            if head_owner.lower() != repo.owner.lower():
                raise ApiError(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
                )
        base = str(d.get("base") or "")
        if not d.get("title") and not d.get("issue"):
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": "title", "code": "missing_field"}],
            )
        with self._lock:
            refs = _refs(repo.path)
            if f"refs/heads/{head}" not in refs:
                raise ApiError(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
                )
            if f"refs/heads/{base}" not in refs:
                raise ApiError(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                )
            head_sha, base_sha = refs[f"refs/heads/{head}"], refs[f"refs/heads/{base}"]
            for pr in repo.pulls.values():
                if pr["state"] == "open" and pr["head_ref"] == head and pr["base_ref"] == base:
                    raise ApiError(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {repo.owner}:{head}.",
                            }
                        ],
                    )
            if not _git(repo.path, "rev-list", "--max-count=1", f"{base_sha}..{head_sha}").strip():
                raise ApiError(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"No commits between {base} and {head}",
                        }
                    ],
                )
            number = repo.next_number
            repo.next_number += 1
            now = _now_iso()
            pr = {
                "number": number,
                "id": next(self._ids),
                "title": d.get("title") or "",
                "body": d.get("body"),
                "head_ref": head,
                "base_ref": base,
                "head_sha": head_sha,
                "base_sha": base_sha,
                "state": "open",
                "draft": bool(d.get("draft", False)),
                "merged": False,
                "merged_at": None,
                "merged_by": None,
                "merge_commit_sha": None,
                "commit_count": 0,
                "user": ctx.ident.login,
                "created_at": now,
                "updated_at": now,
                "closed_at": None,
                "labels": [],
                "reviews": [],
            }
            repo.pulls[number] = pr
            self._emit(repo, "pull_request", self._pr_event(repo, pr, "opened", ctx.ident.login))
            return 201, self._pr_json(repo, pr)

    def _h_get_pull(self, ctx: _Ctx, owner: str, name: str, n: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        with self._lock:
            return self._pr_json(repo, self._pr(repo, n))

    def _close_pr(self, repo: _Repo, pr: dict[str, Any], actor: str, *, merged: bool) -> None:
        self._pr_head_base(repo, pr)
        now = _now_iso()
        if not merged:
            pr["commit_count"] = len(
                _git(repo.path, "rev-list", f"{pr['base_sha']}..{pr['head_sha']}").split()
            )
        pr["state"] = "closed"
        pr["closed_at"] = now
        pr["updated_at"] = now
        self._emit(repo, "pull_request", self._pr_event(repo, pr, "closed", actor))

    def _h_update_pull(self, ctx: _Ctx, owner: str, name: str, n: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        d = ctx.data
        with self._lock:
            pr = self._pr(repo, n)
            changes: dict[str, Any] = {}
            for key in ("title", "body"):
                if key in d and d[key] != pr[key]:
                    changes[key] = {"from": pr[key]}
                    pr[key] = d[key]
            if "base" in d:
                if f"refs/heads/{d['base']}" not in _refs(repo.path):
                    raise ApiError(
                        422,
                        "Validation Failed",
                        [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                    )
                if d["base"] != pr["base_ref"]:
                    changes["base"] = {
                        "ref": {"from": pr["base_ref"]},
                        "sha": {"from": pr["base_sha"]},
                    }
                pr["base_ref"] = d["base"]
            pr["updated_at"] = _now_iso()
            if changes:
                payload = self._pr_event(repo, pr, "edited", ctx.ident.login)
                payload = {
                    "action": "edited",
                    "number": pr["number"],
                    "changes": changes,
                    **{k: v for k, v in payload.items() if k not in ("action", "number")},
                }
                self._emit(repo, "pull_request", payload)
            state = d.get("state")
            if state == "closed" and pr["state"] == "open":
                self._close_pr(repo, pr, ctx.ident.login, merged=False)
            elif state == "open" and pr["state"] == "closed":
                if pr["merged"]:
                    raise ApiError(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": "state cannot be changed. The pull request cannot be reopened because it has been merged.",
                            }
                        ],
                    )
                if f"refs/heads/{pr['head_ref']}" not in _refs(repo.path):
                    raise ApiError(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": "state cannot be changed. The head branch was deleted.",
                            }
                        ],
                    )
                pr["state"] = "open"
                pr["closed_at"] = None
                self._emit(
                    repo, "pull_request", self._pr_event(repo, pr, "reopened", ctx.ident.login)
                )
            return self._pr_json(repo, pr)

    def _h_list_reviews(self, ctx: _Ctx, owner: str, name: str, n: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        pr = self._pr(repo, n)
        return [self._review_json(repo, pr, r) for r in pr["reviews"]]

    def _h_create_review(self, ctx: _Ctx, owner: str, name: str, n: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        d = ctx.data
        event = d.get("event")
        states = {
            "APPROVE": "APPROVED",
            "REQUEST_CHANGES": "CHANGES_REQUESTED",
            "COMMENT": "COMMENTED",
            None: "PENDING",
        }
        if event not in states:
            raise ApiError(422, "Unprocessable Entity", [f"Invalid event: {event}"])  # type: ignore[list-item]
        with self._lock:
            pr = self._pr(repo, n)
            head, _ = self._pr_head_base(repo, pr)
            if pr["state"] != "open" and event is not None:
                raise ApiError(
                    422, "Unprocessable Entity", ["Can not review a closed pull request"]
                )  # type: ignore[list-item]
            if event in ("APPROVE", "REQUEST_CHANGES") and ctx.ident.login == pr["user"]:
                verb = "approve" if event == "APPROVE" else "request changes on"
                raise ApiError(
                    422, "Unprocessable Entity", [f"Review Can not {verb} your own pull request"]
                )  # type: ignore[list-item]
            if event in ("REQUEST_CHANGES", "COMMENT") and not d.get("body"):
                raise ApiError(
                    422, "Unprocessable Entity", ["Review body is required for this event"]
                )  # type: ignore[list-item]
            review = {
                "id": next(self._ids),
                "user": ctx.ident.login,
                "body": d.get("body") or "",
                "commit_id": d.get("commit_id") or head,
                "state": states[event],
                "submitted_at": _now_iso() if event else None,
            }
            pr["reviews"].append(review)
            data = self._review_json(repo, pr, review)
            if event is not None:
                hook_review = {**data, "state": review["state"].lower()}
                self._emit(
                    repo,
                    "pull_request_review",
                    {
                        "action": "submitted",
                        "review": hook_review,
                        "pull_request": self._pr_json(repo, pr, full=False),
                        "repository": self._repo_json(repo),
                        "sender": self._user(ctx.ident.login),
                    },
                )
            return data

    def _h_merge(self, ctx: _Ctx, owner: str, name: str, n: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        d = ctx.data
        method = d.get("merge_method", "merge")
        if method != "merge":  # the bot merges with merge commits only
            raise ApiError(405, f"{method.capitalize()} merges are not allowed on this repository.")
        with self._lock:
            pr = self._pr(repo, n)
            if pr["state"] != "open":
                raise ApiError(405, "Pull Request is not mergeable")
            head, base = self._pr_head_base(repo, pr)
            if d.get("sha") and d["sha"] != head:
                raise ApiError(409, "Head branch was modified. Review and try the merge again.")
            if pr["draft"]:
                raise ApiError(405, "Pull Request is still a draft")
            clean, tree = _merge_tree(repo.path, base, head)
            if not clean:
                raise ApiError(405, "Pull Request is not mergeable")
            merge_base = _merge_base(repo.path, base, head) or base
            commit_count = len(_git(repo.path, "rev-list", f"{base}..{head}").split())
            title = (
                d.get("commit_title")
                or f"Merge pull request #{pr['number']} from {repo.owner}/{pr['head_ref']}"
            )
            message = d.get("commit_message", pr["title"])
            parents = ["-p", base, "-p", head]
            full_message = f"{title}\n\n{message}".rstrip() + "\n"
            env = {
                "GIT_AUTHOR_NAME": ctx.ident.login,
                "GIT_AUTHOR_EMAIL": f"{ctx.ident.login}@users.noreply.github.com",
            }
            new = _git(
                repo.path, "commit-tree", tree, *parents, input_=full_message, env=env
            ).strip()
            before = _refs(repo.path)
            _git(repo.path, "update-ref", f"refs/heads/{pr['base_ref']}", new, base)
            now = _now_iso()
            pr.update(
                merged=True,
                merged_at=now,
                merged_by=ctx.ident.login,
                merge_commit_sha=new,
                commit_count=commit_count,
                merge_base_at_merge=merge_base,
                head_sha=head,
                base_sha=base,
            )
            # push to the base branch first, then the closed pull request (GitHub's order varies)
            self._after_ref_change(repo, before, ctx.ident.login)
            self._close_pr(repo, pr, ctx.ident.login, merged=True)
            return {"sha": new, "merged": True, "message": "Pull Request successfully merged"}

    # ------------------------------------------------------------------ handlers: issues (labels, comments)

    def _h_get_issue(self, ctx: _Ctx, owner: str, name: str, n: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        return self._issue_json(repo, self._pr(repo, n))

    @staticmethod
    def _label_names(data: Any) -> list[str]:
        if isinstance(data, dict):
            data = data.get("labels", [])
        names = []
        for item in data or []:
            names.append(item["name"] if isinstance(item, dict) else str(item))
        return names

    def _h_add_labels(self, ctx: _Ctx, owner: str, name: str, n: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        with self._lock:
            pr = self._pr(repo, n)
            for label in self._label_names(ctx.data):
                if label not in pr["labels"]:
                    pr["labels"].append(label)
                    self._label_event(repo, pr, "labeled", label, ctx.ident.login)
            return [self._label_json(repo, x) for x in pr["labels"]]

    def _label_event(
        self, repo: _Repo, pr: dict[str, Any], action: str, label: str, actor: str
    ) -> None:
        payload = self._pr_event(repo, pr, action, actor)
        payload["label"] = self._label_json(repo, label)
        self._emit(repo, "pull_request", payload)

    def _h_list_comments(self, ctx: _Ctx, owner: str, name: str, n: str) -> list[dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        self._pr(repo, n)
        return [
            self._comment_json(repo, c) for c in repo.comments.values() if c["number"] == int(n)
        ]

    def _h_create_comment(
        self, ctx: _Ctx, owner: str, name: str, n: str
    ) -> tuple[int, dict[str, Any]]:
        repo = self._repo_for(ctx, owner, name)
        if not ctx.data.get("body"):
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
            )
        with self._lock:
            self._pr(repo, n)
            now = _now_iso()
            c = {
                "id": next(self._ids),
                "number": int(n),
                "body": ctx.data["body"],
                "user": ctx.ident.login,
                "created_at": now,
                "updated_at": now,
            }
            repo.comments[c["id"]] = c
            self._comment_event(repo, c, "created", ctx.ident.login)
            return 201, self._comment_json(repo, c)

    def _comment_event(
        self,
        repo: _Repo,
        c: dict[str, Any],
        action: str,
        actor: str,
        changes: dict[str, Any] | None = None,
    ) -> None:
        payload: dict[str, Any] = {"action": action}
        if changes is not None:
            payload["changes"] = changes
        payload.update(
            {
                "issue": self._issue_json(repo, repo.pulls[c["number"]]),
                "comment": self._comment_json(repo, c),
                "repository": self._repo_json(repo),
                "sender": self._user(actor),
            }
        )
        self._emit(repo, "issue_comment", payload)

    def _comment(self, repo: _Repo, cid: str) -> dict[str, Any]:
        c = repo.comments.get(int(cid))
        if c is None:
            raise ApiError(404, "Not Found")
        return c

    def _h_edit_comment(self, ctx: _Ctx, owner: str, name: str, cid: str) -> dict[str, Any]:
        repo = self._repo_for(ctx, owner, name)
        with self._lock:
            c = self._comment(repo, cid)
            if c["user"] != ctx.ident.login:
                raise ApiError(403, "You must be the author of this comment to edit it")
            if "body" in ctx.data and ctx.data["body"] != c["body"]:
                old = c["body"]
                c["body"] = ctx.data["body"]
                c["updated_at"] = _now_iso()
                self._comment_event(repo, c, "edited", ctx.ident.login, {"body": {"from": old}})
            return self._comment_json(repo, c)

@dataclass
class _Ctx:
    ident: _Identity
    query: dict[str, str]
    data: Any
    environ: dict[str, Any]
    headers: dict[str, str]
    paginate: bool = True


# ---------------------------------------------------------------------- git helpers

_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _git(
    path: str | None,
    *args: str,
    input_: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    full_env = {**os.environ, **_GIT_ENV, **(env or {})}
    return subprocess.run(
        ["git", *args],
        cwd=path,
        input=input_,
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _refs(path: str) -> dict[str, str]:
    out = _git(path, "for-each-ref", "--format=%(objectname) %(refname)")
    refs = {}
    for line in out.splitlines():
        sha, _, ref = line.partition(" ")
        refs[ref] = sha
    return refs


def _object_exists(path: str, sha: str) -> bool:
    return (
        subprocess.run(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"],
            cwd=path,
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def _is_ancestor(path: str, old: str, new: str) -> bool:
    return (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", old, new],
            cwd=path,
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def _merge_base(path: str, a: str, b: str) -> str | None:
    proc = subprocess.run(
        ["git", "merge-base", a, b], cwd=path, capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None


def _merge_tree(path: str, base: str, head: str) -> tuple[bool, str]:
    """(clean, tree) for merging head into base, without a work tree (git >= 2.38)."""
    proc = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--no-messages", base, head],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **_GIT_ENV},
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"git merge-tree failed: {proc.stderr}")
    return proc.returncode == 0, proc.stdout.split("\n", 1)[0].strip()


def _diff_stats(path: str, base: str, head: str) -> list[tuple[int, int]]:
    out = []
    for line in _git(path, "diff", "--numstat", "-M", base, head).splitlines():
        add, dele, _ = line.split("\t", 2)
        out.append((int(add) if add != "-" else 0, int(dele) if dele != "-" else 0))
    return out


def _commit_info(path: str, sha: str) -> dict[str, Any]:
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
    out = _git(path, "show", "-s", f"--format={fmt}", sha)
    parts = out.split("\x00", 9)

    def when(s: str) -> str:
        return datetime.fromisoformat(s).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "sha": parts[0],
        "tree": parts[1],
        "parents": parts[2].split(),
        "author": {"name": parts[3], "email": parts[4], "date": when(parts[5])},
        "committer": {"name": parts[6], "email": parts[7], "date": when(parts[8])},
        "message": parts[9].rstrip("\n"),
    }


def _commit_files(
    path: str,
    parent: str | None,
    files: dict[str, str | None] | dict[str, str] | dict[str, bytes | None],
    message: str,
    *,
    author: tuple[str, str],
) -> str:
    """Write a commit on top of ``parent`` changing ``files`` (None = delete), no work tree."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "GIT_INDEX_FILE": os.path.join(tmp, "index"),
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
        }
        if parent:
            _git(path, "read-tree", parent, env=env)
        for fname, content in files.items():
            if content is None:
                _git(
                    path, "update-index", "--index-info", input_=f"0 {ZERO_SHA}\t{fname}\n", env=env
                )
                continue
            blob = (
                subprocess.run(
                    ["git", "hash-object", "-w", "--stdin"],
                    cwd=path,
                    input=content.encode() if isinstance(content, str) else content,
                    capture_output=True,
                    check=True,
                )
                .stdout.decode()
                .strip()
            )
            _git(path, "update-index", "--add", "--cacheinfo", f"100644,{blob},{fname}", env=env)
        tree = _git(path, "write-tree", env=env).strip()
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args += ["-p", parent]
        return _git(path, *args, env=env).strip()


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    length = environ.get("CONTENT_LENGTH")
    if not length:
        return b""
    n = int(length)
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _parse_cgi(out: bytes) -> tuple[int, dict[str, str], bytes]:
    sep = out.find(b"\r\n\r\n")
    sep_len = 4
    alt = out.find(b"\n\n")
    if sep < 0 or (0 <= alt < sep):
        sep, sep_len = alt, 2
    if sep < 0:
        return 500, {"Content-Type": "text/plain"}, b"git http-backend gave no headers\n"
    head, body = out[:sep].decode("latin-1"), out[sep + sep_len :]
    status = 200
    headers: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            headers[key.strip()] = value.strip()
    return status, headers, body


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


__all__ = ["API_PREFIX", "ApiError", "GitHubStandIn"]
