"""Operations settings and the CLI's log line: the worker's heartbeat, the readiness window and the
stop grace are Settings, checked at start; every CLI command leaves one INFO line (verb, result,
exit code, duration, person, request id) where AIMODEL_LOG_FILE says, never its arguments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.config import ConfigError, WorkerSettings, load_settings
from bot.health import Probe, readiness
from bot.jobs import QueueHealth
from tests.conftest import Run


def test_worker_settings_come_from_the_environment(tmp_path: Path) -> None:
    assert load_settings({"AIMODEL_HOME": str(tmp_path)}).worker == WorkerSettings(heartbeat=5, ready_within=30, stop_grace=30)
    env = {"AIMODEL_HOME": str(tmp_path), "AIMODEL_HEARTBEAT": "2", "AIMODEL_READY_WITHIN": "10", "AIMODEL_STOP_GRACE": "0",
           "AIMODEL_WORKER_METRICS_PORT": "9102"}
    assert load_settings(env).worker == WorkerSettings(heartbeat=2, ready_within=10, stop_grace=0, metrics_port=9102)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"AIMODEL_READY_WITHIN": "5"}, "AIMODEL_READY_WITHIN=5 must be at least twice AIMODEL_HEARTBEAT=5"),
        ({"AIMODEL_STOP_GRACE": "-1"}, "AIMODEL_STOP_GRACE=-1 is out of range 0..3600"),
        ({"AIMODEL_HEARTBEAT": "often"}, "AIMODEL_HEARTBEAT='often' is not a whole number"),
        ({"AIMODEL_WORKER_METRICS_PORT": "70000"}, "AIMODEL_WORKER_METRICS_PORT=70000 is out of range 0..65535"),
    ],
)
def test_a_bad_worker_setting_is_refused(tmp_path: Path, env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"AIMODEL_HOME": str(tmp_path), **env})
    assert str(caught.value) == line


def test_readiness_uses_the_configured_window() -> None:
    queue = QueueHealth(worker_seen=100.0, depth=0, oldest_queued=None)
    assert readiness(Probe(queue, True, now=110.0, within=10.0))[0] is True
    ready, body = readiness(Probe(queue, True, now=111.0, within=10.0))
    assert ready is False and body["worker"] == "last seen 11 s ago"


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_cli_command_leaves_one_info_line_without_its_arguments(aimodel: Run, home: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "cli.log"
    monkeypatch.setenv("AIMODEL_LOG_FILE", str(log))
    aimodel("list", "--as", "ada")
    aimodel("pr", "merge", "9", "--as", "eve", expect=1)
    secret = "https://alice:s3cr3t-t0ken@models.example.com/fraud.onnx"
    aimodel("create", "fraud", "--app", "payments", "--dataset", "tx", "--artifact", secret, "--dataset-uri", secret,
            "--label-column", "label", "--as", "ada", expect=1)
    lines = _lines(log)
    assert [(line["verb"], line["result"], line["exit_code"], line["person"]) for line in lines] == [
        ("list", "ok", 0, "ada"), ("pr merge", "refused", 1, "eve"), ("create", "refused", 1, "ada"),
    ]
    assert all(line["level"] == "info" and line["logger"] == "aimodel.cli" for line in lines)
    assert lines[1]["pr"] == 9 and lines[1]["message"].startswith("command pr merge refused (exit 1) in ")  # type: ignore[union-attr]
    ids = [str(line["request_id"]) for line in lines]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids) and len(set(ids)) == 3
    assert all(isinstance(line["seconds"], float) for line in lines)
    assert "s3cr3t" not in log.read_text() and "models.example.com" not in log.read_text()


def test_the_cli_line_goes_to_stderr_with_a_dash_and_a_bad_path_is_said_once(aimodel: Run, home: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMODEL_LOG_FILE", "-")
    err = aimodel("list", "--as", "ada").err
    line = json.loads(err.strip().splitlines()[-1])  # captured stderr is not a terminal: JSON
    assert (line["verb"], line["result"]) == ("list", "ok")
    monkeypatch.setenv("AIMODEL_LOG_FILE", str(home / "no-such-folder" / "cli.log"))
    result = aimodel("list", "--as", "ada")  # the work is done: its exit code stands
    assert result.err.strip() == f"could not write the command's log line to {home / 'no-such-folder' / 'cli.log'} " \
                                 "(AIMODEL_LOG_FILE): No such file or directory"


def test_slack_commands_are_counted_by_verb_and_result(tmp_path: Path) -> None:
    import requests

    from tests import slack_helpers as h

    with h.slack_and_web(tmp_path) as (slack, web, _home):
        slack.add_user("U0ZED", "zed", "zed@example.com")
        asked = [("list", "U0ALICE"), ("list", "U0ZED"), ("frobnicate", "U0ALICE"), ("help", "U0ALICE")]
        for text, user in asked:
            delivery = slack.slash_command(text, user_id=user, channel_id="C0MODELS")
            assert h.post(web, delivery).status_code == 200
            if text == "list":  # answered by the lazy listener, at the response_url
                slack.wait_for_response(delivery.response_url or "", timeout=60)

        def samples() -> dict[str, float]:
            text = requests.get(f"{web.url}/metrics", timeout=10).text
            return {m.group(1): float(m.group(2)) for m in re.finditer(r'^aimodel_commands_total\{(face="slack",[^}]*)\} (\S+)$', text, re.M)}

        want = {
            'face="slack",result="ok",verb="list"': 1.0,
            'face="slack",result="refused",verb="list"': 1.0,  # a stranger
            'face="slack",result="usage",verb="unknown"': 1.0,  # no such verb: never its text as a label
            'face="slack",result="ok",verb="help"': 1.0,
        }
        h.wait_until(lambda: samples() == want, what=f"the Slack samples {want}, have {samples()}")


def test_a_slack_event_retried_after_five_minutes_still_runs_once() -> None:
    """Slack's last retry comes about 5 minutes after the first delivery, signed anew: the event id
    outlives the 5-minute signature window."""
    from slack_bolt.request import BoltRequest
    from slack_bolt.response import BoltResponse

    from handlers.slack.replay import MemorySeen, ReplayGuard
    from tests.standins.slack_api import SlackStandIn
    from tests.standins.slack_signing import signed_headers

    now = [1000.0]
    guard = ReplayGuard(MemorySeen(clock=lambda: now[0]))
    with SlackStandIn() as slack:
        event = slack.app_home_opened("U0BOB")

    def deliver(stamp: int, retry: int | None) -> int:
        headers = signed_headers("secret", event.body, stamp, event.content_type)
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
        request = BoltRequest(body=event.body.decode(), headers=headers)
        ran = guard.process(req=request, resp=BoltResponse(status=200), next=lambda: BoltResponse(status=299))
        return int(ran.status)

    assert deliver(1_700_000_000, None) == 299  # run
    now[0] += 60
    assert deliver(1_700_000_060, 1) == 200  # answered, not run
    now[0] += 330
    assert deliver(1_700_000_390, 2) == 200
    other = MemorySeen(clock=lambda: now[0])
    assert other.first_time("a-signature") and not other.first_time("a-signature")
    now[0] += 301
    assert other.first_time("a-signature")  # a signature's own window is still 5 minutes
