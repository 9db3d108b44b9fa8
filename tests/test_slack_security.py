"""Requests to /slack/events are Slack's or nothing: forged, stale, replayed and unsigned
requests get 401 from the real web process and change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from handlers.slack.replay import MemorySeen, RedisSeen
from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import Delivery, sign_request, url_verification_body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlackStandIn, h.WebProcess]]:
    with h.slack_and_web(tmp_path_factory.mktemp("slack-security")) as (slack, web, _home):
        yield slack, web


# Refused requests come from someone the bot does not know, in a channel of their own, so that
# anything done on their behalf shows in the stand-in's record by user or channel.
FORGER, FORGED_CHANNEL = "U0MALLORY", "C0FORGED"


def _nothing_followed(slack: SlackStandIn, web: h.WebProcess, refused: Delivery, twin_text: str = "list") -> None:
    """The refused request did nothing, shown after an event rather than after a pause: a signed
    twin sent after it is answered, so a listener wrongly started for the refused one (earlier,
    on the same path) has had its turn; yet nothing reached its response_url or the forge, and
    the Web API never heard of its user or channel."""
    twin = slack.slash_command(twin_text)
    assert h.post(web, twin).status_code == 200
    slack.wait_for_response(twin.response_url or "")
    if refused.response_url:
        assert slack.responses(refused.response_url) == []
    prs = web.home / "forge" / "prs"
    assert not prs.exists() or not any(prs.iterdir())
    on_their_behalf = [c for c in slack.calls() if FORGER in str(c.params) or FORGED_CHANNEL in str(c.params)]
    assert on_their_behalf == []


def _create_text() -> str:
    return "create fraud --app payments --dataset tx --artifact /nonexistent/model.onnx"


def _forged_command(slack: SlackStandIn, text: str) -> Delivery:
    return slack.slash_command(text, user_id=FORGER, channel_id=FORGED_CHANNEL)


def test_signed_request_is_answered(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = slack.slash_command("list")
    r = h.post(web, delivery)
    assert r.status_code == 200 and "Working on" in r.json()["text"]
    assert r.elapsed.total_seconds() < 3
    assert "No models yet" in slack.wait_for_response(delivery.response_url or "")[0]["text"]


def test_url_verification(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    _, web = served
    body = url_verification_body("c4allenge")
    with requests.post(web.events_url, data=body, headers={"Content-Type": "application/json", **sign_request(h.SECRET, body)}, timeout=5) as r:
        assert r.status_code == 200 and r.json() == {"challenge": "c4allenge"}


def test_forged_signature(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = _forged_command(slack, _create_text())
    r = h.post(web, delivery, secret="not-the-signing-secret")
    assert r.status_code == 401
    _nothing_followed(slack, web, delivery, _create_text())


def test_tampered_body(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = _forged_command(slack, "list")
    headers = delivery.headers(h.SECRET)
    with requests.post(web.events_url, data=delivery.body.replace(b"list", b"help"), headers=headers, timeout=5) as r:
        assert r.status_code == 401
    _nothing_followed(slack, web, delivery)


def test_timestamp_older_than_five_minutes(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = _forged_command(slack, _create_text())
    r = h.post(web, delivery, timestamp=int(time.time()) - 5 * 60 - 30)
    assert r.status_code == 401
    _nothing_followed(slack, web, delivery, _create_text())


def test_replayed_request(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = slack.slash_command("list")
    now = int(time.time())
    first = h.post(web, delivery, timestamp=now)
    assert first.status_code == 200
    slack.wait_for_response(delivery.response_url or "")
    again = h.post(web, delivery, timestamp=now)  # byte for byte the same request
    assert again.status_code == 401
    # the same body signed at another second is a new request (Slack's own retries are re-signed);
    # it comes after the replay, so once it is answered the replay would have been answered too
    assert h.post(web, delivery, timestamp=now + 1).status_code == 200
    answers = slack.wait_for_response(delivery.response_url or "", count=2)
    assert len(answers) == 2 and answers[0]["text"] == answers[1]["text"]


@pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp", "both"])
def test_missing_header(served: tuple[SlackStandIn, h.WebProcess], drop: str) -> None:
    slack, web = served
    delivery = _forged_command(slack, _create_text())
    headers = delivery.headers(h.SECRET)
    for name in (["X-Slack-Signature", "X-Slack-Request-Timestamp"] if drop == "both" else [drop]):
        headers.pop(name)
    with requests.post(web.events_url, data=delivery.body, headers=headers, timeout=5) as r:
        assert r.status_code == 401
    _nothing_followed(slack, web, delivery, _create_text())


def test_forged_button_click_changes_nothing(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    click = slack.block_action("merge_pr", "pr:1", user_id=FORGER, channel_id=FORGED_CHANNEL)
    assert h.post(web, click, secret="wrong").status_code == 401
    _nothing_followed(slack, web, click)


# ---------------------------------------------------------------------- the seen-sets themselves


def test_memory_seen_forgets_after_the_window_and_stays_bounded() -> None:
    now = [1000.0]
    seen = MemorySeen(ttl=300, max_entries=3, clock=lambda: now[0])
    assert seen.first_time("a") and not seen.first_time("a")
    now[0] += 301
    assert seen.first_time("a")  # the window passed: Bolt's timestamp check refuses it anyway
    for key in "bcde":
        assert seen.first_time(key)
    assert len(seen) == 3  # bounded: the oldest went first
    assert not seen.first_time("e")


def test_redis_seen_is_shared_between_processes(redis_url: str) -> None:
    one, two = RedisSeen(redis_url, ttl=2), RedisSeen(redis_url, ttl=2)
    try:
        assert one.first_time("sig") and not two.first_time("sig")
        assert one.client.ttl(one.prefix + "sig") <= 2
    finally:
        one.client.close()
        two.client.close()
