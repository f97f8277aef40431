"""Secrets given through ${ENV} never show: not in validate output, repr, JSON dumps or error text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.config import load_config
from crmbridge.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "crmbridge.yaml"

SECRETS = {
    "CRMBRIDGE_DYNAMICS_CLIENT_SECRET": "Dyn~Secret.Value-7f3a9c",
    "CRMBRIDGE_CAMPAIGN_CLIENT_SECRET": "p8e-AcsSecretValue-41d2",
    "CRMBRIDGE_DASHBOARD_TOKEN": "dash-Token-Value-0b6e",
    "CRMBRIDGE_SFTP_KEY_PASSPHRASE": "sftp-Passphrase-93ac",
}


def broken_copy(tmp_path: Path) -> Path:
    """The example with a mistake next to each secret, so every section with a secret has a problem to report."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('  api_version: "9.2"\n', '  api_version: "9.2"\n  client_secret_typo: 1\n')
    text = text.replace("  port: 8321\n", "  port: 99999\n")
    text = text.replace("      private_key: /etc/crmbridge/sftp_ed25519\n", "")  # password and key both missing
    path = tmp_path / "crmbridge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_secret_in(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


def test_secrets_are_hidden_in_repr_and_json_dumps() -> None:
    config = load_config(EXAMPLE, environ=SECRETS)
    assert_no_secret_in(repr(config))
    assert_no_secret_in(str(config))
    assert_no_secret_in(config.model_dump_json())
    assert_no_secret_in(repr(config.model_dump()))


def test_secrets_are_absent_from_the_config_error_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(broken_copy(tmp_path), environ=SECRETS)
    assert len(caught.value.problems) == 3
    assert_no_secret_in(str(caught.value))
    assert_no_secret_in(repr(caught.value.problems))


def test_validate_output_never_shows_secrets_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(EXAMPLE)])
    broken = runner.invoke(app, ["config", "validate", str(broken_copy(tmp_path))])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK: 2 mappings")
    assert broken.exit_code == 1
    assert ": service.port: Input should be less than or equal to 65535\n" in broken.output
    assert_no_secret_in(ok.output + broken.output)


def test_validate_output_never_shows_secrets_in_a_subprocess(tmp_path: Path) -> None:
    # One process (each start costs seconds on a shared machine): the broken file prints the most.
    result = subprocess.run(
        [sys.executable, "-m", "crmbridge", "config", "validate", str(broken_copy(tmp_path))],
        capture_output=True,
        text=True,
        env={**os.environ, **SECRETS},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.endswith("crmbridge.yaml: 3 problems\n")
    assert_no_secret_in(result.stdout + result.stderr)
