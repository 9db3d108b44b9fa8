"""Release records on disk: one file per record, ids per environment and application, the
questions history and rollback ask (live, at a time, ran in an environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.deploy.records import ModelPin, ReleaseLog, ReleaseRecord


def _record(log: ReleaseLog, env: str, app: str, version: str, at: float, result: str = "ok", reason: str = "") -> ReleaseRecord:
    record = ReleaseRecord(
        id=log.next_id(env, app), env=env, app=app, app_version="2.0.0",
        models={"fraud": ModelPin(version, "ab" * 32)}, commit="c" * 40, pr=7, author="eve", approvers=("dev",),
        started=at, finished=at + 1, result=result, reason=reason,
    )
    log.append(record)
    return record


def test_ids_count_per_environment_and_application(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "releases")
    assert [_record(log, "prod", "payments", "1.0.0", t).id for t in (10, 20)] == ["prod-payments-1", "prod-payments-2"]
    assert _record(log, "prod", "payments-eu", "1.0.0", 30).id == "prod-payments-eu-1"
    assert _record(log, "dev", "payments", "1.0.0", 40).id == "dev-payments-1"
    assert _record(log, "prod", "payments", "1.1.0", 50).id == "prod-payments-3"
    files = sorted(p.name for p in (tmp_path / "releases" / "prod").iterdir())
    assert files == ["prod-payments-1.json", "prod-payments-2.json", "prod-payments-3.json", "prod-payments-eu-1.json"]
    on_disk = json.loads((tmp_path / "releases" / "prod" / "prod-payments-3.json").read_text())
    assert on_disk["models"] == {"fraud": {"version": "1.1.0", "sha256": "ab" * 32}} and on_disk["approvers"] == ["dev"]
    assert on_disk["pr"] == 7 and on_disk["author"] == "eve" and on_disk["result"] == "ok"


def test_a_taken_id_is_never_overwritten(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "releases")
    first = _record(log, "prod", "payments", "1.0.0", 10)
    with pytest.raises(FileExistsError):
        log.append(first)
    assert log.get(first.id) == first
    assert [p.name for p in (tmp_path / "releases" / "prod").iterdir()] == ["prod-payments-1.json"]  # no temporary left


def test_live_at_and_ran_ok_answer_from_the_records(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "releases")
    one = _record(log, "test", "payments", "1.0.0", 100)
    two = _record(log, "test", "payments", "1.1.0", 200)
    _record(log, "test", "payments", "1.2.0", 300, result="failed", reason="the stored object does not match")
    assert log.live("test") == {"payments": two}
    assert log.at("test", 150) == {"payments": one} and log.at("test", 50) == {}
    assert log.ran_ok("test", "fraud", "1.1.0") and not log.ran_ok("test", "fraud", "1.2.0")
    assert not log.ran_ok("prod", "fraud", "1.0.0")
    assert [r.id for r in log.records("test", app="payments", model="fraud")] == ["test-payments-1", "test-payments-2", "test-payments-3"]
    assert log.records("test", model="other") == [] and log.get("prod-payments-9") is None
    (tmp_path / "releases" / "test" / "test-payments-4.json").write_text("{not json")
    assert len(log.records()) == 3  # a damaged file is skipped, the rest is still history
