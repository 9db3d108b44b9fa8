"""Pull request records on the embedded forge are created exclusively: a counter that went
backwards (a restored backup, a hand edit) never overwrites an existing pull request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Run, git_branches


@pytest.mark.parametrize("counter", ["1", "0", "-3", "not a number", None])
def test_a_rolled_back_counter_never_overwrites_a_pull_request(aimodel: Run, created: str, home: Path, counter: str | None) -> None:
    first = home / "forge" / "prs" / "1.json"
    before = first.read_bytes()
    shown = aimodel("pr", "show", "1", "--json").json
    next_file = home / "forge" / "next"
    if counter is None:
        next_file.unlink()
    else:
        next_file.write_text(counter)

    opened = aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json
    assert opened["pr"] == 2
    assert first.read_bytes() == before  # PR #1's record is untouched
    assert aimodel("pr", "show", "1", "--json").json == shown
    assert aimodel("pr", "show", "2", "--json").json["branch"] == opened["branch"]
    assert opened["branch"] in git_branches(home)
    locks = aimodel("status", "--json").json["locks"]
    # the locks (the model, and the application whose dev release changes) point at the new PR
    assert locks == [{"key": "app:payments", "pr": 2, "person": "dev"}, {"key": "model:fraud", "pr": 2, "person": "dev"}]
    assert next_file.read_text() == "3"
    # and the next one after that continues from the fresh number
    aimodel("pr", "merge", "2", "--as", "dev")
    assert aimodel("deploy", "fraud", "--env", "test", "--as", "dev", "--json").json["pr"] == 3


def test_records_left_behind_by_a_counter_far_behind_are_all_skipped(aimodel: Run, created: str, home: Path) -> None:
    folder = home / "forge" / "prs"
    template = (folder / "1.json").read_text()
    for n in (2, 3, 5):  # records from before a restore: 4 is free, then 6
        (folder / f"{n}.json").write_text(template.replace('"number": 1', f'"number": {n}'))
    (home / "forge" / "next").write_text("2")
    assert aimodel("deploy", "fraud", "--env", "dev", "--as", "dev", "--json").json["pr"] == 4
    assert (folder / "5.json").read_text() == template.replace('"number": 1', '"number": 5')
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file stays behind
