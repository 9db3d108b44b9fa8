"""The GitHub forge against the stand-in: real HTTP (PyGithub), real git (GitPython)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.forges.base import CheckResult, ForgeError
from bot.forges.meta import PrMeta, SlackThread
from bot.policy import Review
from tests.github_helpers import (
    BOT_TOKEN,
    NAME,
    OWNER,
    REPO,
    Bot,
    GitHubWorld,
    make_world,
    post_delivery,
    serve_bot,
    wait_until,
)
from tests.standins.github_api import GitHubStandIn

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["app", "token"])
def world(request: pytest.FixtureRequest, standin: GitHubStandIn, tmp_path: Path) -> GitHubWorld:
    return make_world(standin, tmp_path / "home", app=request.param == "app")


@pytest.fixture
def app_world(standin: GitHubStandIn, tmp_path: Path) -> GitHubWorld:
    return make_world(standin, tmp_path / "home", app=True)


@pytest.fixture
def ctx(world: GitHubWorld) -> Iterator[Any]:
    from bot.app import build_context

    c = build_context(world.settings())
    yield c
    c.close()


def create_command(model: dict[str, Path], name: str = "fraud") -> Any:
    from bot.commands import parse

    return parse(["create", name, "--app", "payments", "--dataset", "transactions", "--artifact", str(model["onnx"]),
                  "--dataset-uri", str(model["data"]), "--label-column", "label", "--SLA", "accuracy>=0.9"]).command


def propose(ctx: Any, model: dict[str, Path], who: str = "ada", name: str = "fraud") -> Any:
    from bot.gitops import Actor

    return ctx.gitops.propose(create_command(model, name), Actor(who, "cli")).pr


# --------------------------------------------------------------------------- metadata and messages


def test_metadata_survives_the_body_whatever_it_holds() -> None:
    from bot.messages.github import parse_pr_body, render_pr_body

    meta = {"model": "m", "reason": "ends --> here <!-- and <b>", "slack": {"channel": "C1", "ts": "1.2"}, "n": [1, 2]}
    body = render_pr_body("Requested by **ada**.\n\n- adds `m`", meta)
    assert "-->" not in body.split("<!-- aimodel:meta ", 1)[1][:-4]
    visible, parsed = parse_pr_body(body)
    assert parsed == meta and visible == "Requested by **ada**.\n\n- adds `m`"
    again = render_pr_body(body, {**parsed, "signed_head": "abc"})  # re-rendering never doubles it
    assert again.count("aimodel:meta") == 1 and parse_pr_body(again)[1]["signed_head"] == "abc"
    assert parse_pr_body("a person's own description") == ("a person's own description", {})
    huge = render_pr_body("x" * 100_000, meta)
    assert len(huge) <= 65_536 and parse_pr_body(huge)[1] == meta


def test_open_pr_with_labels_body_and_metadata(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    pr = propose(ctx, model)
    assert pr.number == 1 and pr.url.endswith(f"/{OWNER}/{NAME}/pull/1") and pr.author == "ada"
    data = world.standin.pulls(OWNER, NAME)[0]
    assert [label["name"] for label in data["labels"]] == ["aimodel", "aimodel:create"]
    assert "Requested by **ada** via cli" in data["body"] and "<!-- aimodel:meta " in data["body"]
    again = ctx.forge.get_pr(1)
    assert again.meta.locks == ("model:fraud", "app:payments", "dataset:transactions")
    assert again.body.startswith("Requested by **ada**") and "aimodel:meta" not in again.body
    assert [p.number for p in ctx.forge.list_prs("open")] == [1]
    assert ctx.forge.list_prs("closed") == []


# --------------------------------------------------------------------------- checks


def test_checks_are_reported_and_read_back(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    pr = propose(ctx, model)
    forge = ctx.forge
    annotation = {"path": "models/fraud/model.yaml", "line": 7, "message": "spec.sla: unknown metric 'acuracy'", "level": "failure"}
    forge.set_check(1, CheckResult("manifest", "pending", "waiting", "", pr.head))
    forge.set_check(1, CheckResult("manifest", "failure", "1 problem(s)", "- `models/fraud/model.yaml:7`", pr.head, (annotation,)))
    forge.set_check(1, CheckResult("scan", "skipped", "manifest check failed", "", pr.head))
    forge.set_check(1, CheckResult("validate", "error", "internal error: boom", "", pr.head))
    forge.set_check(1, CheckResult("sign", "pending", "waiting", "", pr.head))
    checks = forge.get_pr(1).checks
    assert {n: (c.state, c.summary, c.commit) for n, c in checks.items()} == {
        "manifest": ("failure", "1 problem(s)", pr.head),
        "scan": ("skipped", "manifest check failed", pr.head),
        "validate": ("error", "internal error: boom", pr.head),
        "sign": ("pending", "waiting", pr.head),
    }
    if world.app:
        runs = {r["name"]: r for r in world.standin.check_runs(OWNER, NAME, pr.head)}
        manifest = runs["aimodel/manifest"]
        assert (manifest["status"], manifest["conclusion"]) == ("completed", "failure")
        assert manifest["output"]["annotations_count"] == 1
        assert "`models/fraud/model.yaml:7`" in manifest["output"]["summary"]
        assert runs["aimodel/scan"]["conclusion"] == "skipped"
        assert runs["aimodel/sign"]["status"] == "in_progress"
        # the pending run was completed in place, not duplicated
        all_manifest = [r for r in world.standin.check_runs(OWNER, NAME) if r["name"] == "aimodel/manifest"]
        assert len(all_manifest) == 1
    else:
        contexts = {s["context"]: s for s in reversed(world.standin.statuses(OWNER, NAME, pr.head))}
        assert contexts["aimodel/scan"]["state"] == "success"
        assert contexts["aimodel/scan"]["description"].startswith("skipped: ")
        assert contexts["aimodel/validate"]["state"] == "error"
        assert contexts["aimodel/manifest"]["target_url"].endswith("/pull/1")


def test_summary_comment_is_one_comment_edited_in_place(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    propose(ctx, model)
    ctx.forge.comment(1, "<!-- aimodel:summary -->\nfirst")
    with world.client("ops") as gh:
        gh.get_repo(REPO).get_issue(1).create_comment("a person says hello")
    ctx.forge.comment(1, "second")
    ctx.notifier.deliver("checks", {"pr": 1})
    ctx.forge._comment_ids.clear()  # another process: finds it again by its marker
    ctx.forge.comment(1, "<!-- aimodel:summary -->\nthird")
    bodies = [c["body"] for c in world.standin.comments(OWNER, NAME, 1)]
    assert sorted(bodies) == ["<!-- aimodel:summary -->\nthird", "a person says hello"]


# --------------------------------------------------------------------------- reviews and approvals


def test_reviews_map_logins_to_people_and_bot_approvals_count(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    propose(ctx, model)
    world.standin.add_token("ghp_stranger", "stranger-gh")
    with world.client("ops") as ops, world.client("eve") as eve:
        ops.get_repo(REPO).get_pull(1).create_review(event="REQUEST_CHANGES", body="not yet")
        eve.get_repo(REPO).get_pull(1).create_review(event="APPROVE")
        ops.get_repo(REPO).get_pull(1).create_review(event="APPROVE")
    with world.standin.client("ghp_stranger") as stranger:
        stranger.get_repo(REPO).get_pull(1).create_review(event="APPROVE")
    events: list[tuple[str, dict[str, Any]]] = []
    ctx.forge.on_event = lambda event, payload: events.append((event, payload))
    ctx.forge.add_review(1, Review("dev", "approved"))  # through Slack or the CLI
    pr = ctx.forge.get_pr(1)
    assert [(r.person, r.state) for r in pr.reviews] == [
        ("ops", "changes_requested"), ("eve", "approved"), ("ops", "approved"), ("github:stranger-gh", "approved"), ("dev", "approved"),
    ]
    assert all(r.commit == pr.head for r in pr.reviews)
    assert events == [("pull_request_review.submitted", {"number": 1, "person": "dev", "state": "approved"})]
    from bot.policy import approval_status

    status = approval_status(ctx.gitops.catalog().config, ["prod"], pr.reviews, pr.author, changed_paths=["models/fraud/model.yaml"], head=pr.head)
    assert status.met and set(status.have["prod"]) == {"dev", "ops"}  # the stranger does not count


def test_add_review_through_gitops_queues_the_evaluation(ctx: Any, model: dict[str, Path]) -> None:
    from bot.gitops import Actor

    propose(ctx, model)
    ctx.jobs.huey.flush()
    ctx.gitops.approve(1, Actor("ops", "slack"))
    assert [t.name for t in ctx.jobs.huey.pending()] == ["aimodel.after_checks"]
    assert ctx.forge.get_pr(1).meta.reviews[0].person == "ops"


# --------------------------------------------------------------------------- merge and close


def test_merge_checks_the_head_and_deletes_the_branch(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    pr = propose(ctx, model)
    with pytest.raises(ForgeError, match="moved"):
        ctx.forge.merge(1, message="Merge #1: x", expected_head="0" * 40)
    commit = ctx.forge.merge(1, message=f"Merge #1: {pr.title}\n\nMerged by ada.", expected_head=pr.head)
    assert world.standin.branch_sha(OWNER, NAME, "main") == commit
    assert world.standin.branch_sha(OWNER, NAME, pr.branch) is None
    merged = ctx.forge.get_pr(1)
    assert merged.state == "merged" and merged.merge_commit == commit
    from bot.forges.github import merged_pr_number

    info = world.standin.pulls(OWNER, NAME)[0]
    assert info["merged"]
    ctx.workspace.fetch()
    message = ctx.workspace.repo.commit(commit).message
    assert merged_pr_number(str(message)) == 1
    with pytest.raises(ForgeError, match="merged"):
        ctx.forge.merge(1, message="again", expected_head=pr.head)


def test_close_releases_nothing_but_closes_and_deletes_the_branch(ctx: Any, world: GitHubWorld, model: dict[str, Path]) -> None:
    pr = propose(ctx, model)
    ctx.forge.close(1)
    assert ctx.forge.get_pr(1).state == "closed"
    assert world.standin.branch_sha(OWNER, NAME, pr.branch) is None
    with pytest.raises(ForgeError):
        ctx.forge.close(1)
    with pytest.raises(ForgeError, match="no pull request #9"):
        ctx.forge.get_pr(9)


# --------------------------------------------------------------------------- rate limits, retries, auth


def test_rate_limits_and_server_errors_are_waited_out(app_world: GitHubWorld, model: dict[str, Path]) -> None:
    from bot.app import build_context

    with build_context(app_world.settings()) as ctx:
        pr = propose(ctx, model)
        s = app_world.standin
        s.fail_next("POST", r"/check-runs$", 403, headers={"Retry-After": "1"})  # secondary rate limit
        started = time.monotonic()
        ctx.forge.set_check(1, CheckResult("manifest", "success", "ok", "", pr.head))
        assert time.monotonic() - started >= 0.9
        s.fail_next("GET", r"/pulls/1$", 502, times=2)
        s.fail_next("GET", r"/pulls/1/reviews$", 429, headers={"Retry-After": "0"})
        assert ctx.forge.get_pr(1).checks["manifest"].state == "success"
        s.fail_next("PATCH", r"/pulls/1$", 500)
        ctx.forge.update_meta(1, lambda m: dataclasses.replace(m, slack=SlackThread("C1", "1.1")))
        assert ctx.forge.get_pr(1).meta.slack == SlackThread("C1", "1.1")
        assert ctx.forge.retries == 5
        # a refusal that is not temporary is not retried
        s.fail_next("PUT", r"/pulls/1/merge$", 405, body={"message": "Pull Request is not mergeable"})
        with pytest.raises(ForgeError, match="not mergeable"):
            ctx.forge.merge(1, message="Merge #1", expected_head=pr.head)
        assert ctx.forge.retries == 5
        # what keeps failing surfaces (the queued task fails and is retried, nothing is lost)
        ctx.forge.max_attempts = 2
        s.fail_next("GET", r"/pulls/1$", 503, times=5)
        from github.GithubException import GithubException

        with pytest.raises(GithubException):
            ctx.forge.get_pr(1)


def test_writes_are_paced_by_a_token_bucket() -> None:
    from bot.forges.github import TokenBucket

    bucket = TokenBucket(rate=10.0, burst=2.0)
    started = time.monotonic()
    for _ in range(7):
        bucket.take()
    assert 0.45 <= time.monotonic() - started < 2.0  # 2 at once, then 5 at 10/s


def test_app_installation_tokens_are_refreshed_before_expiry(standin: GitHubStandIn, tmp_path: Path) -> None:
    from bot.forges.github_auth import TokenSource
    from tests.github_helpers import APP_ID, INSTALLATION_ID, app_keypair

    private, public = app_keypair()
    standin.create_repo(OWNER, NAME)
    standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER, token_ttl=3600)
    source = TokenSource(api_url=standin.api_url, repo=REPO, app_id=str(APP_ID), app_private_key=private.replace("\n", "\\n"))
    first = source.token()
    assert first.startswith("ghs_") and source.token() == first and source.refreshes == 1
    assert source.installation_id == INSTALLATION_ID and source.is_app
    # an expired (or revoked) token is refused; the forge fetches a new one and goes on
    from bot.forges.github import GitHubForge

    forge = GitHubForge(repo=REPO, api_url=standin.api_url, source=source)
    try:
        standin.expire_token(first)
        assert forge.checks_for(str(standin.branch_sha(OWNER, NAME, "main"))) == {}
        assert source.refreshes == 2 and source.token() != first
    finally:
        forge.shutdown()
    # tokens that live less than the refresh margin are renewed on every use
    standin.register_app(APP_ID, public, INSTALLATION_ID, owner=OWNER, token_ttl=200)
    short = TokenSource(api_url=standin.api_url, repo=REPO, app_id=str(APP_ID), app_private_key=private)
    a, b = short.token(), short.token()
    assert a != b and short.refreshes == 2
    key_file = tmp_path / "app.pem"
    key_file.write_text(private)
    from_file = TokenSource(api_url=standin.api_url, repo=REPO, app_id=str(APP_ID), app_private_key=str(key_file))
    assert from_file.token().startswith("ghs_")


def test_the_clone_is_kept_and_never_holds_the_token(world: GitHubWorld, model: dict[str, Path]) -> None:
    from bot.app import build_context

    with build_context(world.settings()) as ctx:
        clone = ctx.workspace.path
        assert clone == world.home / "github" / OWNER / NAME
        marker = clone / ".git" / "kept"
        marker.write_text("x")
        propose(ctx, model)
    with build_context(world.settings()) as again:  # the next command fetches, never re-clones
        assert marker.exists()
        again.gitops.catalog()
    config = (clone / ".git" / "config").read_text()
    assert BOT_TOKEN not in config and "x-access-token" not in config and "ghs_" not in config
    assert f"{OWNER}/{NAME}.git" in config


# --------------------------------------------------------------------------- webhooks in order and out of order


def drain_after(bot: Bot, event: str, action: str | None, count: int) -> None:
    bot.world.standin.wait_for(event, action, count=count, timeout=30)
    bot.ctx.jobs.drain()


def test_person_push_reruns_checks_and_signs_again_in_the_store(app_world: GitHubWorld, model: dict[str, Path]) -> None:
    s = app_world.standin
    with serve_bot(app_world) as bot:
        s.add_webhook(OWNER, NAME, f"{bot.url}/github/webhook", "It's a Secret to Everybody")
        pr = propose(bot.ctx, model)
        drain_after(bot, "pull_request", "opened", 1)
        signed = bot.ctx.forge.get_pr(1)
        assert signed.head == pr.head and not signed.meta.signed_head  # the bot pushed nothing
        assert {c.state for c in signed.checks.values() if c.commit == signed.head} == {"success"}

        # a person pushes a change to the pull request: the version renamed by hand (not merged yet)
        ctx = bot.ctx
        model_yaml = yaml.safe_load(ctx.workspace.read_file(signed.head, "models/fraud/model.yaml") or b"")
        model_yaml["spec"]["versions"][-1]["version"] = "1.0.1"
        person_head = s.commit_files(OWNER, NAME, signed.branch, {
            "models/fraud/model.yaml": yaml.safe_dump(model_yaml, sort_keys=False),
        }, "bump to 1.0.1 by hand", author=("Ada", "ada@example.com"), pusher="ada-gh")
        drain_after(bot, "pull_request", "synchronize", 1)
        after = ctx.forge.get_pr(1)
        # the attestation of 1.0.0 does not vouch for 1.0.1: the checks ran on the person's
        # commit, which stays the head, and the store holds the new attestation
        assert after.head == person_head
        runs = {r["name"]: r for r in s.check_runs(OWNER, NAME, person_head)}
        assert runs["aimodel/validate"]["conclusion"] == "success"
        assert "signed" in runs["aimodel/sign"]["output"]["title"]
        assert {n: c.state for n, c in after.checks.items()} == dict.fromkeys(("manifest", "scan", "validate", "sign"), "success")
        digest = model_yaml["spec"]["versions"][-1]["artifact"]["sha256"]
        assert ctx.store.attestation(digest, "fraud", "1.0.1") is not None
        assert ctx.store.signature(digest) is not None


def test_out_of_order_and_late_events_do_no_harm(app_world: GitHubWorld, model: dict[str, Path]) -> None:
    from tests.github_helpers import load_fixture

    s = app_world.standin
    with serve_bot(app_world) as bot:
        s.add_webhook(OWNER, NAME, f"{bot.url}/github/webhook", "It's a Secret to Everybody")
        first = propose(bot.ctx, model)
        drain_after(bot, "pull_request", "opened", 1)
        runs_before = len(s.check_runs(OWNER, NAME))
        # a synchronize for the head arrives late, after its checks finished (a redelivery)
        late = load_fixture("pull_request/synchronize.json")
        late["pull_request"] = {**late["pull_request"], "number": 1, "head": {**late["pull_request"]["head"], "sha": first.head}}
        assert post_delivery(bot.url, "pull_request", late).json()["ok"]
        assert bot.ctx.jobs.drain() == 1
        assert len(s.check_runs(OWNER, NAME)) == runs_before  # that head's checks ran once
        # closed, then a review that was sent before it: nothing is merged, nothing breaks
        bot.ctx.forge.close(1)
        drain_after(bot, "pull_request", "closed", 1)
        assert bot.ctx.locks.all() == []
        review = load_fixture("pull_request_review/submitted.json")
        assert post_delivery(bot.url, "pull_request_review", review).json()["ok"]
        bot.ctx.jobs.drain()
        assert bot.ctx.forge.get_pr(1).state == "closed"
        assert s.branch_sha(OWNER, NAME, "main") == wait_until(lambda: s.branch_sha(OWNER, NAME, "main"))
        codes = [d["status_code"] for d in s.deliveries()]
        assert all(code in (200, 202) for code in codes), codes


def test_how_long_to_wait_follows_githubs_advice() -> None:
    from bot.forges.github_auth import retry_after_seconds

    assert retry_after_seconds({"Retry-After": "7"}, 0) == 7.0
    reset = time.time() + 20
    assert 19 <= retry_after_seconds({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}, 0) <= 22
    assert retry_after_seconds({}, 0, secondary=True) == 60.0
    assert [retry_after_seconds({}, a) for a in range(3)] == [0.5, 1.0, 2.0]
    assert retry_after_seconds({"Retry-After": "3600"}, 0) == 60.0  # capped: the queued task retries later


def test_a_pull_request_opened_by_a_person_on_github(ctx: Any, world: GitHubWorld) -> None:
    s = world.standin
    s.commit_files(OWNER, NAME, "by-hand", {"README.md": "# edited by hand\n"}, "edit", pusher="ada-gh")
    with world.client("ada") as gh:
        gh.get_repo(REPO).create_pull(base="main", head="by-hand", title="A change by hand", body="no bot metadata here")
    pr = ctx.forge.get_pr(1)
    assert pr.author == "ada" and pr.meta == PrMeta() and pr.body == "no bot metadata here"
    world.standin.add_token("ghp_someone", "someone-gh")
    s.commit_files(OWNER, NAME, "other", {"README.md": "# other\n"}, "edit")
    with world.standin.client("ghp_someone") as gh:
        gh.get_repo(REPO).create_pull(base="main", head="other", title="stranger")
    assert ctx.forge.get_pr(2).author == "github:someone-gh"


def test_rerequested_check_run_runs_the_checks_again(app_world: GitHubWorld, model: dict[str, Path]) -> None:
    s = app_world.standin
    with serve_bot(app_world) as bot:
        s.add_webhook(OWNER, NAME, f"{bot.url}/github/webhook", "It's a Secret to Everybody")
        propose(bot.ctx, model)
        drain_after(bot, "pull_request", "opened", 1)
        signed = bot.ctx.forge.get_pr(1)
        assert signed.checks["sign"].summary.startswith("fraud 1.0.0: signed")
        run = next(r for r in s.check_runs(OWNER, NAME, signed.head) if r["name"] == "aimodel/validate")
        s.rerequest_check_run(run["id"], sender="ops-gh")
        s.wait_for("check_run", "rerequested", count=1, timeout=30)
        from handlers.github import RERUNS

        for thread in list(RERUNS):
            thread.join(timeout=30)
        bot.ctx.jobs.drain()
        again = bot.ctx.forge.get_pr(1)
        # a real re-run on the same head: it signs anew, in the store; the branch is not touched
        assert again.head == signed.head
        runs = [r for r in s.check_runs(OWNER, NAME, signed.head) if r["name"] == "aimodel/validate"]
        assert len(runs) == 2 and max(runs, key=lambda r: r["id"])["conclusion"] == "success"  # a new run, as on GitHub
        final = bot.ctx.forge.get_pr(1)
        assert {n: c.state for n, c in final.checks.items() if c.commit == final.head} == dict.fromkeys(("manifest", "scan", "validate", "sign"), "success")


class Recorder:
    """Stands where the Slack notifier goes (the Notifier port), recording what it is told."""

    enabled = True

    def __init__(self) -> None:
        self.told: list[tuple[str, dict[str, Any]]] = []

    def deliver(self, kind: str, data: dict[str, Any]) -> None:
        self.told.append((kind, data))


def test_the_summary_notifier_passes_the_news_on(world: GitHubWorld, model: dict[str, Path]) -> None:
    from bot.app import Context
    from bot.forges.github import build_github_forge

    parts = build_github_forge(world.settings())
    slack = Recorder()
    made: list[Any] = []
    parts["notifiers"] = [*parts["notifiers"], lambda ctx: made.append(ctx) or slack]  # as a face registers one
    with Context(world.settings(), **parts) as ctx:
        assert made == [ctx]  # a face's notifier is made with the process's Context
        propose(ctx, model)
        ctx.notifier.deliver("waiting", {"pr": 1, "text": "#1 waits"})
        assert slack.told == [("waiting", {"pr": 1, "text": "#1 waits"})]
        assert len(world.standin.comments(OWNER, NAME, 1)) == 1


def test_check_runs_refused_fall_back_to_statuses(standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path]) -> None:
    from bot.app import build_context

    world = make_world(standin, tmp_path / "home", app=False)
    with build_context(world.settings()) as ctx:
        pr = propose(ctx, model)
        ctx.forge.use_check_runs = True  # as if the App had no "checks" permission: GitHub says 403
        ctx.forge.set_check(1, CheckResult("scan", "success", "all clean", "", pr.head))
        assert ctx.forge.use_check_runs is False
        assert [s["context"] for s in standin.statuses(OWNER, NAME, pr.head)] == ["aimodel/scan"]
        assert ctx.forge.get_pr(1).checks["scan"].state == "success"


def test_get_pr_never_waits_for_a_commit_the_bot_made(app_world: GitHubWorld, model: dict[str, Path]) -> None:
    """Signatures are in the artifact store, so no bot commit waits for signature metadata;
    a commit the bot makes (CODEOWNERS kept in step) is read at once."""
    from bot.app import build_context

    with build_context(app_world.settings()) as ctx:
        pr = propose(ctx, model)
        ours = ctx.workspace.commit_change(pr.head, {"CODEOWNERS": b"* @ops-gh\n"}, "Keep CODEOWNERS in step")  # authored by the bot
        ctx.workspace.push(ours, pr.branch, expect=pr.head)
        started = time.monotonic()
        assert ctx.forge.get_pr(1).head == ours and time.monotonic() - started < 2

def test_a_policy_change_opened_on_github_waits_for_a_policy_owner(app_world: GitHubWorld) -> None:
    """A person edits the rules on GitHub (makes herself DevOps): the summary and the policy
    check say a policy owner must approve, and merging through the bot is refused to her."""
    from bot.app import build_context
    from bot.gitops import Actor, Refusal
    from bot.manifests import CONFIG_PATH

    s = app_world.standin
    with build_context(app_world.settings()) as ctx:
        ctx.workspace.fetch()
        config = yaml.safe_load(ctx.workspace.read_file(ctx.workspace.head_of(), CONFIG_PATH) or b"")
        config["people"]["ada"]["roles"] = ["devops-engineer"]
        s.commit_files(OWNER, NAME, "ada-rules", {CONFIG_PATH: yaml.safe_dump(config)}, "me too", pusher="ada-gh")
        with app_world.client("ada") as gh:
            gh.get_repo(REPO).create_pull(base="main", head="ada-rules", title="roles", body="by hand")
        ctx.notifier.deliver("waiting", {"pr": 1})
        waiting = "policy change (.aimodel/config.yaml) needs 1 approval(s) from DevOps Engineer, not its author; has 0 (can approve: dev, ops)"
        [summary] = [c["body"] for c in s.comments(OWNER, NAME, 1)]
        assert f"- waiting: {waiting}" in summary
        assert "- can approve: @dev-gh, @ops-gh" in summary
        assert ctx.gitops.pr_view(1)["policy"] == [CONFIG_PATH]
        with pytest.raises(Refusal) as refused:
            ctx.gitops.merge(1, Actor("ada", "github"))
        assert waiting in refused.value.message and "ada is Data Scientist" in refused.value.message
