"""End to end on the GitHub stand-in: the real CLI opens pull requests, GitHub's webhooks reach
the real web process (gunicorn + its queue worker, subprocesses), checks come back as check
runs (App) or commit statuses (token), a review approves, the bot merges, the push deploys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.github_helpers import (
    NAME,
    OWNER,
    PEOPLE,
    ROOT,
    GitHubWorld,
    make_world,
    wait_until,
    web_process,
)
from tests.standins.github_api import GitHubStandIn

pytestmark = pytest.mark.timeout(240)


def cli(world: GitHubWorld, *argv: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv], env=world.env(), cwd=str(ROOT),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == expect, f"aimodel {' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def pr_data(world: GitHubWorld, number: int) -> dict[str, Any]:
    return next(p for p in world.standin.pulls(OWNER, NAME) if p["number"] == number)


def bot_meta(body: str | None) -> dict[str, Any]:
    from bot.messages.github import parse_pr_body

    return parse_pr_body(body)[1]


def reported(world: GitHubWorld, sha: str) -> dict[str, tuple[str, str]]:
    """name -> (state, summary) as the stand-in holds them for a commit (latest wins)."""
    out: dict[str, tuple[str, str]] = {}
    if world.app:
        for run in sorted(world.standin.check_runs(OWNER, NAME, sha), key=lambda r: r["id"]):
            out[run["name"]] = (str(run["conclusion"] or run["status"]), str(run["output"]["title"]))
    else:
        for status in reversed(world.standin.statuses(OWNER, NAME, sha)):  # oldest first
            out[status["context"]] = (status["state"], status["description"])
    return out


def green(world: GitHubWorld, number: int) -> bool:
    pr = pr_data(world, number)
    checks = reported(world, pr["head"]["sha"])
    names = ("aimodel/manifest", "aimodel/scan", "aimodel/validate", "aimodel/sign")
    return all(checks.get(n, ("", ""))[0] in ("success", "skipped") for n in names)


def summary_comments(world: GitHubWorld, number: int) -> list[str]:
    return [c["body"] for c in world.standin.comments(OWNER, NAME, number) if "<!-- aimodel:summary -->" in c["body"]]


def approve(world: GitHubWorld, person: str, number: int) -> None:
    with world.client(person) as gh:
        gh.get_repo(f"{OWNER}/{NAME}").get_pull(number).create_review(event="APPROVE", body="LGTM")


def deliveries(world: GitHubWorld) -> str:
    prs = [(p["number"], p["state"], p["head"]["sha"][:8], bot_meta(p["body"]), reported(world, p["head"]["sha"])) for p in world.standin.pulls(OWNER, NAME)]
    comments = [c["body"] for c in world.standin.comments(OWNER, NAME)]
    return f"{prs}\n{comments}\n" + "\n".join(f"{d['event']}/{d['action']} -> {d['status_code']} {d['error'] or ''} {(d['response_body'] or '')[:200]}" for d in world.standin.deliveries())


def deployed(home: Path, env: str) -> dict[str, Any]:
    state = home / "deploy" / env / "_state.json"
    if not state.exists():
        return {}
    data: dict[str, Any] = json.loads(state.read_text())
    return data.get("models", {})


@pytest.mark.parametrize("auth", ["app", "token"])
def test_cli_to_deploy_through_webhooks(standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path], auth: str) -> None:
    world = make_world(standin, tmp_path / "home", app=auth == "app", auto_merge=True)
    if auth == "token":
        standin.pat_check_runs = False  # GitHub: tokens get commit statuses, never check runs
    with web_process(world.env(), tmp_path / "web.log") as web:
        standin.add_webhook(OWNER, NAME, f"{web.url}/github/webhook", world.env()["GITHUB_WEBHOOK_SECRET"])

        # create: a pull request on GitHub, checks as check runs/statuses, signed, auto-merged
        out = cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions",
                  "--artifact", str(model["onnx"]), "--dataset-uri", str(model["data"]),
                  "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada").stdout
        assert "Opened pull request #1" in out and f"/{OWNER}/{NAME}/pull/1" in out
        first = pr_data(world, 1)
        meta = bot_meta(first["body"])
        assert meta["verb"] == "create" and meta["author"] == "ada" and "model:fraud" in meta["locks"]
        assert "Requested by **ada**" in first["body"]

        wait_until(lambda: pr_data(world, 1)["merged"], 120, what=lambda: f"#1 merged\\n{web.log()}\\n{deliveries(world)}")
        merged = pr_data(world, 1)
        # the head that merged is the person's commit: the signature went to the artifact store
        assert merged["head"]["sha"] == first["head"]["sha"] and not bot_meta(merged["body"]).get("signed_head")
        assert list((world.home / "artifacts" / "sha256").glob("*.fraud@1.0.0.att.json"))
        checks = reported(world, merged["head"]["sha"])
        assert {checks[f"aimodel/{n}"][0] for n in ("manifest", "scan", "validate", "sign")} <= {"success", "skipped"}
        assert checks["aimodel/sign"][0] == "success"
        if world.app:
            assert checks["aimodel/policy"][0] == "success"
        comments = wait_until(lambda: summary_comments(world, 1), 30, what="summary comment")
        assert len(comments) == 1  # one comment, edited in place

        # dev, then test (one approval), each auto-merged once it may be: prod takes what ran in test
        cli(world, "deploy", "fraud", "--env", "dev", "--as", "dev")
        wait_until(lambda: "fraud" in deployed(world.home, "dev"), 120, what=lambda: f"fraud deployed to dev\n{web.log()}\n{deliveries(world)}")
        cli(world, "deploy", "fraud", "--env", "test", "--as", "dev")
        wait_until(lambda: green(world, 3), 120, what=lambda: f"#3 green\n{web.log()}\n{deliveries(world)}")
        approve(world, "ops", 3)
        wait_until(lambda: "fraud" in deployed(world.home, "test"), 120, what=lambda: f"fraud deployed to test\n{web.log()}\n{deliveries(world)}")

        # deploy to prod: needs a DevOps approval that is not the author's
        cli(world, "deploy", "fraud", "--env", "prod", "--as", "dev")
        wait_until(lambda: green(world, 4), 120, what=lambda: f"#4 green\\n{web.log()}\\n{deliveries(world)}")
        wait_until(lambda: "waiting" in "".join(summary_comments(world, 4)).lower(), 60, what="#4 says what it waits for")
        assert not pr_data(world, 4)["merged"]
        assert "prod needs 1 approval" in summary_comments(world, 4)[0]
        assert "can approve: @ops-gh" in summary_comments(world, 4)[0]  # devops, not the author (dev)

        approve(world, "ops", 4)  # ops-gh -> ops -> devops-engineer
        wait_until(lambda: pr_data(world, 4)["merged"], 120, what=lambda: f"#4 merged after approval\\n{web.log()}\\n{deliveries(world)}")
        wait_until(lambda: "fraud" in deployed(world.home, "prod"), 120, what=lambda: f"fraud deployed to prod\\n{web.log()}\\n{deliveries(world)}")
        record = wait_until(lambda: bot_meta(pr_data(world, 4)["body"]).get("deploy"), 60, what="deploy record on #4")
        assert record["ok"] is True
        wait_until(lambda: "Deploy" in "".join(summary_comments(world, 4)), 60, what="deploy in the summary")
        assert len(summary_comments(world, 4)) == 1

        # locks are released and the branches are gone
        listed = json.loads(cli(world, "status", "--json").stdout)
        assert listed["locks"] == [] and listed["open"] == []
        assert standin.branch_sha(OWNER, NAME, first["head"]["ref"]) is None

        statuses = [d["status_code"] for d in standin.deliveries()]
        assert statuses and all(code in (200, 202) for code in statuses), statuses
        assert PEOPLE["ops"][1] in [r["user"]["login"] for r in standin.reviews(OWNER, NAME, 4)]


def test_without_auto_merge_the_bot_says_ready_and_a_person_merges(standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path]) -> None:
    world = make_world(standin, tmp_path / "home", app=True, auto_merge=False)
    with web_process(world.env(), tmp_path / "web.log") as web:
        standin.add_webhook(OWNER, NAME, f"{web.url}/github/webhook", world.env()["GITHUB_WEBHOOK_SECRET"])
        cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions",
            "--artifact", str(model["onnx"]), "--dataset-uri", str(model["data"]),
            "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
        wait_until(lambda: "ready to merge" in "".join(summary_comments(world, 1)), 120,
                   what=lambda: f"#1 ready\n{web.log()}\n{deliveries(world)}")
        assert not pr_data(world, 1)["merged"]
        assert "auto_merge" in summary_comments(world, 1)[0]
        view = json.loads(cli(world, "pr", "show", "1", "--json").stdout)
        assert view["state"] == "open" and view["approvals"]["missing"] == []
        assert {c["state"] for c in view["checks"].values()} == {"success"}

        merged = cli(world, "pr", "merge", "1", "--as", "ada").stdout
        assert "Merged pull request #1" in merged
        assert pr_data(world, 1)["merged"]
        record = wait_until(lambda: bot_meta(pr_data(world, 1)["body"]).get("deploy"), 60,
                            what=lambda: f"deploy record\n{web.log()}\n{deliveries(world)}")
        assert record["ok"] is True
        assert json.loads(cli(world, "status", "--json").stdout)["locks"] == []
