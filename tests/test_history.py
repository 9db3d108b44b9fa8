"""`aimodel history APP|MODEL`: the release records read back as a person asks for them,
through the real CLI on a real home (git, the local forge). The records here are written by
the real ReleaseLog, as an apply writes them; tests/test_history_e2e.py makes them by merging."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.deploy.history import BadTime, parse_time
from bot.deploy.records import ModelPin, ReleaseLog, ReleaseRecord
from tests.conftest import Run

FRAUD_V1, FRAUD_V2, FRAUD_V3 = "a1" * 32, "b2" * 32, "c3" * 32


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _record(env: str, n: int, when: str, version: str, digest: str, pr: int, *, approvers: tuple[str, ...] = ("dev",),
            result: str = "ok", reason: str = "", app: str = "payments") -> ReleaseRecord:
    finished = _ts(when)
    return ReleaseRecord(
        id=f"{env}-{app}-{n}", env=env, app=app, app_version=f"2.{n}.0", models={"fraud": ModelPin(version, digest)},
        commit=f"{pr:x}" * 40, pr=pr, author="eve", approvers=approvers, started=finished - 2, finished=finished,
        result=result, reason=reason,
    )


@pytest.fixture
def releases(home: Path) -> ReleaseLog:
    log = ReleaseLog(home / "releases")
    log.append(_record("dev", 1, "2026-11-30 08:00", "1.0.0", FRAUD_V1, 2, approvers=()))
    log.append(_record("prod", 1, "2026-11-30 09:00", "1.0.0", FRAUD_V1, 3))
    log.append(_record("prod", 2, "2026-11-30 10:00", "1.1.0", FRAUD_V2, 5, approvers=("dev", "alan")))
    log.append(_record("prod", 3, "2026-11-30 11:00", "1.2.0", FRAUD_V3, 7))
    log.append(_record("prod", 4, "2026-11-30 11:30", "1.3.0", "d4" * 32, 9, result="failed", reason="signature refused"))
    return log


def _rows(out: str, env: str) -> list[list[str]]:
    """The table under `env:` as rows of cells (cells are split on two or more spaces)."""
    import re

    lines = out.splitlines()
    start = lines.index(f"{env}:") + 2  # the environment's name, then the table's header
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_history_of_an_app_in_one_env_lists_its_releases_newest_first(aimodel: Run, releases: ReleaseLog) -> None:
    out = aimodel("history", "payments", "--env", "prod", "--as", "ada").out
    assert out.startswith("Releases of application payments, newest first")
    assert "dev:" not in out
    rows = _rows(out, "prod")
    assert [r[0] for r in rows] == ["prod-payments-4", "prod-payments-3", "prod-payments-2", "prod-payments-1"]
    failed, third, second, first = rows
    assert failed[-1] == "failed: signature refused"
    assert third == ["prod-payments-3", "2026-11-30 11:00:00Z", "payments 2.3.0", f"fraud 1.2.0 @{FRAUD_V3[:8]}",
                     "#7", "7" * 10, "eve", "dev", "ok"]
    assert second[4] == "#5" and second[7] == "dev, alan"
    assert first[4] == "#3" and first[3] == f"fraud 1.0.0 @{FRAUD_V1[:8]}"


def test_history_at_a_time_answers_what_was_live_then(aimodel: Run, releases: ReleaseLog) -> None:
    out = aimodel("history", "payments", "--env", "prod", "--at", "2026-11-30T10:30Z").out
    assert out.startswith("Releases of application payments live at 2026-11-30 10:30:00Z")
    assert [r[0] for r in _rows(out, "prod")] == ["prod-payments-2"]
    # the failed apply at 11:30 never went live: 3 still answers after it
    late = aimodel("history", "payments", "--at", "2026-11-30 11:45").out
    assert [r[0] for r in _rows(late, "prod")] == ["prod-payments-3"]
    assert [r[0] for r in _rows(late, "dev")] == ["dev-payments-1"]
    before = aimodel("history", "payments", "--env", "prod", "--at", "2026-11-30 08:30")
    assert before.out.strip() == "Nothing of payments was live in prod at 2026-11-30 08:30:00Z."


def test_history_of_a_model_covers_every_environment(aimodel: Run, releases: ReleaseLog) -> None:
    out = aimodel("history", "fraud").out
    assert out.startswith("Releases of model fraud, newest first")
    assert [r[0] for r in _rows(out, "dev")] == ["dev-payments-1"]
    assert len(_rows(out, "prod")) == 4
    assert out.index("dev:") < out.index("prod:")  # the config's promotion order


def test_history_json_is_the_records_newest_first(aimodel: Run, releases: ReleaseLog) -> None:
    data = aimodel("history", "payments", "--json").json
    assert [r["id"] for r in data] == ["prod-payments-4", "prod-payments-3", "prod-payments-2", "prod-payments-1", "dev-payments-1"]
    assert data[2] == releases.get("prod-payments-2").to_json()  # type: ignore[union-attr]
    assert data[2]["models"] == {"fraud": {"version": "1.1.0", "sha256": FRAUD_V2}}
    assert data[2]["pr"] == 5 and data[2]["approvers"] == ["dev", "alan"]
    at = aimodel("history", "payments", "--env", "prod", "--at", "2026-11-30 10:30", "--json").json
    assert [r["id"] for r in at] == ["prod-payments-2"]


def test_a_bad_time_is_a_usage_error_with_an_example(aimodel: Run, releases: ReleaseLog) -> None:
    bad = aimodel("history", "payments", "--at", "yesterday-ish", expect=2)
    assert "--at 'yesterday-ish' is not a time" in bad.err
    assert "2026-11-30T12:00Z" in bad.err and "2h ago" in bad.err
    assert "usage: aimodel history APP|MODEL" in bad.err
    assert bad.out == ""


def test_unknown_names_get_did_you_mean_and_unknown_envs_the_list(aimodel: Run, releases: ReleaseLog) -> None:
    typo = aimodel("history", "paymnets", expect=1)
    assert "there is no application or model named 'paymnets'. Did you mean 'payments'?" in typo.err
    env = aimodel("history", "payments", "--env", "staging", expect=1)
    assert "there is no environment named 'staging'; environments: dev, test, prod" in env.err
    stranger = aimodel("history", "payments", "--as", "mallory", expect=1)
    assert "mallory is not listed under people" in stranger.err


def test_a_known_app_without_releases_says_so(aimodel: Run, home: Path) -> None:
    ReleaseLog(home / "releases").append(_record("dev", 1, "2026-11-30 08:00", "1.0.0", FRAUD_V1, 2, app="ledger"))
    out = aimodel("history", "ledger", "--env", "prod").out
    assert out.strip() == "No release of ledger in prod yet: a merged deploy writes one per environment."


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-30T12:00Z", "2026-11-30 12:00"), ("2026-11-30 12:00", "2026-11-30 12:00"),
    ("2026-11-30T13:00+01:00", "2026-11-30 12:00"), ("2026-11-30", "2026-11-30 00:00"),
])
def test_iso_times_are_utc_without_a_zone(text: str, expected: str) -> None:
    assert parse_time(text, 0.0) == _ts(expected)


@pytest.mark.parametrize(("text", "seconds"), [("2h ago", 7200), ("30 minutes ago", 1800), ("1 day ago", 86400), ("3d ago", 259200), ("now", 0)])
def test_relative_times_count_back_from_now(text: str, seconds: int) -> None:
    assert parse_time(text, 1_000_000.0) == 1_000_000.0 - seconds


@pytest.mark.parametrize("text", ["yesterday", "2h", "5 parsecs ago", "", "2026-13-45"])
def test_what_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(BadTime):
        parse_time(text, 0.0)
