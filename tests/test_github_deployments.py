"""Releases on GitHub's Environments page: each release record becomes a Deployment of the
applied commit to its environment, with statuses in_progress -> success, or failure with the
reason. Against the GitHub stand-in over real HTTP, through PyGithub."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github.GithubException import GithubException

from bot.deploy.github_deployments import deployment_of, report_release
from bot.deploy.records import ModelPin, ReleaseRecord
from bot.forges.base import RecordsDeployments
from bot.forges.github import GitHubForge
from bot.forges.github_auth import TokenSource
from bot.forges.local import LocalForge
from tests.github_helpers import (
    BOT_TOKEN,
    NAME,
    OWNER,
    REPO,
    GitHubWorld,
    make_world,
    wait_until,
    web_process,
)
from tests.standins.github_api import GitHubStandIn

pytestmark = pytest.mark.timeout(120)

DIGEST = "ab" * 32


def _record(commit: str, *, n: int = 1, env: str = "prod", result: str = "ok", reason: str = "", pr: int | None = 2) -> ReleaseRecord:
    return ReleaseRecord(
        id=f"{env}-payments-{n}", env=env, app="payments", app_version="2.0.0", models={"fraud": ModelPin("1.1.0", DIGEST)},
        commit=commit, pr=pr, author="eve", approvers=("ops",), started=1000.0, finished=1002.0, result=result, reason=reason,
    )


@pytest.fixture
def world(standin: GitHubStandIn, tmp_path: Path) -> GitHubWorld:
    return make_world(standin, tmp_path / "home", app=False)


@pytest.fixture
def forge(world: GitHubWorld) -> Iterator[GitHubForge]:
    api = world.standin.api_url
    made = GitHubForge(repo=REPO, api_url=api, source=TokenSource(api_url=api, repo=REPO, token=BOT_TOKEN), max_attempts=2)
    yield made
    made.shutdown()


def _main(world: GitHubWorld) -> str:
    sha = world.standin.branch_sha(OWNER, NAME, "main")
    assert sha
    return sha


def _commit_status(world: GitHubWorld, sha: str, state: str, context: str) -> None:
    with world.client() as gh:
        gh.requester.requestJsonAndCheck("POST", f"/repos/{REPO}/statuses/{sha}", input={"state": state, "context": context})


def test_only_a_forge_with_deployments_has_the_ability(forge: GitHubForge, tmp_path: Path) -> None:
    assert isinstance(forge, RecordsDeployments)
    assert not isinstance(LocalForge(tmp_path), RecordsDeployments)


def test_a_release_is_a_deployment_of_its_commit_with_in_progress_then_success(world: GitHubWorld, forge: GitHubForge) -> None:
    sha = _main(world)
    # a red commit status on the commit: GitHub would refuse the deployment unless told the bot decided
    _commit_status(world, sha, "failure", "ci/other")
    forge.record_deployment(deployment_of(_record(sha)))
    forge.record_deployment(deployment_of(_record(sha)))  # a retried task: the same release, not a second one
    [made] = world.standin.deployments(OWNER, NAME)
    assert (made["environment"], made["sha"], made["ref"], made["task"]) == ("prod", sha, sha, "deploy:payments")
    assert made["description"] == "payments 2.0.0: fraud 1.1.0"
    assert made["payload"]["release"] == "prod-payments-1"
    assert made["payload"]["models"] == {"fraud": {"version": "1.1.0", "sha256": DIGEST}}
    assert made["payload"]["approvers"] == ["ops"] and made["payload"]["pr"] == 2
    assert [s["state"] for s in made["statuses"]] == ["in_progress", "success"]
    final = made["statuses"][-1]
    assert final["description"] == "prod-payments-1 is live in prod"
    assert final["log_url"] == f"{world.standin.base_url}/{OWNER}/{NAME}/pull/2"


def test_a_refused_release_gets_a_failure_status_with_the_reason(world: GitHubWorld, forge: GitHubForge) -> None:
    sha = _main(world)
    reason = "the stored object sha256/" + DIGEST + " does not match its digest: it was changed or damaged in the artifact store"
    forge.record_deployment(deployment_of(_record(sha, n=2, result="failed", reason=reason, pr=None)))
    [made] = world.standin.deployments(OWNER, NAME)
    assert [s["state"] for s in made["statuses"]] == ["in_progress", "failure"]
    final = made["statuses"][-1]["description"]
    assert final.startswith("prod-payments-2 refused: the stored object sha256/") and len(final) <= 140
    assert made["statuses"][-1]["log_url"] == ""  # no pull request asked for it (a sync)


def test_each_environment_and_application_gets_its_own_deployment(world: GitHubWorld, forge: GitHubForge) -> None:
    sha = _main(world)
    for env in ("dev", "test", "prod"):
        forge.record_deployment(deployment_of(_record(sha, env=env)))
    made = world.standin.deployments(OWNER, NAME)
    assert [d["environment"] for d in made] == ["dev", "test", "prod"]
    assert all([s["state"] for s in d["statuses"]] == ["in_progress", "success"] for d in made)  # none made inactive


def test_github_refusing_is_logged_and_the_release_stands(world: GitHubWorld, caplog: pytest.LogCaptureFixture) -> None:
    from bot.app import build_context

    ctx = build_context(world.settings())
    try:
        world.standin.fail_next("POST", r"/deployments$", 422)
        with caplog.at_level(logging.WARNING, logger="aimodel.deploy"):
            report_release(ctx, _record(_main(world)))  # does not raise
        assert "prod-payments-1: GitHub refused the deployment of prod-payments-1: Validation Failed" in caplog.text
        assert world.standin.deployments(OWNER, NAME) == []
        report_release(ctx, _record(_main(world)))  # told again later, it is shown
        assert [s["state"] for s in world.standin.deployments(OWNER, NAME)[0]["statuses"]] == ["in_progress", "success"]
    finally:
        ctx.close()


# --------------------------------------------------------------------------- the stand-in answers as GitHub does


def test_standin_deployments_follow_githubs_rules(world: GitHubWorld) -> None:
    sha = _main(world)
    with world.client() as gh:
        repo = gh.get_repo(REPO)
        _commit_status(world, sha, "pending", "ci/slow")
        with pytest.raises(GithubException) as conflict:  # required_contexts left out: every context must be success
            repo.create_deployment(ref="main", environment="prod")
        assert conflict.value.status == 409
        first = repo.create_deployment(ref="main", environment="dev", required_contexts=[], payload={"release": "a"})
        assert first.sha == sha and first.environment == "dev" and first.payload == {"release": "a"}
        second = repo.create_deployment(ref=sha, environment="prod", required_contexts=[], task="deploy:x")
        with pytest.raises(GithubException) as unknown:
            repo.create_deployment(ref="no-such-branch", required_contexts=[])
        assert unknown.value.status == 422
        assert [d.id for d in repo.get_deployments()] == [second.id, first.id]  # newest first
        assert [d.id for d in repo.get_deployments(environment="dev")] == [first.id]
        assert [d.id for d in repo.get_deployments(sha=sha, task="deploy:x")] == [second.id]
        with pytest.raises(GithubException) as long:
            first.create_status("success", description="x" * 141)
        assert long.value.status == 422
        first.create_status("success", description="ok")
        again = repo.create_deployment(ref="main", environment="dev", required_contexts=[])
        again.create_status("success")  # auto_inactive (GitHub's default): the earlier one in dev is inactive
        assert [s.state for s in first.get_statuses()] == ["inactive", "success"]
        assert [s.state for s in second.get_statuses()] == []


# --------------------------------------------------------------------------- through the GitHub face


@pytest.mark.timeout(300)
def test_merged_deploys_show_on_githubs_environments(standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path]) -> None:
    """The real CLI, GitHub's webhooks to the real web process and its worker: a merge to dev is
    a Deployment with success; a refused apply to test (its stored object damaged after the
    checks passed) is a Deployment with failure and the reason."""
    import hashlib
    import os

    from tests.test_github_e2e import approve, cli, deliveries, green, pr_data

    world = make_world(standin, tmp_path / "home", app=False, auto_merge=True)
    with web_process(world.env(), tmp_path / "web.log") as web:
        standin.add_webhook(OWNER, NAME, f"{web.url}/github/webhook", world.env()["GITHUB_WEBHOOK_SECRET"])
        cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model["onnx"]),
            "--dataset-uri", str(model["data"]), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
        wait_until(lambda: pr_data(world, 1)["merged"], 120, what=lambda: f"#1 merged\n{web.log()}\n{deliveries(world)}")

        cli(world, "deploy", "fraud", "--env", "dev", "--as", "dev")
        wait_until(lambda: pr_data(world, 2)["merged"], 120, what=lambda: f"#2 merged\n{web.log()}\n{deliveries(world)}")
        dev = wait_until(lambda: _final(world, "dev"), 60, what=lambda: f"the dev deployment\n{web.log()}")
        assert dev["sha"] == pr_data(world, 2)["merge_commit_sha"]
        assert dev["payload"]["release"] == "dev-payments-1" and dev["payload"]["pr"] == 2
        assert [s["state"] for s in dev["statuses"]] == ["in_progress", "success"]
        assert dev["statuses"][-1]["log_url"].endswith(f"/{OWNER}/{NAME}/pull/2")

        cli(world, "deploy", "fraud", "--env", "test", "--as", "dev")
        wait_until(lambda: green(world, 3), 120, what=lambda: f"#3 green\n{web.log()}\n{deliveries(world)}")
        digest = hashlib.sha256(model["onnx"].read_bytes()).hexdigest()
        stored = world.home / "artifacts" / "sha256" / digest
        os.chmod(stored, 0o644)  # objects are kept read-only; a deliberate hand gets past that
        damaged = bytearray(stored.read_bytes())
        damaged[len(damaged) // 2] ^= 1
        stored.write_bytes(bytes(damaged))
        approve(world, "ops", 3)
        wait_until(lambda: pr_data(world, 3)["merged"], 120, what=lambda: f"#3 merged\n{web.log()}\n{deliveries(world)}")
        test = wait_until(lambda: _final(world, "test"), 60, what=lambda: f"the test deployment\n{web.log()}")
        assert test["payload"]["release"] == "test-payments-1"
        assert [s["state"] for s in test["statuses"]] == ["in_progress", "failure"]
        reason = test["statuses"][-1]["description"]
        assert reason.startswith("test-payments-1 refused: ") and f"sha256/{digest[:12]}" in reason and len(reason) <= 140
        assert [d["environment"] for d in standin.deployments(OWNER, NAME)] == ["dev", "test"]


def _final(world: GitHubWorld, env: str) -> dict[str, Any] | None:
    """The environment's deployment once it has a final status."""
    for d in world.standin.deployments(OWNER, NAME):
        if d["environment"] == env and d["statuses"] and d["statuses"][-1]["state"] in ("success", "failure"):
            return d
    return None
