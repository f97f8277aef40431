"""`crmbridge emulate campaign --help` documents every option (STYLE: every CLI command has help text), and
docs/emulator-campaign.md lists every one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from crmbridge.cli import app


def test_every_campaign_emulator_option_has_help_text() -> None:
    root: Any = typer.main.get_command(app)
    campaign = root.commands["emulate"].commands["campaign"]
    options = [p for p in campaign.params if p.param_type_name == "option"]
    names = {name for option in options for name in option.opts}
    for expected in ("--port", "--db", "--host", "--seed", "--latency-ms", "--rate-limit", "--faults",
                     "--big-table-threshold", "--no-flag-timestamps", "--pkey-salt", "--clients",
                     "--journal-consumer-org", "--journal-credential-id", "--journal-registration-id",
                     "--journal-client-id", "--journal-ims-org", "--journal-duplicates", "--journal-reorder",
                     "--journal-delay", "--journal-pump-interval", "--exports", "--export-interval", "--sftp-port",
                     "--sftp-user", "--sftp-password"):  # fmt: skip
        assert expected in names
    assert all(option.help for option in options)
    result = CliRunner().invoke(app, ["emulate", "campaign", "--help"])
    assert result.exit_code == 0
    assert "--big-table-threshold" in result.output
    documented = (Path(__file__).parents[3] / "docs" / "emulator-campaign.md").read_text(encoding="utf-8")
    assert not [name for name in names if name.startswith("--") and name != "--help" and f"`{name}" not in documented]
