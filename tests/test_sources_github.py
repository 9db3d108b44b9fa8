"""Sources are policy, on GitHub: the GitHub stand-in, the real web process and the real CLI.

A person pushes a hand-edited manifest to the bot's pull request branch (GitHub sends the
`synchronize` webhook): the manifest check refuses the URI against the base branch's
`sources`, the data set is never read, and no secret of the bot is in any check or comment.
On GitHub the CLI has no "own files" privilege: a local file outside the sources is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.github_helpers import NAME, OWNER, ROOT, GitHubWorld, make_world, wait_until, web_process
from tests.standins.github_api import GitHubStandIn

pytestmark = pytest.mark.timeout(240)
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYGITHUBSIDE"
UNAVAILABLE = "does not exist or is not in an allowed source"


def _cli(world: GitHubWorld, *argv: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=world.env(AWS_SECRET_ACCESS_KEY=AWS_SECRET),
                            cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert result.returncode == expect, f"aimodel {' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _checks(world: GitHubWorld, sha: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for run in sorted(world.standin.check_runs(OWNER, NAME, sha), key=lambda r: r["id"]):
        out[run["name"]] = (str(run["conclusion"] or run["status"]), json.dumps(run["output"]))
    return out


def _pr(world: GitHubWorld, number: int) -> dict[str, Any]:
    return next(p for p in world.standin.pulls(OWNER, NAME) if p["number"] == number)


def test_a_hand_edited_data_set_uri_pushed_to_the_pr_branch_is_refused(
    standin: GitHubStandIn, tmp_path: Path, model: dict[str, Path]
) -> None:
    world = make_world(standin, tmp_path / "home", app=True)
    env = world.env(AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    with web_process(env, tmp_path / "web.log") as web:
        standin.add_webhook(OWNER, NAME, f"{web.url}/github/webhook", env["GITHUB_WEBHOOK_SECRET"])

        # On GitHub the CLI is a face like any other: a file outside the sources is refused.
        outside = tmp_path / "elsewhere.onnx"
        outside.write_bytes(model["onnx"].read_bytes())
        refused = _cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(outside),
                       "--dataset-uri", str(model["data"]), "--label-column", "label", "--as", "ada", expect=1)
        assert UNAVAILABLE in refused.stderr and standin.pulls(OWNER, NAME) == []

        _cli(world, "create", "fraud", "--app", "payments", "--dataset", "transactions", "--artifact", str(model["onnx"]),
             "--dataset-uri", str(model["data"]), "--label-column", "label", "--SLA", "accuracy>=0.9", "--as", "ada")
        head = _pr(world, 1)["head"]
        wait_until(lambda: _checks(world, _pr(world, 1)["head"]["sha"]).get("aimodel/sign", ("",))[0] == "success", 120,
                   what=lambda: f"#1 signed\n{web.log()}")

        # A person edits the data set on the pull request's branch to read the worker's environment.
        doc = yaml.safe_load(_dataset_yaml(standin, head["ref"]))
        doc["spec"]["uri"] = "/proc/self/environ"
        pushed = standin.commit_files(OWNER, NAME, head["ref"], {"datasets/transactions.yaml": yaml.safe_dump(doc)},
                                      "use the other data set", pusher="ada-gh")
        # the run is over when sign is reported (skipped after a failed manifest check)
        wait_until(lambda: _checks(world, pushed).get("aimodel/sign", ("",))[0] in ("skipped", "neutral", "success"), 120,
                   what=lambda: f"checks on {pushed[:8]}\n{web.log()}")
        checks = _checks(world, pushed)
        assert checks["aimodel/manifest"][0] == "failure"
        assert "spec.uri" in checks["aimodel/manifest"][1] and UNAVAILABLE in checks["aimodel/manifest"][1]
        assert checks["aimodel/validate"][0] in ("skipped", "neutral") and checks["aimodel/sign"][0] != "success"
        everything = json.dumps(checks) + json.dumps(standin.comments(OWNER, NAME)) + json.dumps(standin.pulls(OWNER, NAME)) + web.log()
        for secret in (AWS_SECRET, env["GITHUB_WEBHOOK_SECRET"]):
            assert secret not in everything
        assert "PRIVATE KEY" not in everything


def _dataset_yaml(standin: GitHubStandIn, branch: str) -> str:
    path = standin.repo_path(OWNER, NAME)
    return subprocess.run(["git", "show", f"refs/heads/{branch}:datasets/transactions.yaml"], cwd=path,
                          capture_output=True, text=True, check=True).stdout
