"""Sources are policy, from Slack: the real web process and its worker, the Slack stand-in.

A Data Scientist's `/aimodel create` with each URI from the security review is refused in
the reply; a listener on a real port sees no connection; the web process's secrets never
appear in any message the bot sent to Slack nor in its log. Only the test's files folder is
an allowed source (as a team's bucket would be).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import slack_helpers as h
from tests.listener import Listener
from tests.standins.slack_api import SlackStandIn

CHANNEL = "C0MODELS"
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSLACKSIDE"
HF_TOKEN = "hf_column_shaped_secret_0123456789"  # spelled like a CSV column name
UNAVAILABLE = "does not exist or is not in an allowed source"


@dataclass
class Served:
    slack: SlackStandIn
    web: h.WebProcess
    home: Path
    files: Path
    listener: Listener
    response_urls: list[str]

    def command(self, text: str, user: str = "U0ALICE") -> str:
        delivery = self.slack.slash_command(text, user_id=user, channel_id=CHANNEL)
        self.response_urls.append(delivery.response_url or "")
        r = h.post(self.web, delivery)
        assert r.status_code == 200 and "Working on" in r.json()["text"]
        reply: dict[str, Any] = self.slack.wait_for_response(delivery.response_url or "", timeout=60)[0]
        return h.texts([reply])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.model_samples import linear_classifier, write_csv

    tmp = tmp_path_factory.mktemp("slack-sources")
    home, files = tmp / "home", tmp / "files"
    h.init_home(home, sources=[files])
    linear_classifier(files / "fraud.onnx")
    write_csv(files / "tx.csv", rows=100, right=95)
    (files / "leaky.csv").write_text(f"{HF_TOKEN},label\n0.1,1\n")
    (files / "innocent.onnx").symlink_to(home / "keys" / "signing.pem")
    with SlackStandIn() as slack, Listener() as listener:
        slack.add_bot_token(h.TOKEN)
        env = h.server_env(home, slack, AWS_SECRET_ACCESS_KEY=AWS_SECRET, HF_TOKEN=HF_TOKEN)
        web = h.WebProcess(home, env, tmp / "web.log").start()
        try:
            yield Served(slack, web, home, files, listener, [])
        finally:
            web.stop()


def _attacks(s: Served) -> dict[str, tuple[str, str]]:
    port, files = s.listener.port, s.files
    return {
        "proc-environ": ("/proc/self/environ", UNAVAILABLE),
        "signing-key": (str(s.home / "keys" / "signing.pem"), UNAVAILABLE),
        "symlink-to-key": (str(files / "innocent.onnx"), UNAVAILABLE),  # in the allowed folder, pointing out of it
        "dot-dot": (f"{files}/../home/keys/signing.pem", "`..` is not allowed"),
        "etc-passwd": ("file:///etc/passwd", UNAVAILABLE),
        "etc-shadow": ("/etc/shadow", UNAVAILABLE),
        "chained": (f"simplecache::file://{files}/fraud.onnx", "chained protocols"),
        "local-alias": (f"local://{files}/fraud.onnx", "protocol local:// is not allowed"),
        "webhdfs": (f"webhdfs://127.0.0.1:{port}/x", "protocol webhdfs:// is not allowed"),
        "http": (f"http://127.0.0.1:{port}/latest/meta-data/", "protocol http:// is not allowed"),
        "https": (f"https://127.0.0.1:{port}/m.onnx", UNAVAILABLE),
        "own-home-is-not-slacks": (str(Path.home()), UNAVAILABLE),  # the CLI's privilege, not Slack's
    }


ATTACKS = ["proc-environ", "signing-key", "symlink-to-key", "dot-dot", "etc-passwd", "etc-shadow", "chained", "local-alias",
           "webhdfs", "http", "https", "own-home-is-not-slacks"]


def _prs(s: Served) -> int:
    prs = s.home / "forge" / "prs"
    return len(list(prs.iterdir())) if prs.exists() else 0


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_slack_artifact_uri_from_the_attack_list_is_refused(served: Served, attack: str) -> None:
    uri, message = _attacks(served)[attack]
    before = _prs(served)
    text = served.command(f"create fraud --app payments --dataset tx --artifact {uri} "
                          f"--dataset-uri {served.files}/tx.csv --label-column label")
    assert message in text, text
    assert not served.listener.connected()  # asked after the refusal arrived
    assert _prs(served) == before


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_slack_dataset_uri_from_the_attack_list_is_refused(served: Served, attack: str) -> None:
    uri, message = _attacks(served)[attack]
    before = _prs(served)
    text = served.command(f"create fraud --app payments --dataset tx --artifact {served.files}/fraud.onnx "
                          f"--dataset-uri {uri} --label-column nope")
    assert message.replace("artifact", "data set") in text, text
    assert not served.listener.connected()
    assert _prs(served) == before


@pytest.mark.parametrize("attack", ["proc-environ", "symlink-to-key", "chained", "http", "etc-shadow"])
def test_the_create_form_checks_the_artifact_uri_against_the_sources(served: Served, attack: str) -> None:
    uri, message = _attacks(served)[attack]
    before = _prs(served)
    values = {"name": "formed", "app": "forms", "dataset": "tx", "dataset_uri": f"{served.files}/tx.csv",
              "label_column": "label", "artifact": uri}
    submit = served.slack.view_submission(
        "create_model", {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()},
        json.dumps({"channel": CHANNEL, "user": "U0ALICE"}), user_id="U0ALICE",
    )
    answer = h.post(served.web, submit).json()
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"artifact"}, answer
    assert message in answer["errors"]["artifact"]
    assert not served.listener.connected()
    assert _prs(served) == before


def test_from_slack_existing_and_missing_paths_outside_the_sources_read_the_same(served: Served) -> None:
    texts = []
    for path in ("/etc/hostname", "/etc/no-such-file-here", str(served.home / "repo.git" / "HEAD")):
        text = served.command(f"create fraud --app payments --dataset tx --artifact {path} "
                              f"--dataset-uri {served.files}/tx.csv --label-column label")
        texts.append(text.replace(path, "URI"))
    assert len(set(texts)) == 1 and UNAVAILABLE in texts[0], texts


def test_the_allowed_folder_works_and_no_secret_ever_left_the_bot(served: Served) -> None:
    text = served.command(f"create fraud --app payments --dataset tx --artifact {served.files}/fraud.onnx "
                          f"--dataset-uri {served.files}/tx.csv --label-column label --SLA accuracy>=0.9")
    assert "Opened pull request #1" in text, text
    h.wait_until(lambda: "validate" in h.texts(_thread(served, 1)), timeout=90, what="checks in the thread")
    # A data set of the allowed folder whose header is the value of a secret of the web process:
    # registered without an SLA (so it merges), then measured from Slack by name.
    text = served.command(f"create leaky --app mail --dataset leaky --artifact {served.files}/fraud.onnx "
                          f"--dataset-uri {served.files}/leaky.csv --label-column nope")
    assert "Opened pull request #2" in text, text
    h.wait_until(lambda: "sign" in h.texts(_thread(served, 2)), timeout=90, what="checks of #2 in the thread")
    _cli(served.home, "pr", "merge", "2", "--as", "alice")
    text = served.command("validate leaky --SLA accuracy>=0.9")
    assert "cannot measure" in text, text
    # Everything the bot sent to Slack over this module: Web API calls and response_url posts.
    sent = json.dumps([c.params for c in served.slack.calls()]) + json.dumps([served.slack.responses(u) for u in served.response_urls])
    log = served.web.log_text()
    assert "Opened pull request #2" in sent  # the record is not empty
    for secret in (h.SECRET, h.TOKEN, AWS_SECRET, HF_TOKEN):
        assert secret not in sent
        assert secret not in log


def _cli(home: Path, *argv: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIMODEL_", "REDIS_"))}
    env["AIMODEL_HOME"] = str(home)
    subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=env, cwd=h.ROOT, check=True, capture_output=True)


def _thread(s: Served, number: int) -> list[dict[str, Any]]:
    parents = [m for m in s.slack.messages(CHANNEL) if m.get("text", "").startswith(f"Pull request #{number}:")]
    if not parents:
        return []
    return s.slack.thread(CHANNEL, parents[0]["ts"])
