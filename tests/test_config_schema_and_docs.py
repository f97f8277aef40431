"""`crmbridge config schema` and docs/configuration.md describe exactly the models."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.config import CrmbridgeConfig
from crmbridge.config.reference import BEGIN_MARKER, END_MARKER, render_reference, sections

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "configuration.md"


def test_config_schema_prints_json_schema_with_every_top_level_key() -> None:
    result = CliRunner().invoke(app, ["config", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == [
        "version",
        "dynamics",
        "campaign",
        "mappings",
        "events",
        "optouts",
        "state",
        "service",
    ]
    assert schema["required"] == ["version", "dynamics", "campaign"]


def test_schema_marks_secrets_write_only_and_durations_as_patterned_strings() -> None:
    schema = CrmbridgeConfig.model_json_schema()
    secret = schema["$defs"]["CampaignSettings"]["properties"]["client_secret"]
    assert secret["writeOnly"] is True
    interval = schema["$defs"]["ServiceSettings"]["properties"]["interval"]
    assert interval["type"] == "string"
    assert re.match(interval["pattern"], "30s")
    assert re.match(interval["pattern"], "P2D")
    assert not re.match(interval["pattern"], "30")


def test_docs_reference_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    generated = text[text.index(BEGIN_MARKER) : text.index(END_MARKER) + len(END_MARKER)] + "\n"
    assert generated == render_reference(), "run: python -m crmbridge.config.reference and paste it into the docs"


def test_docs_mention_every_section_and_every_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    paths = [path for path, _ in sections()]
    assert {"dynamics", "campaign", "mappings[]", "mappings[].fields[]", "events.source.journal", "optouts"} <= set(
        paths
    )
    for path, model in sections():
        assert f"### `{path}`" in text, path
        section = text.split(f"### `{path}`", 1)[1].split("### ", 1)[0]
        for key in model.model_fields:
            assert f"| `{key}` |" in section, f"{path}.{key} is not documented"
