"""``crmbridge state purge`` forgets personal data older than the retention, and nothing younger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.state import Batch, DeadLetter, DeadLetterStatus, Flow, StateStore, UnmatchedEvent

runner = CliRunner()
PAYLOAD = {"email": "zoë.o'brien+news@example.com"}


def _fill(store: StateStore, now: datetime) -> None:
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    batch = Batch(Flow.TABLES, "contacts")
    for key, at in (("old-open", old), ("old-dropped", old), ("recent-open", recent)):
        batch.dead_letter(DeadLetter(Flow.TABLES, "contacts", key, PAYLOAD, "RecordError", "RST-360011", at))
    batch.keep_unmatched(UnmatchedEvent("ev-old", None, PAYLOAD["email"], {"x": 1}, "no externalId", old))
    batch.keep_unmatched(UnmatchedEvent("ev-recent", None, PAYLOAD["email"], {"x": 1}, "no externalId", recent))
    store.commit(batch)
    dropped = [d.id for d in store.dead_letters.list() if d.record_key == "old-dropped" and d.id is not None]
    store.dead_letters.mark(dropped, DeadLetterStatus.DROPPED)


def test_state_purge_forgets_payloads_older_than_the_given_days(state_url: str) -> None:
    with StateStore.open(state_url) as store:
        _fill(store, datetime.now(UTC))

    result = runner.invoke(app, ["state", "purge", "--older-than", "30", "--state", state_url], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "1 dropped or resolved dead letters deleted" in result.output
    assert "1 dead-letter payloads cleared" in result.output
    assert "1 unmatched events deleted" in result.output
    with StateStore.open(state_url) as store:
        remaining = {d.record_key: d.payload for d in store.dead_letters.list(status=None)}
        assert remaining == {"old-open": None, "recent-open": PAYLOAD}
        assert store.info().unmatched_events == 1


def test_state_purge_with_a_longer_retention_keeps_everything(state_url: str) -> None:
    with StateStore.open(state_url) as store:
        _fill(store, datetime.now(UTC))

    result = runner.invoke(app, ["state", "purge", "--older-than", "60", "--state", state_url], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "0 dropped or resolved dead letters deleted" in result.output
    with StateStore.open(state_url) as store:
        assert len(store.dead_letters.list(status=None)) == 3
        assert all(d.payload == PAYLOAD for d in store.dead_letters.list(status=None))


def test_state_purge_on_a_missing_store_says_so_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "state.db"
    result = runner.invoke(app, ["state", "purge", "--state", f"sqlite:///{path}"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "no state store at" in result.output
    assert not path.exists()


def test_state_purge_refuses_zero_days() -> None:
    result = runner.invoke(app, ["state", "purge", "--older-than", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
