"""`/aimodel history` through the real web process and the Slack stand-in: the verb comes from
the table, and the releases render as Block Kit, a table per environment, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.deploy.records import ModelPin, ReleaseLog, ReleaseRecord
from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn

pytestmark = pytest.mark.timeout(120)


def _record(n: int, hour: int, version: str, pr: int) -> ReleaseRecord:
    finished = datetime(2026, 11, 30, hour, tzinfo=UTC).timestamp()
    return ReleaseRecord(
        id=f"prod-payments-{n}", env="prod", app="payments", app_version="2.0.0",
        models={"fraud": ModelPin(version, f"{n}f" * 32)}, commit=f"{n}" * 40, pr=pr, author="carol",
        approvers=("bob",), started=finished - 1, finished=finished, result="ok",
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlackStandIn, h.WebProcess]]:
    with h.slack_and_web(tmp_path_factory.mktemp("slack-history")) as (slack, web, home):
        log = ReleaseLog(home / "releases")
        for n, (hour, version, pr) in enumerate([(9, "1.0.0", 3), (10, "1.1.0", 5), (11, "1.2.0", 7)], start=1):
            log.append(_record(n, hour, version, pr))
        yield slack, web


def _ask(served: tuple[SlackStandIn, h.WebProcess], text: str, user: str = "U0BOB") -> dict[str, Any]:
    slack, web = served
    delivery = slack.slash_command(text, user_id=user)
    answer = h.post(web, delivery)
    assert answer.status_code == 200 and "Working on" in answer.json()["text"]
    reply: dict[str, Any] = slack.wait_for_response(delivery.response_url or "", timeout=60)[0]
    return reply


def test_history_renders_a_table_per_environment_newest_first(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    reply = _ask(served, "history payments --env prod")
    assert reply["response_type"] == "ephemeral"
    blocks = reply["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Releases of application payments, newest first", "emoji": True}}
    table = blocks[1]["text"]["text"]
    assert table.startswith("*prod*\n```RELEASE")
    ids = [line.split()[0] for line in table.split("```")[1].splitlines()[1:]]
    assert ids == ["prod-payments-3", "prod-payments-2", "prod-payments-1"]
    assert "#7" in table and "fraud 1.2.0 @3f3f3f3f" in table and "bob" in table


def test_history_at_and_a_misspelt_name_in_slack(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    at = h.texts([_ask(served, 'history fraud --at "2026-11-30 10:30"', user="U0ALICE")])
    assert "live at 2026-11-30 10:30:00Z" in at and "prod-payments-2" in at and "prod-payments-3" not in at
    typo = h.texts([_ask(served, "history paymnts")])
    assert "Did you mean 'payments'?" in typo and "`/aimodel list`" in typo


def test_a_bad_time_is_answered_in_the_ack_with_the_usage(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    answer = h.post(web, slack.slash_command("history payments --at tomorrowish", user_id="U0BOB"))
    assert answer.status_code == 200
    text = answer.json()["text"]
    assert "--at 'tomorrowish' is not a time" in text and "2026-11-30T12:00Z" in text
    assert "/aimodel history APP|MODEL" in text


def test_slack_help_offers_history(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    from bot import commands as c

    overview = c.parse_text("help")
    assert isinstance(overview, c.Reply) and "history" in overview.text
    assert "history" in c.SLACK_VERBS
