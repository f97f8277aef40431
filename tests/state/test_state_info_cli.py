"""``crmbridge state info`` shows, per flow, what the store holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.state import (
    Batch,
    ConflictRecord,
    DeadLetter,
    Flow,
    LedgerEntry,
    LinkRow,
    ParkedChild,
    RunStatus,
    StateStore,
    UnmatchedEvent,
)
from crmbridge.state.report import describe_age

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
runner = CliRunner()


def _fill(store: StateStore) -> None:
    tables = Batch(Flow.TABLES, "vehicles")
    tables.upsert_links(LinkRow("vehicles", f"v-{n}", f"VEH-{n}", "h", T0) for n in range(7))
    tables.mark_deleted("vehicles", ["v-0", "v-1"], T0)
    tables.park(ParkedChild("vehicles", "v-9", "contacts", "c-9", {}, T0, T0))
    tables.dead_letter(DeadLetter(Flow.TABLES, "vehicles", "v-8", None, "RecordError", "RST-360011", T0))
    tables.advance_in_flight("https://org.example/api/data/v9.2/new_vehicles?$skiptoken=2")
    store.commit(tables)
    store.finish_run(store.start_run(Flow.TABLES, "vehicles"), RunStatus.FAILED, error="boom")

    events = Batch(Flow.EVENTS, "journal")
    events.record_events(
        LedgerEntry(f"k{n}", f"s{n}", "c-1", "open", T0, f"a{n}", T0 + timedelta(seconds=n)) for n in range(3)
    )
    events.keep_unmatched(UnmatchedEvent("k-x", None, None, None, "no externalId", T0))
    events.advance_to("journal-position-17")
    store.commit(events)

    optouts = Batch(Flow.OPTOUTS, "donotbulkemail:blackListEmail")
    optouts.log_conflict(
        ConflictRecord(T0, "c-1", "donotbulkemail:blackListEmail", True, T0, False, T0, "campaign", "newer-acs", False)
    )
    store.commit(optouts)


def test_state_info_prints_a_table_per_flow_with_its_counts(state_url: str) -> None:
    with StateStore.open(state_url) as store:
        _fill(store)

    result = runner.invoke(app, ["state", "info", "--state", state_url], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    vehicles = next(line for line in lines if "vehicles" in line)
    assert [cell.strip() for cell in vehicles.split("│")[1:-1]][2:6] == ["5", "2", "1", "1"]
    assert "(page in flight)" in vehicles
    assert "failed" in vehicles
    assert "ledger: 3 events, 1 unmatched" in result.output
    journal = next(line for line in lines if "journal" in line and "│" in line)
    assert "never" in journal  # checkpoint exists, no run recorded
    pair = next(line for line in lines if "donotbulkemail:blackListEmail" in line)
    assert [cell.strip() for cell in pair.split("│")[1:-1]][2] == "1"


def test_state_info_on_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "state.db"
    result = runner.invoke(app, ["state", "info", "--state", f"sqlite:///{path}"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "no state store at" in result.output
    assert not path.exists()


def test_state_info_help_names_the_default_url() -> None:
    result = runner.invoke(app, ["state", "info", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "sqlite:///.crmbridge/state.db" in result.output


def test_ages_read_like_a_person_would_say_them() -> None:
    now = T0 + timedelta(days=2, hours=3, minutes=4)
    assert describe_age(None, now) == "never"
    assert describe_age(now - timedelta(seconds=5), now) == "5s ago"
    assert describe_age(now - timedelta(minutes=3, seconds=12), now) == "3m 12s ago"
    assert describe_age(now - timedelta(hours=5, minutes=1), now) == "5h 1m ago"
    assert describe_age(T0, now) == "2d 3h ago"
