"""Every cell of the default policy (the seed's actor table), through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PEOPLE, ModelFiles, Run

ROLE_OF = {role: person for person, role in PEOPLE.items()}
ALLOWED = {
    "create": {"data-scientist", "application-developer"},
    "update": {"data-engineer", "devops-engineer", "application-developer"},
    "deploy": {"devops-engineer", "application-developer", "data-engineer"},
    "destroy": {"data-engineer", "application-developer"},
}
ROLES = sorted(ROLE_OF)


def _argv(verb: str, files: ModelFiles) -> list[str]:
    return {
        "create": ["create", "other", "--app", "payments", "--dataset", "transactions", "--artifact", str(files.onnx)],
        "update": ["update", "fraud", "--SLA", "accuracy>=0.8"],
        "deploy": ["deploy", "fraud", "--env", "dev"],
        "destroy": ["destroy", "fraud", "--with-apps"],
    }[verb]


@pytest.mark.parametrize("verb", sorted(ALLOWED))
def test_proposal_verbs(aimodel: Run, created: str, model_files: ModelFiles, verb: str) -> None:
    for role in ROLES:
        person = ROLE_OF[role]
        result = aimodel(*_argv(verb, model_files), "--as", person, "--json", expect=None)
        if role in ALLOWED[verb]:
            assert result.code == 0, f"{role} should be allowed to {verb}: {result.text}"
            aimodel("pr", "close", str(result.json["pr"]), "--as", person)  # release the lock for the next cell
        else:
            assert result.code == 1, f"{role} must not {verb}: {result.text}"
            assert result.err.startswith(f"Refused: {verb} is for "), result.err
    stranger = aimodel(*_argv(verb, model_files), "--as", "mallory", expect=1)
    assert "mallory is not listed under people" in stranger.err
    assert aimodel("pr", "list", "--json").json == []


@pytest.mark.parametrize("verb", ["list", "scan", "validate", "verify", "sign"])
def test_read_verbs_are_for_anyone_known(aimodel: Run, created: str, tmp_path: Path, verb: str) -> None:
    argv = {"list": ["list"], "scan": ["scan", "fraud"], "validate": ["validate", "fraud"],
            "verify": ["verify", "fraud"], "sign": ["sign", "fraud", "--json"]}[verb]
    for person in PEOPLE:
        result = aimodel(*argv, "--as", person, expect=None)
        assert result.code == 0, f"{person} {verb}: {result.text}"
    stranger = aimodel(*argv, "--as", "mallory", expect=1)
    assert "mallory is not listed under people" in stranger.err
