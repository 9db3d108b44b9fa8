"""PrMeta: what the bot remembers about a pull request, read back from either forge's form."""

from __future__ import annotations

import dataclasses

import pytest

from bot.forges.meta import (
    BotReview,
    PrMeta,
    SignResult,
    SlackThread,
    read_body,
    read_record,
    write_body,
    write_record,
)

FULL = PrMeta(
    verb="update", model="fraud", models=("fraud",), locks=("model:fraud", "app:payments"), via="slack",
    vetted_sources=("artifact:/srv/models/fraud.onnx",), author="eve", opened_at=1.5,
    slack=SlackThread("C0MODELS", "1.2", "U0EVE"), checked_head="a" * 40, signed_head="b" * 40,
    sign_result=SignResult("success", "fraud 1.0.1: signed", "- details"), deploy={"ok": True, "commit": "c" * 40},
    reviews=(BotReview("dev", "approved", "a" * 40, 2.0),), summary_comment="text",
)


def test_the_local_record_keeps_every_field() -> None:
    assert read_record(write_record(FULL)) == FULL


def test_the_github_body_keeps_every_field_and_the_visible_text() -> None:
    body = write_body("Update fraud <b>now</b>", FULL)
    assert read_body(body) == ("Update fraud <b>now</b>", FULL)


def test_a_record_holds_only_what_is_set() -> None:
    assert write_record(PrMeta(verb="create", locks=("model:x",))) == {"verb": "create", "locks": ["model:x"]}


CORRUPT = {
    "not an object": ["verb"],
    "wrong types": {"verb": 3, "locks": "model:x", "models": [1, "ok"], "opened_at": "soon", "slack": "C1",
                    "sign_result": ["x"], "deploy": "yes", "reviews": {"person": "dev"}},
    "reviews without a person": {"reviews": [{"state": "approved"}, {"person": "dev", "state": "approved", "at": True}]},
    "a thread without a channel": {"slack": {"ts": "1.1"}},
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_metadata_gives_empty_fields_never_a_crash(name: str) -> None:
    meta = read_record(CORRUPT[name])
    assert dataclasses.replace(meta, models=(), reviews=()) == PrMeta()
    assert meta.models in ((), ("ok",))
    assert all(r.person == "dev" and r.at == 0.0 for r in meta.reviews)


def test_a_body_somebody_broke_by_hand_reads_as_no_metadata() -> None:
    assert read_body("hello <!-- aimodel:meta {not json} -->") == ("hello", PrMeta())
    assert read_body(None) == ("", PrMeta())
