"""The attack from issue 8, end to end through the CLI on the embedded default: a Data
Scientist edits the rules by hand (roles, prod approvals, the scan allow-list, the trusted
key), pushes a branch, opens a pull request from it, and tries to merge it.

No bot verb writes `.aimodel/`, CODEOWNERS or `schemas/` (create, update, deploy and
destroy only write models/, apps/ and datasets/ under DNS-1123 names), so a hand-pushed
branch opened with `aimodel pr open` is the way in; the same rules hold it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import Run, git_branches, promote_through

Edit = Callable[[Path], None]


def push_branch(home: Path, tmp: Path, branch: str, edit: Edit, *, who: str = "ada") -> str:
    """Clone the local origin, change files by hand, commit as `who`, push `branch`; its sha."""
    clone = tmp / f"hand-{branch.replace('/', '-')}"
    env = {"GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@example.com", "GIT_COMMITTER_NAME": who,
           "GIT_COMMITTER_EMAIL": f"{who}@example.com", "HOME": str(tmp), "PATH": "/usr/bin:/bin:/usr/local/bin"}

    def git(*args: str, cwd: Path = clone) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    git("clone", "--quiet", str(home / "repo.git"), str(clone), cwd=tmp)
    git("checkout", "--quiet", "-b", branch)
    edit(clone)
    git("add", "-A")
    git("commit", "--quiet", "--allow-empty", "-m", f"{branch} by hand")
    git("push", "--quiet", "origin", branch)
    return git("rev-parse", "HEAD").strip()


def _config_edit(change: Callable[[dict[str, object]], None]) -> Edit:
    def edit(root: Path) -> None:
        path = root / ".aimodel" / "config.yaml"
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return edit


def _make_me_devops(d: dict[str, object]) -> None:
    d["people"]["ada"]["roles"] = ["devops-engineer"]  # type: ignore[index]


def _prod_needs_nobody(d: dict[str, object]) -> None:
    d["environments"]["prod"]["approvals"] = 0  # type: ignore[index]


def _allow_os(d: dict[str, object]) -> None:
    d["scan"]["allow"] = ["os.*", "posix.*"]  # type: ignore[index]


def _replace_key(root: Path) -> None:
    (root / ".aimodel" / "keys" / "aimodel-bot.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
    )


def _codeowners(root: Path) -> None:
    (root / "CODEOWNERS").write_text("* @ada\n")


def _schema(root: Path) -> None:
    path = root / "schemas" / "aimodel.schema.json"
    path.write_text(path.read_text().replace('"additionalProperties": false', '"additionalProperties": true'))


ATTACKS: dict[str, tuple[Edit, str]] = {
    "make herself DevOps": (_config_edit(_make_me_devops), ".aimodel/config.yaml"),
    "prod approvals to 0": (_config_edit(_prod_needs_nobody), ".aimodel/config.yaml"),
    "allow-list os.*": (_config_edit(_allow_os), ".aimodel/config.yaml"),
    "replace the trusted key": (_replace_key, ".aimodel/keys/aimodel-bot.pub"),
    "rewrite CODEOWNERS": (_codeowners, "CODEOWNERS"),
    "loosen a schema": (_schema, "schemas/aimodel.schema.json"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_policy_change_needs_a_policy_owner(aimodel: Run, home: Path, tmp_path: Path, attack: str) -> None:
    edit, path = ATTACKS[attack]
    push_branch(home, tmp_path, "ada/rules", edit)
    opened = aimodel("pr", "open", "ada/rules", "--title", attack, "--as", "ada", "--json").json
    number = str(opened["pr"])

    shown = aimodel("pr", "show", number, "--json").json
    assert shown["author"] == "ada" and shown["title"] == attack
    assert path in shown["policy"]
    assert shown["checks"]["manifest"]["state"] == "success"  # the checks ran, as on the bot's own PRs
    waiting = f"policy change ({path}) needs 1 approval(s) from DevOps Engineer, not its author; has 0 (can approve: dev)"
    assert waiting in shown["approvals"]["missing"]
    text = aimodel("pr", "show", number).out
    assert f"waiting: {waiting}" in text
    assert f"  policy    changes the rules ({path}): a policy owner must approve it" in text

    # her own merge: refused, saying what is missing and who may merge
    refused = aimodel("pr", "merge", number, "--as", "ada", expect=1)
    assert waiting in refused.err
    assert "is for DevOps Engineer: dev; ada is Data Scientist" in refused.err
    # her own approval does not count; an Application Developer's does not either
    assert "the author's own approval never counts" in aimodel("pr", "approve", number, "--as", "ada", expect=1).err
    aimodel("pr", "approve", number, "--as", "alan")
    assert waiting in aimodel("pr", "merge", number, "--as", "alan", expect=1).err
    # nor can the policy owner merge it without reviewing it
    assert waiting in aimodel("pr", "merge", number, "--as", "dev", expect=1).err
    assert aimodel("pr", "show", number, "--json").json["state"] == "open"

    # reviewed by the owner: still not hers to merge, the owner merges it
    aimodel("pr", "approve", number, "--as", "dev")
    refused = aimodel("pr", "merge", number, "--as", "ada", expect=1)
    assert refused.err.strip() == (
        f"Refused: merging #{number} (changes the rules: {path}) is for DevOps Engineer: dev; ada is Data Scientist"
    )
    aimodel("pr", "merge", number, "--as", "dev")
    assert aimodel("pr", "show", number, "--json").json["state"] == "merged"
    assert git_branches(home) == ["main"]


def test_a_pull_request_cannot_lower_its_own_bar(aimodel: Run, home: Path, tmp_path: Path) -> None:
    """The PR names Application Developers policy owners and lets anyone merge; an Application
    Developer's approval would then count. It is judged by the base config: it does not."""

    def lower(d: dict[str, object]) -> None:
        d["policy"] = {"owners": ["application-developer"], "approvals": 1, "mergers": ["*"]}
        d["environments"]["prod"]["mergers"] = ["*"]  # type: ignore[index]

    push_branch(home, tmp_path, "lower-the-bar", _config_edit(lower))
    number = str(aimodel("pr", "open", "lower-the-bar", "--as", "ada", "--json").json["pr"])
    aimodel("pr", "approve", number, "--as", "alan")
    refused = aimodel("pr", "merge", number, "--as", "ada", expect=1)
    assert "needs 1 approval(s) from DevOps Engineer, not its author; has 0" in refused.err
    assert "ada is Data Scientist" in refused.err


def test_a_data_scientist_cannot_merge_a_prod_deploy_even_when_approved(aimodel: Run, created: str) -> None:
    promote_through(aimodel, "fraud", "test")
    number = str(aimodel("deploy", "fraud", "--env", "prod", "--as", "alan", "--json").json["pr"])
    aimodel("pr", "approve", number, "--as", "dev")
    assert aimodel("pr", "show", number, "--json").json["approvals"]["missing"] == []
    for who, title in (("ada", "Data Scientist"), ("alan", "Application Developer"), ("eve", "Data Engineer")):
        refused = aimodel("pr", "merge", number, "--as", who, expect=1)
        assert refused.err.strip() == f"Refused: merging #{number} (changes prod) is for DevOps Engineer: dev; {who} is {title}"
    aimodel("pr", "merge", number, "--as", "dev")
    assert aimodel("list", "--json").json[0]["environments"]["prod"]["state"] == "running"


def _pin_in_prod(root: Path) -> None:
    path = root / "apps" / "payments.yaml"
    data = yaml.safe_load(path.read_text())
    data["spec"].setdefault("environments", {})["prod"] = {"fraud": "1.0.0"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_hand_made_deploy_skipping_test_is_held_at_merge(aimodel: Run, created: str, home: Path, tmp_path: Path) -> None:
    """The deploy verb refuses a version that never ran in test; a pull request made by hand
    meets the same rule when it is merged, whoever approved it."""
    push_branch(home, tmp_path, "ada/skip", _pin_in_prod)
    number = str(aimodel("pr", "open", "ada/skip", "--as", "ada", "--json").json["pr"])
    shown = aimodel("pr", "show", number, "--json").json
    assert shown["promotion"] == ["fraud 1.0.0 has not run successfully in test; prod takes only versions that did"]
    aimodel("pr", "approve", number, "--as", "dev")
    refused = aimodel("pr", "merge", number, "--as", "dev", expect=1)
    assert "fraud 1.0.0 has not run successfully in test" in refused.err
    assert "prod" not in aimodel("list", "--json").json[0]["environments"]


def test_a_hand_made_deploy_to_prod_is_held_like_the_bots(aimodel: Run, created: str, home: Path, tmp_path: Path) -> None:
    promote_through(aimodel, "fraud", "test")
    push_branch(home, tmp_path, "ada/prod", _pin_in_prod)
    number = str(aimodel("pr", "open", "ada/prod", "--as", "ada", "--json").json["pr"])
    shown = aimodel("pr", "show", number, "--json").json
    assert shown["environments"] == ["prod"] and shown["policy"] == [] and shown["promotion"] == []
    assert "prod needs 1 approval(s) from DevOps Engineer; has 0" in shown["approvals"]["missing"]
    # the application is locked by the hand-made PR, as by the bot's own
    assert f"locked by PR #{number}" in aimodel("deploy", "fraud", "--env", "prod", "--as", "eve", expect=1).err
    locks = {lock["key"]: lock["pr"] for lock in aimodel("status", "--json").json["locks"]}
    assert locks == {"branch:ada%2Fprod": int(number), "app:payments": int(number)}
    aimodel("pr", "approve", number, "--as", "dev")
    assert "(changes prod) is for DevOps Engineer: dev; ada is Data Scientist" in aimodel("pr", "merge", number, "--as", "ada", expect=1).err
    aimodel("pr", "merge", number, "--as", "dev")
    assert aimodel("list", "--json").json[0]["environments"]["prod"]["state"] == "running"
    assert aimodel("status", "--json").json["locks"] == []  # merged: its locks are released


def _readme(root: Path) -> None:
    (root / "README.md").write_text("hello\n")


def test_pr_open_refuses_what_it_cannot_open(aimodel: Run, home: Path, tmp_path: Path) -> None:
    assert "no such branch on the origin; push it first" in aimodel("pr", "open", "nope", "--as", "ada", expect=1).err
    assert "name a branch other than main" in aimodel("pr", "open", "main", "--as", "ada", expect=1).err
    assert "unrecognized arguments" in aimodel("pr", "open", "--as", "ada", "--", "--upload-pack=touch x", expect=2).err
    assert "name a branch other than main" in aimodel("pr", "open", "x.lock", "--as", "ada", expect=1).err
    assert "name a branch other than main" in aimodel("pr", "open", "a..b", "--as", "ada", expect=1).err
    assert "usage" in aimodel("pr", "open", "--as", "ada", expect=2).err.lower()
    push_branch(home, tmp_path, "same", _readme)
    assert "is not listed under people in the manifest repository" in aimodel("pr", "open", "same", "--as", "mallory", expect=1).err
    push_branch(home, tmp_path, "nothing", lambda root: None)
    assert "it changes nothing against main" in aimodel("pr", "open", "nothing", "--as", "ada", expect=1).err
    number = aimodel("pr", "open", "same", "--as", "ada", "--json").json["pr"]
    assert f"it is already open as #{number}" in aimodel("pr", "open", "same", "--as", "ada", expect=1).err
    aimodel("pr", "close", str(number), "--as", "ada")
    assert "no such branch on the origin" in aimodel("pr", "open", "same", "--as", "ada", expect=1).err  # closing deleted it


def test_a_push_after_the_owners_approval_needs_a_new_one(aimodel: Run, home: Path, tmp_path: Path) -> None:
    """As when she pushes to her pull request on GitHub (synchronize): the owner approved the
    harmless version; the allow-list she adds afterwards is not covered by that approval."""
    from bot.app import Context
    from bot.config import load_settings

    def harmless(d: dict[str, object]) -> None:
        d["notifications"]["prod_channel"] = "C0PROD"  # type: ignore[index]

    push_branch(home, tmp_path, "ada/channel", _config_edit(harmless))
    number = aimodel("pr", "open", "ada/channel", "--as", "ada", "--json").json["pr"]
    aimodel("pr", "approve", str(number), "--as", "dev")
    assert aimodel("pr", "show", str(number), "--json").json["approvals"]["missing"] == []
    with Context(load_settings({"AIMODEL_HOME": str(home)})) as ctx:
        pr = ctx.forge.get_pr(number)
        text = ctx.workspace.read_file(pr.head, ".aimodel/config.yaml") or b""
        data = yaml.safe_load(text)
        _allow_os(data)
        head = ctx.workspace.commit_change(pr.head, {".aimodel/config.yaml": yaml.safe_dump(data).encode()}, "and one more thing")
        ctx.workspace.push(head, pr.branch)
        ctx.forge.update_head(number, head)
        ctx.jobs.drain()
    refused = aimodel("pr", "merge", str(number), "--as", "dev", expect=1)
    assert "has 0 (can approve: dev); dev approved an earlier commit: approve again" in refused.err
    aimodel("pr", "approve", str(number), "--as", "dev")
    aimodel("pr", "merge", str(number), "--as", "dev")
