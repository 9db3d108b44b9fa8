"""Something breaks on the server while a Slack command runs: the person sees a reference id and
no exception text (it names paths and commands), and the operator finds the same reference
with the traceback in the log."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SlackStandIn, h.WebProcess, Path]]:
    with h.slack_and_web(tmp_path) as served_:
        yield served_


def test_a_broken_repository_shows_the_person_a_reference_and_logs_the_traceback(served: tuple[SlackStandIn, h.WebProcess, Path]) -> None:
    slack, web, home = served
    # A real fault: the manifest repository's origin disappears under the running server
    # (a disk swapped, a path moved); fetching it fails inside git.
    origin = home / "repo.git"
    shutil.move(origin, home / "moved-away.git")
    delivery = slack.slash_command("update fraud --version 2.0.0", user_id="U0ALICE", channel_id="C0MODELS")
    r = h.post(web, delivery)
    assert r.status_code == 200, r.text
    answer = h.texts(slack.wait_for_response(delivery.response_url or "", timeout=60))
    found = re.search(r"reference `([0-9a-f]{8})`", answer)
    assert found, answer
    assert "Something went wrong on my side" in answer
    # No exception text: neither the path nor git's words nor a Python class name.
    for leak in (str(home), "repo.git", "fatal", "Error", "Traceback", "git "):
        assert leak not in answer, (leak, answer)
    reference = f"reference {found.group(1)}"
    h.wait_until(lambda: reference in web.log_text(), what="the reference in the log")
    log = web.log_text()
    after = log[log.index(reference):]
    assert "Traceback" in after
