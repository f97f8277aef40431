"""`crmbridge optouts history CONTACT`: every opt-out write crmbridge made for a contact, and its conflicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.state import Batch, ConflictRecord, Flow, OptOutWrite, StateStore

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_history_lists_the_contacts_writes_and_conflicts_and_nothing_of_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with StateStore.open(url) as store:
        batch = Batch(Flow.OPTOUTS, "dynamics")
        batch.log_optout_write(
            OptOutWrite(
                AT, "c1", "donotbulkemail:blackListEmail", "campaign", False, True, "Dynamics opted out", "adobe"
            )
        )
        batch.log_optout_write(
            OptOutWrite(AT, "c2", "donotbulkemail:blackListEmail", "dynamics", False, True, "other contact", "adobe")
        )
        batch.log_conflict(
            ConflictRecord(AT, "c1", "donotbulkemail:blackListEmail", True, AT, False, None, "dynamics", "adobe", True)
        )
        store.commit(batch)
    result = CliRunner().invoke(app, ["optouts", "history", "c1", "--state", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Dynamics opted out" in result.output
    assert "other contact" not in result.output
    assert "Conflicts for contact c1" in result.output
    assert "no timestamp" in result.output  # the Campaign side had no per-flag timestamp
    missing = CliRunner().invoke(app, ["optouts", "history", "c9", "--state", url])
    assert missing.exit_code == 1
    assert "no opt-out change" in missing.output
