"""`signing.serialization` in the repository config: how the bot's signatures hash."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from bot.init_repo import TEMPLATE
from bot.manifests import ManifestError, parse_config

TEMPLATE_TEXT = (TEMPLATE / ".aimodel" / "config.yaml").read_text()
SCHEMA = json.loads((TEMPLATE / "schemas" / "config.schema.json").read_text())


def test_the_template_signs_the_fastest_way() -> None:
    assert parse_config(TEMPLATE_TEXT).sign_serialization == "auto"


@pytest.mark.parametrize("value", ["files", "shards", "auto"])
def test_a_team_chooses_how_signatures_hash(value: str) -> None:
    text = TEMPLATE_TEXT.replace("serialization: auto", f"serialization: {value}")
    assert parse_config(text).sign_serialization == value
    jsonschema.validate(yaml.safe_load(text), SCHEMA)


def test_an_unknown_serialization_names_the_line_and_the_choices() -> None:
    text = TEMPLATE_TEXT.replace("serialization: auto", "serialization: blocks")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "serialization: blocks" in row)
    with pytest.raises(ManifestError) as err:
        parse_config(text)
    message = str(err.value)
    assert f":{line}:" in message and "signing.serialization" in message
    assert "auto, files, shards" in message
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), SCHEMA)
