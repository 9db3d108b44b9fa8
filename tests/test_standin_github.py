"""The GitHub stand-in, exercised with the real clients the bot uses: PyGithub and GitPython."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import git
import github
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.github_api import GitHubStandIn

FIXTURES = Path(__file__).parent / "fixtures" / "github"
OWNER, NAME = "acme", "models"
REVIEWER_TOKEN = "ghp_reviewer_token_standin"
HOOK_SECRET = "It's a Secret to Everybody"
APP_ID, INSTALLATION_ID = 4242, 777
FAST: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None}


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn() as s:
        s.create_repo(
            OWNER,
            NAME,
            files={"README.md": "# models\n", "models/resnet.yaml": "name: resnet\nversion: 1\n"},
        )
        s.add_token(REVIEWER_TOKEN, "reviewer-rita")
        yield s
        assert s.errors == []


@pytest.fixture
def gh(standin: GitHubStandIn) -> Iterator[github.Github]:
    client = standin.client()
    yield client
    client.close()


@pytest.fixture
def reviewer(standin: GitHubStandIn) -> Iterator[github.Github]:
    client = standin.client(REVIEWER_TOKEN)
    yield client
    client.close()


@pytest.fixture
def workdir(tmp_path: Path, standin: GitHubStandIn) -> Iterator[git.Repo]:
    repo = git.Repo.clone_from(standin.clone_url(OWNER, NAME, standin.token), tmp_path / "clone")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Octo Dev")
        cw.set_value("user", "email", "dev@example.com")
    yield repo
    repo.close()


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class Receiver:
    """A tiny webhook receiver that checks GitHub's HMAC like the bot must."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = (
                    "sha256=" + hmac.new(outer.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                outer.received.append(
                    {
                        "headers": dict(self.headers),
                        "body": body,
                        "payload": json.loads(body),
                        "valid": hmac.compare_digest(expected, self.headers["X-Hub-Signature-256"]),
                    }
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/github/webhook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def events(self) -> list[tuple[str, Any]]:
        return [(r["headers"]["X-GitHub-Event"], r["payload"].get("action")) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(HOOK_SECRET)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join()


def push_branch(repo: git.Repo, branch: str, files: dict[str, str], message: str) -> str:
    """Commit ``files`` on ``branch`` (created from origin/main when new) and push it."""
    if branch not in [h.name for h in repo.heads]:
        repo.git.checkout("-b", branch, "origin/main")
    else:
        repo.git.checkout(branch)
    for rel, content in files.items():
        path = Path(repo.working_tree_dir or "") / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        repo.index.add([rel])
    sha = repo.index.commit(message).hexsha
    repo.git.push("origin", branch)
    return sha


def bare_git(standin: GitHubStandIn, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=standin.repo_path(OWNER, NAME),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


# ---------------------------------------------------------------------- repository, git, refs, contents


def test_repo_json_points_at_the_standin(standin: GitHubStandIn, gh: github.Github) -> None:
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    assert repo.full_name == "acme/models"
    assert repo.default_branch == "main"
    assert repo.clone_url == f"{standin.base_url}/acme/models.git"
    assert repo.url == f"{standin.api_url}/repos/acme/models"
    assert repo.owner.login == "acme"
    assert repo.get_branch("main").commit.sha == standin.branch_sha(OWNER, NAME, "main")
    assert gh.get_rate_limit().resources.core.limit == 5000


def test_clone_requires_the_token(standin: GitHubStandIn, tmp_path: Path) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
    with pytest.raises(git.GitCommandError):
        git.Repo.clone_from(
            standin.clone_url(OWNER, NAME, "ghp_wrong"), tmp_path / "bad", env=env
        ).close()
    assert ("GET", "/acme/models.git/info/refs", 401) in standin.requests


def test_contents_and_refs_api(standin: GitHubStandIn, gh: github.Github) -> None:
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    content = repo.get_contents("models/resnet.yaml", ref="main")
    assert not isinstance(content, list)
    assert content.decoded_content == b"name: resnet\nversion: 1\n"
    listing = repo.get_contents("models")
    assert isinstance(listing, list) and [c.path for c in listing] == ["models/resnet.yaml"]
    with pytest.raises(github.UnknownObjectException):
        repo.get_contents("nope.yaml")

    main_sha = standin.branch_sha(OWNER, NAME, "main")
    assert main_sha is not None
    ref = repo.create_git_ref("refs/heads/feature", main_sha)
    assert ref.object.sha == main_sha
    assert repo.get_git_ref("heads/feature").object.sha == main_sha
    assert {r.ref for r in repo.get_git_refs()} == {"refs/heads/main", "refs/heads/feature"}

    new = standin.commit_files(OWNER, NAME, "other", {"x.txt": "x\n"}, "side commit")
    ref.edit(new)  # a fast-forward
    assert standin.branch_sha(OWNER, NAME, "feature") == new
    sideways = standin.commit_files(OWNER, NAME, "other2", {"y.txt": "y\n"}, "another side")
    with pytest.raises(github.GithubException) as exc:
        ref.edit(sideways)
    assert exc.value.status == 422  # not a fast-forward
    ref.edit(sideways, force=True)
    assert standin.branch_sha(OWNER, NAME, "feature") == sideways
    ref.delete()
    assert standin.branch_sha(OWNER, NAME, "feature") is None
    with pytest.raises(github.GithubException) as exc:
        repo.create_git_ref("refs/heads/main", main_sha)
    assert exc.value.status == 422


# ---------------------------------------------------------------------- pull requests


def test_push_open_pr_list_files_and_commits(
    standin: GitHubStandIn, gh: github.Github, workdir: git.Repo
) -> None:
    sha = push_branch(
        workdir,
        "add-bert",
        {"models/bert.yaml": "name: bert\n", "models/resnet.yaml": "name: resnet\nversion: 2\n"},
        "Add bert, bump resnet",
    )
    assert standin.branch_sha(OWNER, NAME, "add-bert") == sha

    repo = gh.get_repo(f"{OWNER}/{NAME}")
    pr = repo.create_pull(base="main", head="add-bert", title="Add bert", body="Please")
    assert pr.number == 1
    assert pr.head.sha == sha and pr.head.ref == "add-bert" and pr.base.ref == "main"
    assert pr.head.repo.full_name == "acme/models"
    assert pr.user.login == "octo-dev"
    assert pr.state == "open" and pr.merged is False and pr.mergeable is True
    assert pr.html_url == f"{standin.base_url}/acme/models/pull/1"

    files = {f.filename: f for f in pr.get_files()}
    assert set(files) == {"models/bert.yaml", "models/resnet.yaml"}
    assert files["models/bert.yaml"].status == "added"
    assert files["models/resnet.yaml"].status == "modified"
    assert files["models/resnet.yaml"].additions == 1 and files["models/resnet.yaml"].deletions == 1
    assert "+version: 2" in files["models/resnet.yaml"].patch
    assert [c.sha for c in pr.get_commits()] == [sha]

    fetched = repo.get_pull(1)
    assert (fetched.changed_files, fetched.commits) == (2, 1)
    assert [p.number for p in repo.get_pulls(state="open")] == [1]
    assert [p.number for p in repo.get_pulls(state="open", head="acme:add-bert")] == [1]
    assert list(repo.get_pulls(state="closed")) == []

    with pytest.raises(github.GithubException) as exc:
        repo.create_pull(base="main", head="add-bert", title="again")
    assert exc.value.status == 422
    with pytest.raises(github.GithubException) as exc:
        repo.create_pull(base="main", head="no-such-branch", title="x")
    assert exc.value.status == 422

    pr.edit(title="Add BERT", body="Updated")
    assert repo.get_pull(1).title == "Add BERT"
    pr.edit(state="closed")
    assert repo.get_pull(1).state == "closed"
    assert [p.number for p in repo.get_pulls(state="closed")] == [1]


def test_review_and_merge_make_a_real_merge_commit(
    standin: GitHubStandIn, gh: github.Github, reviewer: github.Github, workdir: git.Repo
) -> None:
    head = push_branch(workdir, "add-bert", {"models/bert.yaml": "name: bert\n"}, "Add bert")
    base = standin.branch_sha(OWNER, NAME, "main")
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="add-bert", title="Add bert")

    with pytest.raises(github.GithubException) as exc:
        pr.create_review(event="APPROVE")
    assert exc.value.status == 422  # GitHub: you cannot approve your own pull request

    rpr = reviewer.get_repo(f"{OWNER}/{NAME}").get_pull(pr.number)
    rpr.create_review(body="Needs a card", event="REQUEST_CHANGES")
    rpr.create_review(body="LGTM", event="APPROVE")
    reviews = list(pr.get_reviews())
    assert [(r.user.login, r.state) for r in reviews] == [
        ("reviewer-rita", "CHANGES_REQUESTED"),
        ("reviewer-rita", "APPROVED"),
    ]
    assert reviews[-1].commit_id == head

    with pytest.raises(github.GithubException) as exc:
        pr.merge(sha="0" * 40)
    assert exc.value.status == 409

    status = pr.merge(merge_method="merge", sha=head)
    assert status.merged is True
    merge_sha = status.sha
    assert standin.branch_sha(OWNER, NAME, "main") == merge_sha
    parents = bare_git(standin, "rev-list", "--parents", "-n", "1", merge_sha).split()[1:]
    assert parents == [base, head]
    message = bare_git(standin, "log", "-1", "--format=%B", merge_sha)
    assert message.startswith("Merge pull request #1 from acme/add-bert")

    merged = gh.get_repo(f"{OWNER}/{NAME}").get_pull(pr.number)
    assert merged.merged and merged.state == "closed" and merged.merge_commit_sha == merge_sha
    assert merged.merged_by.login == "octo-dev"
    assert merged.is_merged()
    assert [f.filename for f in merged.get_files()] == ["models/bert.yaml"]

    workdir.remotes.origin.fetch()
    assert workdir.commit("origin/main").hexsha == merge_sha
    assert (Path(workdir.working_tree_dir or "") / "models/bert.yaml").exists()

    with pytest.raises(github.GithubException) as exc:
        pr.merge()
    assert exc.value.status == 405


def test_conflicting_pr_is_not_mergeable(
    standin: GitHubStandIn, gh: github.Github, workdir: git.Repo
) -> None:
    push_branch(workdir, "left", {"models/resnet.yaml": "name: resnet\nversion: 3\n"}, "v3")
    standin.commit_files(
        OWNER, NAME, "main", {"models/resnet.yaml": "name: resnet\nversion: 9\n"}, "v9"
    )
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="left", title="v3")
    assert pr.mergeable is False and pr.mergeable_state == "dirty"
    with pytest.raises(github.GithubException) as exc:
        pr.merge()
    assert exc.value.status == 405


def test_squash_merge(standin: GitHubStandIn, gh: github.Github, workdir: git.Repo) -> None:
    push_branch(workdir, "sq", {"a.txt": "a\n"}, "one")
    push_branch(workdir, "sq", {"b.txt": "b\n"}, "two")
    base = standin.branch_sha(OWNER, NAME, "main")
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="sq", title="Squash me")
    sha = pr.merge(merge_method="squash").sha
    assert bare_git(standin, "rev-list", "--parents", "-n", "1", sha).split()[1:] == [base]
    assert bare_git(standin, "log", "-1", "--format=%s", sha).strip() == "Squash me (#1)"


# ---------------------------------------------------------------------- statuses, checks, comments, labels


def test_commit_statuses_and_combined_state(standin: GitHubStandIn, gh: github.Github) -> None:
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    sha = standin.branch_sha(OWNER, NAME, "main")
    assert sha is not None
    commit = repo.get_commit(sha)
    assert commit.get_combined_status().state == "pending"
    commit.create_status("pending", context="aimodel/scan", description="scanning")
    commit.create_status("success", context="aimodel/scan", target_url="http://ci/1")
    commit.create_status("success", context="aimodel/validate")
    combined = commit.get_combined_status()
    assert combined.state == "success" and combined.total_count == 2
    commit.create_status("failure", context="aimodel/sign", description="no key")
    assert repo.get_commit("main").get_combined_status().state == "failure"
    assert len(list(commit.get_statuses())) == 4
    assert {s["context"] for s in standin.statuses(OWNER, NAME, sha)} == {
        "aimodel/scan",
        "aimodel/validate",
        "aimodel/sign",
    }


def test_comments_create_edit_and_labels(
    standin: GitHubStandIn, gh: github.Github, reviewer: github.Github, workdir: git.Repo
) -> None:
    push_branch(workdir, "c", {"c.txt": "c\n"}, "c")
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="c", title="c")
    comment = pr.create_issue_comment("Checks: running")
    comment.edit("Checks: all green")
    assert [c.body for c in pr.get_issue_comments()] == ["Checks: all green"]
    assert standin.comments(OWNER, NAME, pr.number)[0]["body"] == "Checks: all green"
    assert gh.get_repo(f"{OWNER}/{NAME}").get_issue(pr.number).comments == 1

    other = reviewer.get_repo(f"{OWNER}/{NAME}").get_issue(pr.number).get_comments()[0]
    with pytest.raises(github.GithubException) as exc:
        other.edit("hijack")
    assert exc.value.status == 403

    pr.add_to_labels("aimodel:create", "needs-review")
    pr.remove_from_labels("needs-review")
    assert [lb.name for lb in pr.get_labels()] == ["aimodel:create"]


def test_app_jwt_installation_token_check_runs(
    standin: GitHubStandIn, gh: github.Github, app_key: tuple[str, str], tmp_path: Path
) -> None:
    private, public = app_key
    standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER)
    auth = github.Auth.AppAuth(APP_ID, private)
    with github.GithubIntegration(base_url=standin.api_url, auth=auth, **FAST) as gi:
        assert gi.get_app().slug == "aimodel-bot"
        installation = gi.get_repo_installation(OWNER, NAME)
        assert installation.id == INSTALLATION_ID
        token = gi.get_access_token(INSTALLATION_ID)
        assert token.token.startswith("ghs_") and token.expires_at is not None

    sha = standin.branch_sha(OWNER, NAME, "main")
    assert sha is not None
    with github.Github(
        base_url=standin.api_url, auth=auth.get_installation_auth(INSTALLATION_ID), **FAST
    ) as bot:
        repo = bot.get_repo(f"{OWNER}/{NAME}")
        run = repo.create_check_run("aimodel/validate", sha, status="in_progress")
        assert run.status == "in_progress" and run.app.slug == "aimodel-bot"
        run.edit(
            conclusion="success", output={"title": "SLA met", "summary": "accuracy 0.93 >= 0.9"}
        )
        runs = list(repo.get_commit(sha).get_check_runs())
        assert [(r.name, r.status, r.conclusion) for r in runs] == [
            ("aimodel/validate", "completed", "success")
        ]
        assert runs[0].output.title == "SLA met"
        assert repo.get_check_run(run.id).conclusion == "success"
    assert standin.check_runs(OWNER, NAME, sha)[0]["conclusion"] == "success"

    # the installation token also clones and pushes over git, as x-access-token
    with git.Repo.clone_from(
        standin.clone_url(OWNER, NAME, token.token), tmp_path / "bot"
    ) as clone:
        assert clone.head.commit.hexsha == sha
        clone.git.checkout("-b", "bot-branch")
        clone.git.push("origin", "bot-branch")
    assert standin.branch_sha(OWNER, NAME, "bot-branch") == sha

    # a personal access token cannot write check runs on GitHub
    with pytest.raises(github.GithubException) as exc:
        gh.get_repo(f"{OWNER}/{NAME}").create_check_run("x", sha)
    assert exc.value.status == 403


def test_app_jwt_signed_by_another_key_is_refused(
    standin: GitHubStandIn, app_key: tuple[str, str]
) -> None:
    _, public = app_key
    standin.register_app(APP_ID, public, INSTALLATION_ID)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(
        {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}, other, algorithm="RS256"
    )
    resp = requests.get(
        f"{standin.api_url}/app", headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )
    assert resp.status_code == 401
    assert "documentation_url" in resp.json()


def test_installation_token_expiry(standin: GitHubStandIn, app_key: tuple[str, str]) -> None:
    private, public = app_key
    standin.register_app(APP_ID, public, INSTALLATION_ID, token_ttl=3600)
    with github.GithubIntegration(
        base_url=standin.api_url, auth=github.Auth.AppAuth(APP_ID, private), **FAST
    ) as gi:
        token = gi.get_access_token(INSTALLATION_ID).token
    url = f"{standin.api_url}/repos/{OWNER}/{NAME}"
    assert (
        requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10).status_code
        == 200
    )
    standin.expire_token(token)
    assert (
        requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10).status_code
        == 401
    )


# ---------------------------------------------------------------------- auth and failure injection


def test_bad_token_is_401_with_githubs_error_shape(standin: GitHubStandIn) -> None:
    with (
        github.Github(base_url=standin.api_url, auth=github.Auth.Token("ghp_nope")) as bad,
        pytest.raises(github.BadCredentialsException) as exc,
    ):
        bad.get_repo(f"{OWNER}/{NAME}")
    assert exc.value.status == 401
    assert exc.value.data["message"] == "Bad credentials"
    assert ("GET", "/api/v3/repos/acme/models", 401) in standin.requests


def test_fail_next_429_reaches_pygithub(standin: GitHubStandIn, gh: github.Github) -> None:
    standin.fail_next("GET", r"/repos/acme/models$", 429)
    with pytest.raises(github.GithubException) as exc:
        gh.get_repo(f"{OWNER}/{NAME}")
    assert exc.value.status == 429
    assert gh.get_repo(f"{OWNER}/{NAME}").name == "models"  # only once


def test_fail_next_502_is_retried_by_pygithub(standin: GitHubStandIn, gh: github.Github) -> None:
    standin.fail_next("GET", r"/repos/acme/models$", 502, times=2)
    assert gh.get_repo(f"{OWNER}/{NAME}").name == "models"
    statuses = [s for m, p, s in standin.requests if p == "/api/v3/repos/acme/models"]
    assert statuses == [502, 502, 200]


def test_fail_next_secondary_rate_limit_with_retry_after(standin: GitHubStandIn) -> None:
    standin.fail_next("GET", r"/pulls$", 403, headers={"Retry-After": "1"})
    with (
        standin.client(retry=None) as client,
        pytest.raises(github.RateLimitExceededException) as exc,
    ):
        client.get_repo(f"{OWNER}/{NAME}").get_pulls().totalCount  # noqa: B018
    assert exc.value.status == 403
    assert exc.value.headers is not None and exc.value.headers.get("retry-after") == "1"


def test_secondary_rate_limit_is_waited_out_by_pygithub_retry(
    standin: GitHubStandIn, gh: github.Github
) -> None:
    standin.fail_next("GET", r"/repos/acme/models$", 403, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert gh.get_repo(f"{OWNER}/{NAME}").name == "models"
    assert time.monotonic() - started >= 0.9
    statuses = [s for m, p, s in standin.requests if p == "/api/v3/repos/acme/models"]
    assert statuses == [403, 200]


def test_pagination_with_link_headers(
    standin: GitHubStandIn, gh: github.Github, workdir: git.Repo
) -> None:
    for i in range(5):
        push_branch(workdir, f"b{i}", {f"f{i}.txt": "x\n"}, f"c{i}")
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    for i in range(5):
        repo.create_pull(base="main", head=f"b{i}", title=f"pr {i}")
    with standin.client(per_page=2) as paged:
        pulls = list(paged.get_repo(f"{OWNER}/{NAME}").get_pulls(state="all"))
    assert [p.number for p in pulls] == [5, 4, 3, 2, 1]
    assert sum(1 for _, p, _ in standin.requests if p.endswith("/pulls")) >= 3


# ---------------------------------------------------------------------- webhooks


def test_webhook_lifecycle_signed_and_in_order(
    standin: GitHubStandIn,
    gh: github.Github,
    reviewer: github.Github,
    workdir: git.Repo,
    receiver: Receiver,
) -> None:
    standin.add_webhook(OWNER, NAME, receiver.url, HOOK_SECRET)
    first = push_branch(workdir, "add-bert", {"models/bert.yaml": "name: bert\n"}, "Add bert")
    standin.wait_for_deliveries(1)
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="add-bert", title="Add bert")
    standin.wait_for_deliveries(2)
    second = push_branch(
        workdir, "add-bert", {"models/bert.yaml": "name: bert\nversion: 2\n"}, "v2"
    )
    standin.wait_for_deliveries(4)
    reviewer.get_repo(f"{OWNER}/{NAME}").get_pull(pr.number).create_review(event="APPROVE")
    standin.wait_for_deliveries(5)
    merge_sha = pr.merge().sha
    deliveries = standin.wait_for_deliveries(7)

    assert [(d["event"], d["action"]) for d in deliveries] == [
        ("push", None),
        ("pull_request", "opened"),
        ("push", None),
        ("pull_request", "synchronize"),
        ("pull_request_review", "submitted"),
        ("push", None),
        ("pull_request", "closed"),
    ]
    assert receiver.events() == [(d["event"], d["action"]) for d in deliveries]
    assert all(r["valid"] for r in receiver.received)
    assert all(d["status_code"] == 200 for d in deliveries)
    headers = receiver.received[0]["headers"]
    assert headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert headers["Content-Type"] == "application/json"
    assert len(headers["X-GitHub-Delivery"]) == 36

    push = receiver.received[0]["payload"]
    assert push["ref"] == "refs/heads/add-bert" and push["created"] is True
    assert push["before"] == "0" * 40 and push["after"] == first
    assert push["head_commit"]["id"] == first and push["commits"][0]["added"] == [
        "models/bert.yaml"
    ]
    assert push["repository"]["full_name"] == "acme/models" and push["pusher"]["name"] == "octo-dev"

    sync = receiver.received[3]["payload"]
    assert (sync["before"], sync["after"]) == (first, second)
    assert sync["pull_request"]["head"]["sha"] == second

    review = receiver.received[4]["payload"]
    assert review["review"]["state"] == "approved" and review["sender"]["login"] == "reviewer-rita"

    main_push = receiver.received[5]["payload"]
    assert main_push["ref"] == "refs/heads/main" and main_push["after"] == merge_sha
    assert main_push["head_commit"]["id"] == merge_sha

    closed = receiver.received[6]["payload"]["pull_request"]
    assert closed["merged"] is True and closed["merge_commit_sha"] == merge_sha


def test_webhook_close_reopen_refs_api_and_redeliver(
    standin: GitHubStandIn, gh: github.Github, receiver: Receiver
) -> None:
    standin.add_webhook(OWNER, NAME, receiver.url, HOOK_SECRET, events=["pull_request"], ping=True)
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    sha = standin.commit_files(OWNER, NAME, "topic", {"t.txt": "t\n"}, "topic")
    pr = repo.create_pull(base="main", head="topic", title="topic")
    pr.edit(state="closed")
    pr.edit(state="open")
    newer = standin.commit_files(OWNER, NAME, "tmp", {"u.txt": "u\n"}, "u")
    repo.get_git_ref("heads/topic").edit(newer, force=True)  # a push through the refs API
    deliveries = standin.wait_for_deliveries(5)
    assert [(d["event"], d["action"]) for d in deliveries] == [
        ("ping", None),
        ("pull_request", "opened"),
        ("pull_request", "closed"),
        ("pull_request", "reopened"),
        ("pull_request", "synchronize"),
    ]
    assert deliveries[2]["payload"]["pull_request"]["merged"] is False
    assert deliveries[4]["payload"]["before"] == sha and deliveries[4]["payload"]["after"] == newer

    receiver.status = 500
    standin.redeliver(deliveries[1]["id"])
    again = standin.wait_for_deliveries(6)[-1]
    assert again["redelivery"] is True and again["status_code"] == 500
    assert receiver.received[-1]["headers"]["X-GitHub-Delivery"] == deliveries[1]["id"]
    assert receiver.received[-1]["body"] == receiver.received[1]["body"]


def test_check_run_rerequested_and_unreachable_receiver(
    standin: GitHubStandIn, app_key: tuple[str, str], receiver: Receiver
) -> None:
    private, public = app_key
    standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER)
    standin.add_webhook(OWNER, NAME, receiver.url, HOOK_SECRET, events=["check_run"])
    standin.add_webhook(OWNER, NAME, "http://127.0.0.1:9/closed", "s", events=["check_run"])
    sha = standin.branch_sha(OWNER, NAME, "main")
    assert sha is not None
    auth = github.Auth.AppAuth(APP_ID, private).get_installation_auth(INSTALLATION_ID)
    with github.Github(base_url=standin.api_url, auth=auth, **FAST) as bot:
        run = bot.get_repo(f"{OWNER}/{NAME}").create_check_run(
            "aimodel/scan", sha, conclusion="failure"
        )
    standin.rerequest_check_run(run.id)
    deliveries = standin.wait_for_deliveries(2)
    ok = next(d for d in deliveries if d["url"] == receiver.url)
    assert ok["payload"]["check_run"]["id"] == run.id
    assert ok["payload"]["installation"]["id"] == INSTALLATION_ID
    failed = next(d for d in deliveries if d["url"] != receiver.url)
    assert failed["status_code"] is None and failed["error"]


# ---------------------------------------------------------------------- fixtures on disk


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _same_keys(fixture: Any, live: Any, path: str = "$") -> list[str]:
    problems: list[str] = []
    if isinstance(fixture, dict) and isinstance(live, dict):
        for key in fixture.keys() - live.keys():
            problems.append(f"{path}.{key} missing live")
        for key in live.keys() - fixture.keys():
            problems.append(f"{path}.{key} not in fixture")
        for key in fixture.keys() & live.keys():
            problems += _same_keys(fixture[key], live[key], f"{path}.{key}")
    elif isinstance(fixture, list) and isinstance(live, list) and fixture and live:
        problems += _same_keys(fixture[0], live[0], f"{path}[0]")
    return problems


EXPECTED_FIXTURES = [
    "ping/ping.json",
    "pull_request/edited.json",
    "pull_request/labeled.json",
    "issue_comment/created.json",
    "pull_request/opened.json",
    "pull_request/synchronize.json",
    "pull_request/closed.json",
    "pull_request/closed.not-merged.json",
    "pull_request/reopened.json",
    "pull_request_review/submitted.json",
    "push/push.json",
    "push/new-branch.json",
    "check_run/rerequested.json",
]


@pytest.mark.parametrize("name", EXPECTED_FIXTURES)
def test_fixtures_look_like_github(name: str) -> None:
    payload = json.loads((FIXTURES / name).read_text())
    assert payload["repository"]["full_name"] == "acme/models"
    assert "sender" in payload
    if name.startswith("pull_request/"):
        pr = payload["pull_request"]
        assert (
            payload["action"] == Path(name).stem.split(".")[0] and payload["number"] == pr["number"]
        )
        for key in ("head", "base"):
            assert {"ref", "sha", "repo", "label", "user"} <= pr[key].keys()
        assert {"merged", "mergeable", "html_url", "url", "user", "state"} <= pr.keys()


def test_live_payloads_have_the_fixture_shape(
    standin: GitHubStandIn, gh: github.Github, reviewer: github.Github, app_key: tuple[str, str]
) -> None:
    _, public = app_key
    standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER)
    standin.add_webhook(OWNER, NAME, "http://127.0.0.1:9/unused", HOOK_SECRET, ping=True)
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    standin.commit_files(OWNER, NAME, "topic", {"t.txt": "t\n"}, "topic")
    pr = repo.create_pull(base="main", head="topic", title="topic")
    standin.commit_files(OWNER, NAME, "topic", {"t.txt": "t2\n"}, "topic 2")
    pr.edit(title="Topic")
    pr.add_to_labels("aimodel:create")
    pr.create_issue_comment("Checks: running")
    pr.edit(state="closed")
    pr.edit(state="open")
    reviewer.get_repo(f"{OWNER}/{NAME}").get_pull(pr.number).create_review(event="APPROVE")
    pr.merge()
    live: dict[str, dict[str, Any]] = {}
    for d in standin.deliveries():
        stem = d["action"] or d["event"]
        live.setdefault(f"{d['event']}/{stem}.json", d["payload"])
    for name in EXPECTED_FIXTURES:
        if name.startswith("check_run/"):
            continue
        fixture = json.loads((FIXTURES / name).read_text())
        same_as = {
            "pull_request/closed.not-merged.json": "pull_request/closed.json",
            "push/new-branch.json": "push/push.json",
        }.get(name, name)
        assert _same_keys(_shape(fixture), _shape(live[same_as])) == [], name


# ---------------------------------------------------------------------- contents writes, hooks API, more events


def test_contents_create_update_delete_fire_push(
    standin: GitHubStandIn, gh: github.Github, receiver: Receiver
) -> None:
    standin.add_webhook(OWNER, NAME, receiver.url, HOOK_SECRET, events=["push"])
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    created = repo.create_file("models/gpt.yaml", "Add gpt", "name: gpt\n", branch="main")
    assert standin.branch_sha(OWNER, NAME, "main") == created["commit"].sha
    blob = created["content"].sha
    with pytest.raises(github.GithubException) as exc:
        repo.update_file("models/gpt.yaml", "Bump", "name: gpt\nversion: 2\n", "0" * 40)
    assert exc.value.status == 409
    repo.update_file("models/gpt.yaml", "Bump", "name: gpt\nversion: 2\n", blob)
    current = repo.get_contents("models/gpt.yaml")
    assert not isinstance(current, list)
    assert current.decoded_content == b"name: gpt\nversion: 2\n"
    repo.delete_file("models/gpt.yaml", "Drop gpt", current.sha)
    with pytest.raises(github.UnknownObjectException):
        repo.get_contents("models/gpt.yaml")
    pushes = standin.wait_for("push", count=3)
    assert [p["payload"]["head_commit"]["message"] for p in pushes] == [
        "Add gpt",
        "Bump",
        "Drop gpt",
    ]
    assert pushes[2]["payload"]["head_commit"]["removed"] == ["models/gpt.yaml"]


def test_hooks_api_creates_a_hook_that_pings(
    standin: GitHubStandIn, gh: github.Github, receiver: Receiver
) -> None:
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    hook = repo.create_hook(
        "web",
        {"url": receiver.url, "content_type": "json", "secret": HOOK_SECRET},
        events=["pull_request", "push"],
    )
    assert hook.config["secret"] == "********"
    ping = standin.wait_for("ping")[0]
    assert ping["payload"]["hook"]["id"] == hook.id and ping["status_code"] == 200
    assert receiver.received[0]["valid"]
    assert [h.id for h in repo.get_hooks()] == [hook.id]
    hook.delete()
    assert list(repo.get_hooks()) == []


def test_edits_labels_and_comments_fire_events(
    standin: GitHubStandIn, gh: github.Github, receiver: Receiver
) -> None:
    standin.add_webhook(
        OWNER, NAME, receiver.url, HOOK_SECRET, events=["pull_request", "issue_comment"]
    )
    standin.commit_files(OWNER, NAME, "topic", {"t.txt": "t\n"}, "topic")
    pr = gh.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="topic", title="old")
    pr.edit(title="new")
    pr.add_to_labels("aimodel:create")
    comment = pr.create_issue_comment("Checks: running")
    comment.edit("Checks: passed")
    edited = standin.wait_for("issue_comment", "edited")[0]["payload"]
    assert edited["changes"] == {"body": {"from": "Checks: running"}}
    assert edited["issue"]["pull_request"]["url"].endswith("/pulls/1")
    assert edited["comment"]["user"]["login"] == "octo-dev"
    pr_edit = standin.wait_for("pull_request", "edited")[0]["payload"]
    assert pr_edit["changes"] == {"title": {"from": "old"}}
    labeled = standin.wait_for("pull_request", "labeled")[0]["payload"]
    assert labeled["label"]["name"] == "aimodel:create"
    assert [(d["event"], d["action"]) for d in standin.wait_for_deliveries(5)] == [
        ("pull_request", "opened"),
        ("pull_request", "edited"),
        ("pull_request", "labeled"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
    ]


def test_concurrent_clients_do_not_trip_the_standin(
    standin: GitHubStandIn, workdir: git.Repo
) -> None:
    sha = standin.branch_sha(OWNER, NAME, "main")
    assert sha is not None
    push_branch(workdir, "busy", {"busy.txt": "b\n"}, "busy")
    with standin.client() as client:
        pr = client.get_repo(f"{OWNER}/{NAME}").create_pull(base="main", head="busy", title="busy")
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with standin.client() as c:
                repo = c.get_repo(f"{OWNER}/{NAME}")
                for j in range(5):
                    repo.get_commit(sha).create_status("success", context=f"ctx-{i}-{j}")
                    repo.get_pull(pr.number).create_issue_comment(f"{i}/{j}")
                    list(repo.get_pulls(state="all"))
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    push_branch(workdir, "busy", {"busy.txt": "b2\n"}, "busy 2")
    for t in threads:
        t.join(60)
    assert failures == []
    assert len(standin.statuses(OWNER, NAME, sha)) == 20
    assert len(standin.comments(OWNER, NAME, pr.number)) == 20


def test_stop_is_idempotent_and_restartable() -> None:
    s = GitHubStandIn()
    s.start()
    s.create_repo("acme", "x")
    assert requests.get(
        f"{s.api_url}/rate_limit", headers={"Authorization": f"token {s.token}"}, timeout=10
    ).ok
    s.stop()
    s.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{s.api_url}/rate_limit", timeout=2)


def test_compare_commits_trees_and_blobs(
    standin: GitHubStandIn, gh: github.Github, workdir: git.Repo
) -> None:
    base = standin.branch_sha(OWNER, NAME, "main")
    head = push_branch(workdir, "cmp", {"models/bert.yaml": "name: bert\n"}, "Add bert")
    standin.commit_files(OWNER, NAME, "main", {"other.txt": "o\n"}, "main moves on")
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    cmp = repo.compare("main", "cmp")
    assert (cmp.status, cmp.ahead_by, cmp.behind_by) == ("diverged", 1, 1)
    assert cmp.merge_base_commit.sha == base
    assert [c.sha for c in cmp.commits] == [head]
    assert [f.filename for f in cmp.files] == ["models/bert.yaml"]

    assert [c.sha for c in repo.get_commits(sha="cmp")] == [head, base]
    assert [c.sha for c in repo.get_commits(sha="cmp", path="models/bert.yaml")] == [head]

    tree = repo.get_git_tree("cmp", recursive=True)
    paths = {e.path: e for e in tree.tree}
    assert {"README.md", "models", "models/bert.yaml", "models/resnet.yaml"} <= set(paths)
    assert paths["models"].type == "tree"
    blob = repo.get_git_blob(paths["models/bert.yaml"].sha)
    assert base64.b64decode(blob.content) == b"name: bert\n"


def test_branch_protection_blocks_merge_until_green_and_approved(
    standin: GitHubStandIn, gh: github.Github, reviewer: github.Github, workdir: git.Repo
) -> None:
    standin.protect_branch(
        OWNER, NAME, "main", required_checks=["aimodel/validate"], required_approvals=1
    )
    head = push_branch(workdir, "guarded", {"g.txt": "g\n"}, "guarded")
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    pr = repo.create_pull(base="main", head="guarded", title="guarded")
    assert repo.get_pull(pr.number).mergeable_state == "blocked"
    assert repo.get_branch("main").protected is True
    with pytest.raises(github.GithubException) as exc:
        pr.merge()
    assert exc.value.status == 405 and "aimodel/validate" in exc.value.data["message"]

    repo.get_commit(head).create_status("failure", context="aimodel/validate")
    with pytest.raises(github.GithubException) as exc:
        pr.merge()
    assert "is failing" in exc.value.data["message"]

    repo.get_commit(head).create_status("success", context="aimodel/validate")
    with pytest.raises(github.GithubException) as exc:
        pr.merge()
    assert "approving review" in exc.value.data["message"]

    reviewer.get_repo(f"{OWNER}/{NAME}").get_pull(pr.number).create_review(event="APPROVE")
    assert repo.get_pull(pr.number).mergeable_state == "clean"
    assert pr.merge().merged


def test_mergeable_is_computed_in_the_background(workdir: git.Repo) -> None:
    with GitHubStandIn(mergeable_unknown_polls=2) as s:
        s.create_repo(OWNER, NAME)
        s.commit_files(OWNER, NAME, "topic", {"t.txt": "t\n"}, "topic")
        with s.client() as client:
            repo = client.get_repo(f"{OWNER}/{NAME}")
            pr = repo.create_pull(base="main", head="topic", title="t")
            assert pr.mergeable is None  # the creation answer
            assert repo.get_pull(pr.number).mergeable is None
            assert repo.get_pull(pr.number).mergeable is True
            s.commit_files(OWNER, NAME, "topic", {"t.txt": "t2\n"}, "topic 2")
            assert repo.get_pull(pr.number).mergeable_state == "unknown"
