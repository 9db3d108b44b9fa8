"""The Slack stand-in behaves like Slack for the methods the app calls, and its signed deliveries
are accepted by the real slack_sdk / slack_bolt: exercised with those clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import requests
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.standins.slack_api import Delivery, SlackStandIn
from tests.standins.slack_signing import (
    FIXTURES,
    load_fixture,
    sign_request,
    slash_command_body,
)

TOKEN = "xoxb-1111-2222-standin"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        standin.add_bot_token(TOKEN)
        standin.add_user("U0ALICE", "alice", "alice@example.com", "Alice Example")
        standin.add_user("U0BOB", "bob", "bob@example.com", "Bob Example")
        standin.add_channel("C0MODELS", "ml-models")
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url)


# ---------------------------------------------------------------------- Web API


def test_auth_test_answers_like_slack(slack: SlackStandIn, client: WebClient) -> None:
    assert slack.api_url.startswith("http://127.0.0.1:") and slack.api_url.endswith("/api/")
    resp = client.auth_test()
    assert resp["ok"] is True
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0001", "U0BOT", "B0BOT")
    assert resp["url"] == "https://aimodel-dev.slack.com/"
    assert "chat:write" in resp.headers["X-OAuth-Scopes"]
    call = slack.wait_for_call("auth.test")
    assert call.token == TOKEN and call.ok and call.status == 200


def test_post_message_in_a_thread(slack: SlackStandIn, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*PR #42* opened"}}]
    parent = client.chat_postMessage(channel="C0MODELS", text="PR #42 opened", blocks=blocks)
    assert parent["channel"] == "C0MODELS"
    assert parent["ts"] == "1700000000.000100"
    assert parent["message"]["blocks"] == blocks
    assert parent["message"]["bot_id"] == "B0BOT"

    reply = client.chat_postMessage(channel="C0MODELS", text="checks green", thread_ts=parent["ts"])
    assert float(reply["ts"]) > float(parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]

    history = client.conversations_history(channel="C0MODELS")
    assert [m["text"] for m in history["messages"]] == ["PR #42 opened"]  # replies stay in thread

    assert [m["ts"] for m in slack.thread("C0MODELS", parent["ts"])] == [parent["ts"], reply["ts"]]
    assert len(slack.messages("C0MODELS")) == 2
    call = slack.calls("chat.postMessage")[0]
    assert call.params["blocks"] == blocks and call.token == TOKEN


def test_form_encoded_blocks_and_get_query_are_decoded(
    slack: SlackStandIn, client: WebClient
) -> None:
    blocks = [{"type": "divider"}]
    client.api_call(
        "chat.postMessage", params={"channel": "C0MODELS", "blocks": json.dumps(blocks)}
    )
    call = slack.calls("chat.postMessage")[0]
    assert call.content_type.startswith("application/x-www-form-urlencoded")
    assert call.params["blocks"] == blocks
    resp = client.api_call("users.info", http_verb="GET", params={"user": "U0ALICE"})
    assert resp["user"]["real_name"] == "Alice Example"  # slack_sdk: POST + query string
    with requests.get(
        slack.api_url + "users.info",
        params={"user": "U0BOB"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    ) as r:
        assert r.json()["user"]["name"] == "bob"
    assert [c.http_method for c in slack.calls("users.info")] == ["POST", "GET"]


def test_views_publish_keeps_last_home_view(slack: SlackStandIn, client: WebClient) -> None:
    first = client.views_publish(
        user_id="U0ALICE", view={"type": "home", "blocks": [{"type": "divider"}]}
    )
    second = client.views_publish(
        user_id="U0ALICE",
        view={
            "type": "home",
            "callback_id": "aimodel_home",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "2 models"}}],
        },
    )
    assert second["view"]["id"] == first["view"]["id"]
    home = slack.home_view("U0ALICE")
    assert home is not None and home["callback_id"] == "aimodel_home"
    assert home["blocks"][0]["text"]["text"] == "2 models"
    assert slack.home_view("U0BOB") is None
    with pytest.raises(SlackApiError) as err:
        client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []}, hash="stale")
    assert err.value.response["error"] == "hash_conflict"


def test_views_open_needs_a_trigger(slack: SlackStandIn, client: WebClient) -> None:
    modal = {"type": "modal", "callback_id": "create_model", "title": {"type": "plain_text", "text": "Create a model"}, "blocks": []}
    opened = client.views_open(trigger_id=slack.new_trigger_id(), view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "create_model"
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="", view=modal)
    assert err.value.response["error"] == "invalid_arguments"


def test_dm_ephemeral_and_update(slack: SlackStandIn, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="U0ALICE", text="your PR is merged")  # a user id: the DM
    assert posted["channel"].startswith("D") and slack.dm_channel("U0ALICE") == posted["channel"]
    client.chat_postEphemeral(channel="C0MODELS", user="U0BOB", text="only for bob")
    assert slack.ephemerals("C0MODELS", "U0BOB")[0]["text"] == "only for bob"
    ts = client.chat_postMessage(channel="C0MODELS", text="deploying")["ts"]
    assert client.chat_update(channel="C0MODELS", ts=ts, text="deployed")["text"] == "deployed"
    assert [m["text"] for m in slack.messages("C0MODELS")] == ["deployed"]
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C0MODELS", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_history_pages_with_cursor(client: WebClient) -> None:
    for n in range(5):
        client.chat_postMessage(channel="C0MODELS", text=f"m{n}")
    first = client.conversations_history(channel="C0MODELS", limit=3)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3", "m2"] and first["has_more"]
    rest = client.conversations_history(channel="C0MODELS", limit=3, cursor=first["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["m1", "m0"] and not rest["has_more"]


def test_invalid_auth_and_unknown_method(slack: SlackStandIn) -> None:
    bad = WebClient(token="xoxb-not-registered", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as err:
        bad.chat_postMessage(channel="C0MODELS", text="hi")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=slack.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as err:
        WebClient(token=TOKEN, base_url=slack.api_url).api_call("models.teleport")
    assert err.value.response["error"] == "unknown_method"
    assert slack.messages("C0MODELS") == []


def test_strict_channels(slack: SlackStandIn, client: WebClient) -> None:
    client.chat_postMessage(channel="C0AUTO", text="auto-created by default")
    assert slack.channel("C0AUTO") is not None
    slack.strict_channels = True
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0UNKNOWN", text="x")
    assert err.value.response["error"] == "channel_not_found"
    slack.add_channel("C0PRIVATE", "secret-models", is_private=True, is_member=False)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0PRIVATE", text="x")
    assert err.value.response["error"] == "not_in_channel"


# ---------------------------------------------------------------------- failure injection


def test_rate_limit_is_retried_by_slack_sdk(slack: SlackStandIn) -> None:
    slack.fail_next("chat.postMessage", retry_after=0, times=2)
    client = WebClient(
        token=TOKEN,
        base_url=slack.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    resp = client.chat_postMessage(channel="C0MODELS", text="after the storm")
    assert resp["ok"] is True
    statuses = [c.status for c in slack.calls("chat.postMessage")]
    assert statuses == [429, 429, 200]
    assert [m["text"] for m in slack.messages("C0MODELS")] == ["after the storm"]


def test_injected_error_is_http_200(slack: SlackStandIn, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0MODELS", text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "channel_not_found"
    client.chat_postMessage(channel="C0MODELS", text="y")
    assert [c.ok for c in slack.calls("chat.postMessage")] == [False, True]


# ---------------------------------------------------------------------- response_url


def test_response_url_records_messages(slack: SlackStandIn) -> None:
    url = slack.new_response_url(channel="C0MODELS", user="U0ALICE")
    webhook = WebhookClient(url)
    assert webhook.send(text="working on it", response_type="ephemeral").status_code == 200
    with requests.post(
        url, json={"response_type": "in_channel", "text": "PR #42 opened"}, timeout=5
    ) as r:
        assert r.json() == {"ok": True}
    got = slack.wait_for_response(url, count=2)
    assert [g["text"] for g in got] == ["working on it", "PR #42 opened"]
    rid = url.rsplit("/response/", 1)[1]
    assert slack.responses(rid) == got
    assert [m["text"] for m in slack.messages("C0MODELS")] == ["PR #42 opened"]
    assert slack.ephemerals("C0MODELS", "U0ALICE")[0]["text"] == "working on it"
    with pytest.raises(TimeoutError):
        slack.wait_for_response(rid, count=3, timeout=0.2)


def test_response_url_replace_original_and_use_limit(
    slack: SlackStandIn, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C0MODELS", text="Approve PR #42?")["ts"]
    url = slack.new_response_url(channel="C0MODELS", message_ts=ts, max_uses=2)
    webhook = WebhookClient(url)
    webhook.send(text="Approved by bob", replace_original=True)
    assert slack.messages("C0MODELS")[0]["text"] == "Approved by bob"
    webhook.send(delete_original=True)
    assert slack.messages("C0MODELS") == []
    assert webhook.send(text="third").status_code == 404  # used_url
    assert WebhookClient(f"{slack.base_url}/response/nope").send(text="x").status_code == 404


# ---------------------------------------------------------------------- signing


def test_signature_verified_by_slack_sdk() -> None:
    body = slash_command_body(text="create fraud-detector", user_id="U0ALICE")
    headers = sign_request(SECRET, body)
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body + b"x", headers)
    old = sign_request(SECRET, body, timestamp=int(time.time()) - 10 * 60)
    assert not SignatureVerifier(SECRET).is_valid_request(body, old)


def test_signature_matches_slack_documented_example() -> None:
    # The worked example in Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = sign_request(SECRET, body, timestamp=1531420618)
    assert headers == {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": (
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ),
    }


def test_slash_command_body_is_slack_form() -> None:
    body = slash_command_body(
        text="validate --appName name1 --SLA accuracy>=0.9",
        user_id="U0BOB",
        user_name="bob",
        channel_id="C0MODELS",
        response_url="http://127.0.0.1:1/response/x",
        trigger_id="1.2.3",
    )
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert fields["command"] == "/aimodel"
    assert fields["text"] == "validate --appName name1 --SLA accuracy>=0.9"
    assert (fields["user_id"], fields["user_name"], fields["team_id"]) == ("U0BOB", "bob", "T0001")
    assert fields["response_url"] == "http://127.0.0.1:1/response/x"
    assert b"command=%2Faimodel" in body and b" " not in body


@pytest.mark.parametrize(
    "kind,required",
    [
        ("slash_command", {"command", "text", "user_id", "channel_id", "response_url"}),
        ("block_actions", {"type", "actions", "container", "user", "team", "trigger_id"}),
        ("view_submission", {"type", "view", "user", "trigger_id"}),
        ("app_home_opened", {"type", "event", "event_id", "authorizations"}),
        ("url_verification", {"type", "challenge", "token"}),
    ],
)
def test_every_fixture_has_slack_fields(kind: str, required: set[str]) -> None:
    files = sorted((FIXTURES / kind).glob("*.json"))
    assert files
    for path in files:
        data = load_fixture(kind, path.stem)
        assert required <= data.keys(), path
        if data.get("container", {}).get("type") == "message":  # views have no response_url
            assert {"response_url", "message", "channel"} <= data.keys(), path


# ---------------------------------------------------------------------- with Bolt


def test_bolt_app_against_the_standin(slack: SlackStandIn) -> None:
    app = App(
        client=WebClient(token=TOKEN, base_url=slack.api_url),
        signing_secret=SECRET,
        process_before_response=True,
    )

    @app.command("/aimodel")
    def aimodel(ack, command, respond, client):  # type: ignore[no-untyped-def]
        ack("working on it")
        respond(f"got: {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text="PR #1 opened")

    response_url = slack.new_response_url(channel="C0MODELS", user="U0ALICE")
    body = slash_command_body(text="list", response_url=response_url)
    resp = app.dispatch(BoltRequest(body=body.decode(), headers=sign_request(SECRET, body)))
    assert resp.status == 200 and "working on it" in resp.body
    assert slack.wait_for_response(response_url)[0]["text"] == "got: list"
    assert slack.messages("C0MODELS")[0]["text"] == "PR #1 opened"
    assert [c.method for c in slack.calls()] == ["auth.test", "chat.postMessage"]

    forged = app.dispatch(
        BoltRequest(body=body.decode(), headers=sign_request("wrong-secret", body))
    )
    assert forged.status == 401


def test_bolt_round_trip_with_standin_deliveries(slack: SlackStandIn) -> None:
    app = App(
        client=WebClient(token=TOKEN, base_url=slack.api_url),
        signing_secret=SECRET,
        process_before_response=True,
    )

    @app.action("approve_pr")
    def approve(ack, body, respond):  # type: ignore[no-untyped-def]
        ack()
        respond(text=f"Approved by <@{body['user']['id']}>", replace_original=True)

    @app.event("app_home_opened")
    def home(event, client):  # type: ignore[no-untyped-def]
        client.views_publish(
            user_id=event["user"], view={"type": "home", "blocks": [{"type": "divider"}]}
        )

    @app.view("create_model")
    def submitted(ack, view):  # type: ignore[no-untyped-def]
        name = view["state"]["values"]["name"]["value"]["value"]
        ack(response_action="errors", errors={"name": f"{name} exists"})

    def dispatch(delivery: Delivery) -> BoltResponse:
        return app.dispatch(
            BoltRequest(body=delivery.body.decode(), headers=delivery.headers(SECRET))
        )

    ts = WebClient(token=TOKEN, base_url=slack.api_url).chat_postMessage(
        channel="C0MODELS", text="Approve PR #42?"
    )["ts"]
    click = slack.block_action("approve_pr", "pr:42", user_id="U0BOB", message_ts=ts)
    assert click.payload()["message"]["text"] == "Approve PR #42?"
    assert dispatch(click).status == 200
    slack.wait_for_response(click.response_url or "")
    assert slack.messages("C0MODELS")[0]["text"] == "Approved by <@U0BOB>"

    opened = slack.app_home_opened("U0ALICE")
    assert "view" not in opened.payload()["event"]  # first visit: no view yet
    assert dispatch(opened).status == 200
    assert slack.home_view("U0ALICE")["blocks"] == [{"type": "divider"}]
    assert slack.app_home_opened("U0ALICE").payload()["event"]["view"]["type"] == "home"

    submit = slack.view_submission(
        "create_model", {"name": {"value": {"type": "plain_text_input", "value": "fraud"}}}
    )
    answer = dispatch(submit)
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "response_action": "errors",
        "errors": {"name": "fraud exists"},
    }

    command = slack.slash_command("list")
    fields = command.payload()
    assert (fields["user_name"], fields["channel_name"]) == ("alice", "ml-models")
    assert fields["response_url"] == command.response_url


