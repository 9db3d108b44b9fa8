"""A failed apply is tried again on GitHub too: the sweep finds the merge's failed deploy record
in the pull request body (bot.forges.base.ListsRecentMerges), and once the cause is gone the
retry goes live and the GitHub Deployment of the retried release gets a success status.
Against the GitHub stand-in, the real CLI, the real web process and its worker."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from bot.forges.base import ListsRecentMerges
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

pytestmark = pytest.mark.timeout(300)


def _deployments(world: GitHubWorld, env: str) -> list[dict[str, Any]]:
    """The environment's deployments that have a final status, oldest first."""
    found = [d for d in world.standin.deployments(OWNER, NAME)
             if d["environment"] == env and d["statuses"] and d["statuses"][-1]["state"] in ("success", "failure")]
    return sorted(found, key=lambda d: d["id"])


def test_only_a_forge_that_lists_recent_merges_has_the_ability(standin: GitHubStandIn, tmp_path: Path) -> None:
    api = standin.api_url
    forge = GitHubForge(repo=REPO, api_url=api, source=TokenSource(api_url=api, repo=REPO, token=BOT_TOKEN), max_attempts=2)
    try:
        assert isinstance(forge, ListsRecentMerges)
    finally:
        forge.shutdown()
    assert not isinstance(LocalForge(tmp_path), ListsRecentMerges)  # the sweep lists all of its records itself


def test_recent_merges_are_the_merged_ones_newest_first_with_their_deploy_records(standin: GitHubStandIn, tmp_path: Path) -> None:
    import dataclasses

    world = make_world(standin, tmp_path / "home", app=False)
    api = standin.api_url
    forge = GitHubForge(repo=REPO, api_url=api, source=TokenSource(api_url=api, repo=REPO, token=BOT_TOKEN), max_attempts=2)
    try:
        with world.client() as gh:
            repo = gh.get_repo(REPO)
            for n in (1, 2, 3):
                standin.commit_files(OWNER, NAME, f"change-{n}", {f"notes/{n}.txt": f"{n}\n"})
                repo.create_pull(base="main", head=f"change-{n}", title=f"change {n}", body="")
            repo.get_pull(1).merge(merge_method="merge")
            repo.get_pull(2).edit(state="closed")  # closed without a merge: never deployed
            repo.get_pull(3).merge(merge_method="merge")
        record = {"commit": "x", "at": 1.0, "ok": False, "attempts": 1}
        forge.update_meta(1, lambda m: dataclasses.replace(m, deploy=record))
        merged = forge.recent_merges(20)
        assert [pr.number for pr in merged] == [3, 1] and all(pr.state == "merged" and pr.merge_commit for pr in merged)
        assert merged[1].meta.deploy == record and merged[0].meta.deploy is None
        assert [pr.number for pr in forge.recent_merges(1)] == [3]
    finally:
        forge.shutdown()


def test_a_failed_apply_on_github_is_retried_by_the_sweep_once_the_cause_is_fixed(
    standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path]
) -> None:
    from bot.forges.meta import read_body
    from tests.test_github_e2e import approve, cli, deliveries, green, pr_data, summary_comments

    world = make_world(standin, tmp_path / "home", app=False, auto_merge=True)
    # the sweep looks every second; the first retry is due 3 s after the failure, then 6, 12
    world.extra_env.update(AIMODEL_SWEEP_INTERVAL="1", AIMODEL_DEPLOY_RETRY_DELAY="3", AIMODEL_DEPLOY_ATTEMPTS="4")
    with web_process(world.env(), tmp_path / "web.log") as web:
        standin.add_webhook(OWNER, NAME, f"{web.url}/github/webhook", world.env()["GITHUB_WEBHOOK_SECRET"])
        cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model["onnx"]),
            "--dataset-uri", str(model["data"]), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
        wait_until(lambda: pr_data(world, 1)["merged"], 120, what=lambda: f"#1 merged\n{web.log()}\n{deliveries(world)}")
        cli(world, "deploy", "fraud", "--env", "dev", "--as", "dev")
        wait_until(lambda: _deployments(world, "dev"), 120, what=lambda: f"the dev deployment\n{web.log()}\n{deliveries(world)}")

        # test needs an approval: the stored object is damaged after the checks passed, before the merge
        cli(world, "deploy", "fraud", "--env", "test", "--as", "dev")
        wait_until(lambda: green(world, 3), 120, what=lambda: f"#3 green\n{web.log()}\n{deliveries(world)}")
        stored = world.home / "artifacts" / "sha256" / hashlib.sha256(model["onnx"].read_bytes()).hexdigest()
        good = stored.read_bytes()
        os.chmod(stored, 0o644)  # objects are kept read-only; a deliberate hand gets past that
        stored.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        approve(world, "ops", 3)
        [failed] = wait_until(lambda: _deployments(world, "test"), 120, what=lambda: f"the failed test deployment\n{web.log()}")
        assert [s["state"] for s in failed["statuses"]] == ["in_progress", "failure"]

        # the cause is fixed by hand; nobody runs sync: the sweep tries the merge's apply again
        stored.write_bytes(good)
        os.chmod(stored, 0o444)

        def record() -> Any:
            deploy = read_body(pr_data(world, 3)["body"])[1].deploy
            return deploy if deploy is not None and deploy["ok"] else None

        done = wait_until(record, 90, what=lambda: f"#3's deploy record ok\n{web.log()}\n{deliveries(world)}")
        assert done["attempts"] >= 2 and "sweep: the failed deploy of #3" in web.log()
        merge = pr_data(world, 3)["merge_commit_sha"]
        [failed_again, live] = _deployments(world, "test")  # the retried release is its own Deployment
        assert failed_again["id"] == failed["id"] and [s["state"] for s in failed_again["statuses"]] == ["in_progress", "failure"]
        assert live["sha"] == merge and live["payload"]["pr"] == 3
        assert live["payload"]["release"] != failed["payload"]["release"]
        assert [s["state"] for s in live["statuses"]] == ["in_progress", "success"]
        told = f"**Deploy** of `{merge[:10]}`: done (attempt {done['attempts']})"
        wait_until(lambda: any(told in c for c in summary_comments(world, 3)), 60, what=lambda: f"the retry told on #3\n{summary_comments(world, 3)}")
        assert (world.home / "deploy" / "test" / "_releases" / "payments.json").exists()
