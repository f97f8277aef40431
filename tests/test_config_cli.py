"""`crmbridge config validate`: its summary, its problem lines and its exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.config import load_config, parse_config
from crmbridge.exceptions import ConfigError
from crmbridge.redaction import redact

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "crmbridge.yaml"
ENV = {
    "CRMBRIDGE_DYNAMICS_CLIENT_SECRET": "cli-dynamics-secret",
    "CRMBRIDGE_CAMPAIGN_CLIENT_SECRET": "cli-campaign-secret",
    "CRMBRIDGE_DASHBOARD_TOKEN": "cli-dashboard-token",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("env")
def test_valid_file_prints_a_one_line_summary_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(EXAMPLE)])
    assert result.exit_code == 0
    assert result.output == (
        "OK: 2 mappings: contacts (contact → profileAndServicesExt), vehicles (new_vehicle → cusVehicle); "
        "events from the journal; opt-outs bidirectional (2 pairs); state sqlite\n"
    )


@pytest.mark.usefixtures("env")
def test_invalid_file_prints_file_line_path_message_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("page_size: 5000", "page_size: 0"), encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f"{path}:16: dynamics.page_size: Input should be greater than or equal to 1\n{path}: 1 problem\n"
    )


def test_yaml_syntax_error_exits_2_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\ndynamics:\n  org_url: 'unterminated\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"{path}:4: (top level): YAML syntax error: ")


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert (
        result.output == f"{tmp_path / 'missing.yaml'}: (top level): cannot read the file: No such file or directory\n"
    )


def test_every_command_of_the_config_group_has_help() -> None:
    for command in ("validate", "schema"):
        result = CliRunner().invoke(app, ["config", command, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output
    assert "JSON Schema" in CliRunner().invoke(app, ["config", "schema", "--help"]).output


def test_loaded_secrets_are_registered_for_redaction() -> None:
    load_config(EXAMPLE, environ={**ENV, "CRMBRIDGE_SFTP_KEY_PASSPHRASE": "registered-passphrase"})
    line = "token cli-dashboard-token, secret cli-campaign-secret, key registered-passphrase"
    assert redact(line) == "token ***, secret ***, key ***"


def test_a_password_inside_the_state_url_is_registered_for_redaction() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "${CRMBRIDGE_STATE_URL:-sqlite:///.crmbridge/state.db}", "postgresql+psycopg://sync:pg-Pass-w0rd@db/crmbridge"
    )
    config = parse_config(text, environ=ENV)
    assert config.state.url.startswith("postgresql+psycopg://")
    assert redact("connect failed: postgresql+psycopg://sync:pg-Pass-w0rd@db") == (
        "connect failed: postgresql+psycopg://sync:***@db"
    )


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        parse_config("\n".join(lines) + "\n", environ={})
