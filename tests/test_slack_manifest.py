"""slack-app-manifest.yaml creates an app that matches what the web process serves."""

from __future__ import annotations

from typing import Any

import yaml

from tests.slack_helpers import ROOT


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "slack-app-manifest.yaml").read_text())
    return data


def test_manifest_points_every_request_at_slack_events() -> None:
    m = _manifest()
    [command] = m["features"]["slash_commands"]
    assert command["command"] == "/aimodel" and command["url"].endswith("/slack/events")
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert m["settings"]["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert m["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert m["features"]["app_home"]["home_tab_enabled"] is True


def test_manifest_grants_the_scopes_the_bot_uses() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    # commands, posting, the DM fallback, users.info with email, history for the notifier
    assert {"commands", "chat:write", "chat:write.public", "im:write", "users:read", "users:read.email", "channels:history"} <= scopes
