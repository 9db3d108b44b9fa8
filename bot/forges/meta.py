"""What the bot remembers about a pull request, typed, and how each forge keeps it.

The local forge keeps it in the pull request's JSON record (`meta`), GitHub as JSON in a
hidden comment at the end of the pull request body. Both read it through `PrMeta.from_json`,
which keeps only values of the expected type: a record written by an older bot, or a body
somebody edited by hand, gives empty fields, never a crash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SlackThread:
    """The pull request's parent message in Slack (its replies are the notifications)."""

    channel: str
    ts: str = ""
    user: str = ""


@dataclass(frozen=True)
class SignResult:
    state: str = "success"
    summary: str = "signed"
    details: str = ""


@dataclass(frozen=True)
class BotReview:
    """An approval given through the bot (Slack, CLI) on GitHub, which does not know it as a review."""

    person: str
    state: str
    commit: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class PrMeta:
    verb: str = ""  # create | update | deploy | destroy | open
    model: str = ""
    models: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()  # lock keys held for the pull request (released when it closes)
    via: str = ""  # cli | slack | github | bot
    vetted_sources: tuple[str, ...] = ()  # sources the person's face admitted (bot.sources.vetted_key)
    author: str = ""  # the person in the config (GitHub: who asked the bot, not the bot's login)
    opened_at: float = 0.0
    slack: SlackThread | None = None
    checked_head: str = ""  # the head the last signing run checked
    signed_head: str = ""  # the bot's signature commit on top of it
    unsigned_head: str = ""  # a signed head a person asked to check again
    sign_result: SignResult | None = None
    deploy: Mapping[str, Any] | None = None  # the deploy record of the merge (bot.lifecycle.deploy)
    reviews: tuple[BotReview, ...] = ()
    summary_comment: str = ""  # the local forge's stand-in for GitHub's summary comment
    told_head: str = ""  # the head whose checks notification was queued (the sweep tells one that was not)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """Only what is set, so a record stays small and reads like what happened."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value in (None, "", 0.0, ()):
                continue
            if isinstance(value, SlackThread | SignResult):
                value = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                value = [dataclasses.asdict(v) if isinstance(v, BotReview) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: object) -> PrMeta:
        d: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        return cls(
            verb=_str(d.get("verb")),
            model=_str(d.get("model")),
            models=_strs(d.get("models")),
            locks=_strs(d.get("locks")),
            via=_str(d.get("via")),
            vetted_sources=_strs(d.get("vetted_sources")),
            author=_str(d.get("author")),
            opened_at=_num(d.get("opened_at")),
            slack=_slack(d.get("slack")),
            checked_head=_str(d.get("checked_head")),
            signed_head=_str(d.get("signed_head")),
            unsigned_head=_str(d.get("unsigned_head")),
            sign_result=_sign(d.get("sign_result")),
            deploy=dict(d["deploy"]) if isinstance(d.get("deploy"), Mapping) else None,
            reviews=tuple(r for r in map(_review, d.get("reviews") or []) if r is not None) if isinstance(d.get("reviews"), list) else (),
            summary_comment=_str(d.get("summary_comment")),
            told_head=_str(d.get("told_head")),
        )


MetaChange = Callable[[PrMeta], PrMeta]  # e.g. lambda m: dataclasses.replace(m, deploy=record)


# --------------------------------------------------------------------------- per forge


def read_record(data: object) -> PrMeta:
    """The local forge: the `meta` object of a pull request's JSON record."""
    return PrMeta.from_json(data)


def write_record(meta: PrMeta) -> dict[str, Any]:
    return meta.to_json()


def read_body(body: str | None) -> tuple[str, PrMeta]:
    """GitHub: (the visible body, the metadata hidden at its end)."""
    from bot.messages import github as md

    visible, data = md.parse_pr_body(body)
    return visible, PrMeta.from_json(data)


def write_body(visible: str, meta: PrMeta) -> str:
    from bot.messages import github as md

    return md.render_pr_body(visible, meta.to_json())


# --------------------------------------------------------------------------- coercion


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _strs(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list | tuple) else ()


def _slack(value: object) -> SlackThread | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("channel"), str) or not value["channel"]:
        return None
    return SlackThread(value["channel"], _str(value.get("ts")), _str(value.get("user")))


def _sign(value: object) -> SignResult | None:
    if not isinstance(value, Mapping):
        return None
    return SignResult(_str(value.get("state")) or "success", _str(value.get("summary")) or "signed", _str(value.get("details")))


def _review(value: object) -> BotReview | None:
    if not isinstance(value, Mapping) or not _str(value.get("person")) or not _str(value.get("state")):
        return None
    return BotReview(value["person"], value["state"], _str(value.get("commit")), _num(value.get("at")))
