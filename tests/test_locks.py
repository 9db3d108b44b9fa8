"""One open pull request per model, even when many people ask at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

from bot.app import Context
from bot.commands import Update
from bot.config import load_settings
from bot.gitops import Actor, Refusal
from tests.conftest import Run, git_branches


def test_twenty_concurrent_updates_open_exactly_one_pr(aimodel: Run, created: str, home: Path) -> None:
    settings = load_settings({"AIMODEL_HOME": str(home)})
    barrier = threading.Barrier(20)
    opened: list[int] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        # One Context per thread, as separate processes would have.
        with Context(settings) as ctx:
            try:
                barrier.wait()
                result = ctx.gitops.propose(Update("fraud", version=f"2.0.{i}"), Actor("eve", "cli"))
                opened.append(result.pr.number)
            except Refusal as exc:
                refused.append(exc.message)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(opened) == 1 and len(refused) == 19
    assert all("model fraud is locked by" in r or "application payments is locked by" in r for r in refused), refused
    open_prs = aimodel("pr", "list", "--json").json
    assert [p["number"] for p in open_prs] == opened
    assert len([b for b in git_branches(home) if b != "main"]) == 1  # the refused ones wrote nothing


def test_merging_releases_the_lock(aimodel: Run, created: str) -> None:
    number = aimodel("update", "fraud", "--SLA", "accuracy>=0.8", "--as", "eve", "--json").json["pr"]
    assert f"locked by PR #{number}" in aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", expect=1).err
    aimodel("pr", "merge", str(number), "--as", "eve")
    assert aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"] == number + 1
