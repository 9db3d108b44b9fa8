"""The rules for changing the rules, and who may merge where: pure functions on plain data."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from bot.init_repo import TEMPLATE
from bot.manifests import ManifestError, Person, RepoConfig, parse_config
from bot.policy import Review, approval_status, merge_decision, policy_paths

TEMPLATE_TEXT = (TEMPLATE / ".aimodel" / "config.yaml").read_text()
PEOPLE = """
people:
  ada: {roles: [data-scientist]}
  alan: {roles: [application-developer]}
  eve: {roles: [data-engineer]}
  dev: {roles: [devops-engineer]}
  ops: {roles: [devops-engineer]}
"""
BASE = parse_config(TEMPLATE_TEXT.replace("people: {}\n", PEOPLE))


def _approved(*names: str) -> list[Review]:
    return [Review(name, "approved") for name in names]


# --------------------------------------------------------------------------- what is policy

@pytest.mark.parametrize(
    ("path", "policy"),
    [
        (".aimodel/config.yaml", True),
        (".aimodel/keys/aimodel-bot.pub", True),
        (".aimodel/scan-allow.txt", True),
        ("CODEOWNERS", True),
        ("docs/CODEOWNERS", True),
        (".github/CODEOWNERS", True),
        (".github/workflows/ci.yml", True),
        ("schemas/config.schema.json", True),
        (".AIMODEL/config.yaml", True),  # a case-insensitive file system reads it as the config
        ("codeowners", True),
        (".aimodel", True),  # a file or a submodule in the folder's place
        ("schemas", True),
        ("models/fraud/model.yaml", False),
        ("models/fraud/model.sig", False),
        ("apps/payments.yaml", False),
        ("datasets/tx.yaml", False),
        ("README.md", False),
        ("models/.aimodel/config.yaml", False),  # only at the top of the repository
        ("aimodel/config.yaml", False),
    ],
)
def test_policy_paths(path: str, policy: bool) -> None:
    assert policy_paths([path, "models/x/model.yaml"]) == ((path,) if policy else ())


# --------------------------------------------------------------------------- approvals

CASES = [
    # (what, changed paths, environments, reviews, author, met, missing contains)
    ("a config change with no review", [".aimodel/config.yaml"], [], [], "ada", False,
     "policy change (.aimodel/config.yaml) needs 1 approval(s) from DevOps Engineer, not its author; has 0 (can approve: dev, ops)"),
    ("approved by an Application Developer only", [".aimodel/config.yaml"], [], _approved("alan"), "ada", False, "has 0"),
    ("approved by a Data Scientist only", ["schemas/aimodel.schema.json"], [], _approved("eve", "alan"), "ada", False, "has 0"),
    ("approved by a DevOps Engineer", [".aimodel/config.yaml"], [], _approved("dev"), "ada", True, ""),
    ("the author's own approval never counts", [".aimodel/keys/k.pub"], [], _approved("dev"), "dev", False,
     "(can approve: ops)"),
    ("a DevOps author needs another DevOps", ["CODEOWNERS"], [], _approved("dev", "ops"), "dev", True, ""),
    ("an approval withdrawn by a later change request", [".aimodel/config.yaml"], [],
     [Review("dev", "approved"), Review("dev", "changes_requested")], "ada", False, "dev requested changes"),
    ("a stranger's approval", [".aimodel/config.yaml"], [], _approved("mallory"), "ada", False, "has 0"),
    ("a model change needs no policy owner", ["models/fraud/model.yaml"], [], [], "ada", True, ""),
    ("prod and policy: both are needed", [".aimodel/config.yaml", "models/fraud/model.yaml"], ["prod"], _approved("alan"), "ada", False,
     "prod needs 1 approval(s) from DevOps Engineer; has 0"),
    ("prod and policy: one DevOps covers both", [".aimodel/config.yaml", "models/fraud/model.yaml"], ["prod"], _approved("dev"), "ada", True, ""),
]


@pytest.mark.parametrize(("what", "changed", "envs", "reviews", "author", "met", "missing"), CASES, ids=[c[0] for c in CASES])
def test_approval_status(what: str, changed: list[str], envs: list[str], reviews: list[Review], author: str, met: bool, missing: str) -> None:
    status = approval_status(BASE, envs, reviews, author, changed_paths=changed, head="")
    assert status.met is met, status.missing
    if missing:
        assert any(missing in line for line in status.missing), status.missing
    else:
        assert status.missing == ()


def test_the_base_config_judges_not_the_one_the_pull_request_brings() -> None:
    # The PR would make Data Scientists policy owners; judged by the base, ada's colleague's
    # approval (a Data Scientist) does not count.
    lowered = parse_config(TEMPLATE_TEXT.replace("people: {}\n", PEOPLE + "  dora: {roles: [data-scientist]}\n")
                           .replace("  owners: [devops-engineer]", "  owners: [data-scientist]"))
    base = parse_config(TEMPLATE_TEXT.replace("people: {}\n", PEOPLE + "  dora: {roles: [data-scientist]}\n"))
    reviews = _approved("dora")
    assert approval_status(lowered, [], reviews, "ada", changed_paths=[".aimodel/config.yaml"], head="").met  # what she hoped
    assert not approval_status(base, [], reviews, "ada", changed_paths=[".aimodel/config.yaml"], head="").met


def test_nobody_to_approve_says_so() -> None:
    alone = parse_config(TEMPLATE_TEXT.replace("people: {}\n", "people:\n  ada: {roles: [data-scientist]}\n"))
    status = approval_status(alone, [], [], "ada", changed_paths=["CODEOWNERS"], head="")
    assert "can approve: nobody listed in .aimodel/config.yaml holds that role" in status.missing[0]


# --------------------------------------------------------------------------- merging

MERGES = [
    # (who, environments, changed, allowed, reason contains)
    ("ada", [], ["models/fraud/model.yaml"], True, ""),  # registering runs nothing anywhere
    ("ada", ["dev"], ["models/fraud/model.yaml"], False, "merging #7 (changes dev) is for DevOps Engineer or Application Developer or Data Engineer: alan, dev, eve, ops; ada is Data Scientist"),
    ("eve", ["dev"], ["models/fraud/model.yaml"], True, ""),
    ("alan", ["test"], ["models/fraud/model.yaml"], True, ""),
    ("ada", ["prod"], ["models/fraud/model.yaml"], False, "merging #7 (changes prod) is for DevOps Engineer: dev, ops; ada is Data Scientist"),
    ("alan", ["prod"], ["models/fraud/model.yaml"], False, "(changes prod) is for DevOps Engineer: dev, ops; alan is Application Developer"),
    ("eve", ["dev", "prod"], [], False, "(changes prod)"),
    ("dev", ["dev", "prod"], [], True, ""),
    ("ada", [], [".aimodel/config.yaml"], False, "merging #7 (changes the rules: .aimodel/config.yaml) is for DevOps Engineer: dev, ops; ada is Data Scientist"),
    ("alan", [], ["CODEOWNERS", "schemas/a.json", ".aimodel/keys/k.pub", ".github/x"], False,
     "(changes the rules: .aimodel/keys/k.pub, .github/x, CODEOWNERS and 1 more)"),
    ("ops", [], [".aimodel/config.yaml"], True, ""),
    ("mallory", [], [], False, "mallory is not listed under people"),
]


@pytest.mark.parametrize(("who", "envs", "changed", "allowed", "reason"), MERGES)
def test_merge_decision(who: str, envs: list[str], changed: list[str], allowed: bool, reason: str) -> None:
    decision = merge_decision(BASE, BASE.people.get(who), who, 7, environments=envs, changed_paths=changed)
    assert decision.allowed is allowed, decision.reason
    assert reason in decision.reason


def test_mergers_default_to_the_roles_that_may_deploy() -> None:
    config = parse_config("people:\n  ada: {roles: [data-scientist]}\n  eve: {roles: [data-engineer]}\n"
                          "permissions:\n  deploy: [data-engineer]\nenvironments:\n  prod: {approvals: 0}\n")
    ada, eve = config.people["ada"], config.people["eve"]
    assert not merge_decision(config, ada, "ada", 1, environments=["prod"], changed_paths=[]).allowed
    assert merge_decision(config, eve, "eve", 1, environments=["prod"], changed_paths=[]).allowed
    # with no `policy:` block, the rules are changed by DevOps only: the strict default
    assert config.policy.owners == ("devops-engineer",) and config.policy.approvals == 1
    assert not merge_decision(config, eve, "eve", 1, environments=[], changed_paths=[".aimodel/config.yaml"]).allowed


def test_a_star_lets_anyone_listed_merge() -> None:
    config = parse_config("people:\n  ada: {roles: [data-scientist]}\nenvironments:\n  dev: {mergers: ['*']}\n")
    assert merge_decision(config, config.people["ada"], "ada", 1, environments=["dev"], changed_paths=[]).allowed
    nobody = RepoConfig(people={"x": Person("x", ())}, permissions={}, environments={})
    assert "x is no role" in merge_decision(nobody, nobody.people["x"], "x", 1, environments=["dev"], changed_paths=[]).reason


# --------------------------------------------------------------------------- parsing the rules

@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("policy:\n  approvals: 0\n", "policy.approvals: a policy change needs at least 1 approval"),
        ("policy:\n  owners: []\n", "policy.owners: a policy change needs approvers"),
        ("policy:\n  owners: [root]\n", "policy.owners[0]: 'root' is not a role"),
        ("policy:\n  mergers: []\n", "policy.mergers: name the roles that may merge"),
        ("policy:\n  reviewers: [devops-engineer]\n", "policy.reviewers: unknown field"),
        ("environments:\n  prod:\n    mergers: [boss]\n", "environments.prod.mergers[0]: 'boss' is not a role"),
        ("environments:\n  prod:\n    mergers: []\n", "environments.prod.mergers: name the roles"),
    ],
)
def test_bad_rules_are_refused_with_the_field(snippet: str, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_config(snippet)
    assert message in str(err.value)


def test_the_template_rules() -> None:
    config = parse_config(TEMPLATE_TEXT)
    assert (config.policy.owners, config.policy.approvals, config.policy.mergers) == (("devops-engineer",), 1, ("devops-engineer",))
    assert config.environments["prod"].mergers == ("devops-engineer",)
    assert config.environments["dev"].mergers == config.environments["test"].mergers == ("devops-engineer", "application-developer", "data-engineer")


def test_a_policy_approval_counts_for_the_commit_it_was_given_on() -> None:
    changed = [".aimodel/config.yaml"]
    on_head = approval_status(BASE, [], [Review("dev", "approved", "c2")], "ada", changed_paths=changed, head="c2")
    assert on_head.met and on_head.policy_have == ("dev",)
    pushed_after = approval_status(BASE, [], [Review("dev", "approved", "c1")], "ada", changed_paths=changed, head="c2")
    assert not pushed_after.met
    assert pushed_after.missing == (
        "policy change (.aimodel/config.yaml) needs 1 approval(s) from DevOps Engineer, not its author; "
        "has 0 (can approve: dev, ops); dev approved an earlier commit: approve again",
    )
    # an environment's approvals are not bound to the commit (as before; GitHub's branch protection can dismiss them)
    prod = approval_status(BASE, ["prod"], [Review("dev", "approved", "c1")], "ada", changed_paths=["models/f/model.yaml"], head="c2")
    assert prod.met


@pytest.mark.parametrize("snippet", ["policy:\n  approvals: 0\n", "policy:\n  owners: []\n", "environments:\n  prod:\n    mergers: [boss]\n"])
def test_the_schema_refuses_what_the_parser_refuses(snippet: str) -> None:
    schema = json.loads((TEMPLATE / "schemas" / "config.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(TEMPLATE_TEXT), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(snippet), schema)
    with pytest.raises(ManifestError):
        parse_config(snippet)
