"""Requests to /slack/events are Slack's or nothing: forged, stale, replayed and unsigned
requests get 401 from the real web process and change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from handlers.slack.replay import MemorySeen, RedisSeen
from tests import slack_helpers as h
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import sign_request, url_verification_body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlackStandIn, h.WebProcess]]:
    tmp = tmp_path_factory.mktemp("slack-security")
    home = tmp / "home"
    h.init_home(home)
    with SlackStandIn() as slack:
        slack.add_bot_token(h.TOKEN)
        web = h.WebProcess(home, h.server_env(home, slack), tmp / "web.log").start()
        try:
            yield slack, web
        finally:
            web.stop()


def _nothing_happened(slack: SlackStandIn, home: Path, response_url: str | None) -> None:
    time.sleep(0.5)  # give a wrongly started lazy listener the time to show itself
    assert slack.calls() == []
    if response_url:
        assert slack.responses(response_url) == []
    assert not (home / "forge" / "prs").exists() or not any((home / "forge" / "prs").iterdir())


def _create_text() -> str:
    return "create fraud --app payments --dataset tx --artifact /nonexistent/model.onnx"


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
    slack.clear_calls()
    delivery = slack.slash_command(_create_text())
    r = h.post(web, delivery, secret="not-the-signing-secret")
    assert r.status_code == 401
    _nothing_happened(slack, web.home, delivery.response_url)


def test_tampered_body(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    slack.clear_calls()
    delivery = slack.slash_command("list")
    headers = delivery.headers(h.SECRET)
    with requests.post(web.events_url, data=delivery.body.replace(b"list", b"help"), headers=headers, timeout=5) as r:
        assert r.status_code == 401
    _nothing_happened(slack, web.home, delivery.response_url)


def test_timestamp_older_than_five_minutes(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    slack.clear_calls()
    delivery = slack.slash_command(_create_text())
    r = h.post(web, delivery, timestamp=int(time.time()) - 5 * 60 - 30)
    assert r.status_code == 401
    _nothing_happened(slack, web.home, delivery.response_url)


def test_replayed_request(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    delivery = slack.slash_command("list")
    now = int(time.time())
    first = h.post(web, delivery, timestamp=now)
    assert first.status_code == 200
    slack.wait_for_response(delivery.response_url or "")
    time.sleep(0.3)
    slack.clear_calls()
    again = h.post(web, delivery, timestamp=now)  # byte for byte the same request
    assert again.status_code == 401
    time.sleep(0.5)
    assert len(slack.responses(delivery.response_url or "")) == 1
    assert slack.calls() == []
    # the same body signed at another second is a new request (Slack's own retries are re-signed)
    assert h.post(web, delivery, timestamp=now + 1).status_code == 200


@pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp", "both"])
def test_missing_header(served: tuple[SlackStandIn, h.WebProcess], drop: str) -> None:
    slack, web = served
    slack.clear_calls()
    delivery = slack.slash_command(_create_text())
    headers = delivery.headers(h.SECRET)
    for name in (["X-Slack-Signature", "X-Slack-Request-Timestamp"] if drop == "both" else [drop]):
        headers.pop(name)
    with requests.post(web.events_url, data=delivery.body, headers=headers, timeout=5) as r:
        assert r.status_code == 401
    _nothing_happened(slack, web.home, delivery.response_url)


def test_forged_button_click_changes_nothing(served: tuple[SlackStandIn, h.WebProcess]) -> None:
    slack, web = served
    slack.clear_calls()
    click = slack.block_action("merge_pr", "pr:1", user_id="U0BOB")
    assert h.post(web, click, secret="wrong").status_code == 401
    _nothing_happened(slack, web.home, click.response_url)


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
