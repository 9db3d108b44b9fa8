"""Who may start a verb, whose review counts, and who holds a role: bot.policy on plain data.
(The approval and merge rules are in test_policy_rules.py.)"""

from __future__ import annotations

import pytest

from bot.manifests import Person, RepoConfig
from bot.policy import DEFAULT_PERMISSIONS, Review, authorize, holders, latest_reviews, roles_for

PEOPLE = {
    "ada": Person("ada", ("data-scientist",)),
    "alan": Person("alan", ("application-developer",)),
    "eve": Person("eve", ("data-engineer",)),
    "dev": Person("dev", ("devops-engineer",)),
    "sam": Person("sam", ("data-scientist", "devops-engineer")),
    "nemo": Person("nemo", ()),
}
DEFAULTS = RepoConfig(people=PEOPLE, permissions={}, environments={})
CUSTOM = RepoConfig(people=PEOPLE, permissions={"deploy": ("devops-engineer",), "destroy": ("*",), "create": ()}, environments={})


@pytest.mark.parametrize(
    ("config", "who", "verb", "allowed"),
    [
        # the seed's actor table, where the config is silent
        (DEFAULTS, "ada", "create", True),
        (DEFAULTS, "alan", "create", True),
        (DEFAULTS, "eve", "create", False),
        (DEFAULTS, "dev", "update", True),
        (DEFAULTS, "ada", "update", False),
        (DEFAULTS, "eve", "deploy", True),
        (DEFAULTS, "ada", "deploy", False),
        (DEFAULTS, "eve", "destroy", True),
        (DEFAULTS, "dev", "destroy", False),
        (DEFAULTS, "nemo", "list", True),  # "*": anyone listed, even with no role
        (DEFAULTS, "ada", "no-such-verb", False),  # unknown verbs are for nobody
        (DEFAULTS, "sam", "deploy", True),  # one of several roles is enough
        # the repository's own table wins
        (CUSTOM, "eve", "deploy", False),
        (CUSTOM, "dev", "deploy", True),
        (CUSTOM, "nemo", "destroy", True),
        (CUSTOM, "ada", "create", False),  # an empty list: nobody
        (CUSTOM, "alan", "update", True),  # not in the table: the default
    ],
)
def test_authorize(config: RepoConfig, who: str, verb: str, allowed: bool) -> None:
    decision = authorize(config, PEOPLE[who], verb, who)
    assert decision.allowed is allowed
    assert (decision.reason == "") is allowed


@pytest.mark.parametrize(
    ("config", "who", "verb", "words"),
    [
        (DEFAULTS, "ada", "deploy", ["deploy is for", "DevOps Engineer", "ada is Data Scientist"]),
        (DEFAULTS, "nemo", "create", ["nemo is no role"]),
        (CUSTOM, "ada", "create", ["create is for nobody"]),
    ],
)
def test_a_refusal_says_who_may_and_what_you_are(config: RepoConfig, who: str, verb: str, words: list[str]) -> None:
    reason = authorize(config, PEOPLE[who], verb, who).reason
    for word in words:
        assert word in reason, reason


def test_someone_not_listed_is_refused_by_name() -> None:
    decision = authorize(DEFAULTS, None, "list", "mallory")
    assert not decision.allowed and "mallory is not listed under people" in decision.reason
    assert "you is not listed" in authorize(DEFAULTS, None, "list").reason


def test_roles_for_falls_back_to_the_defaults() -> None:
    assert roles_for(CUSTOM, "deploy") == ("devops-engineer",)
    assert roles_for(CUSTOM, "update") == DEFAULT_PERMISSIONS["update"]
    assert roles_for(DEFAULTS, "pr") == ()


@pytest.mark.parametrize(
    ("reviews", "last"),
    [
        ([], {}),
        ([Review("dev", "approved")], {"dev": "approved"}),
        ([Review("dev", "approved"), Review("dev", "changes_requested")], {"dev": "changes_requested"}),
        ([Review("dev", "changes_requested"), Review("dev", "approved")], {"dev": "approved"}),
        # a comment after an approval does not take it back (as on GitHub)
        ([Review("dev", "approved"), Review("dev", "commented")], {"dev": "approved"}),
        ([Review("dev", "commented")], {}),
        ([Review("dev", "approved"), Review("eve", "changes_requested")], {"dev": "approved", "eve": "changes_requested"}),
    ],
)
def test_latest_reviews(reviews: list[Review], last: dict[str, str]) -> None:
    assert {who: r.state for who, r in latest_reviews(reviews).items()} == last


@pytest.mark.parametrize(
    ("roles", "besides", "names"),
    [
        (("devops-engineer",), "", ("dev", "sam")),
        (("devops-engineer",), "sam", ("dev",)),  # the author is never a reviewer of their own
        (("data-engineer", "application-developer"), "", ("alan", "eve")),
        (("*",), "ada", ("alan", "dev", "eve", "nemo", "sam")),
        ((), "", ()),
    ],
)
def test_holders(roles: tuple[str, ...], besides: str, names: tuple[str, ...]) -> None:
    assert holders(DEFAULTS, roles, besides=besides) == names
