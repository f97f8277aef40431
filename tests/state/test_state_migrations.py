"""Migrations build exactly the metadata, apply on open from any directory, and opening twice changes nothing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crmbridge.exceptions import ConfigError
from crmbridge.state import Batch, Flow, StateStore
from crmbridge.state.database import normalize_url
from crmbridge.state.schema import METADATA


def _not_alembic_bookkeeping(name: str | None, kind: str, _parent: object) -> bool:
    return not (kind == "table" and name == "alembic_version")


def test_migrated_schema_equals_the_metadata(state_url: str) -> None:
    StateStore.open(state_url).close()
    engine = sa.create_engine(normalize_url(state_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _not_alembic_bookkeeping}
            )
            assert compare_metadata(context, METADATA) == []
    finally:
        engine.dispose()


def test_opening_twice_keeps_the_data_and_the_revision(state_url: str) -> None:
    with StateStore.open(state_url) as store:
        batch = Batch(Flow.EVENTS, "journal")
        batch.advance_to("position-42")
        store.commit(batch)
    with StateStore.open(state_url) as store:
        checkpoint = store.checkpoint(Flow.EVENTS, "journal")
        assert checkpoint is not None
        assert checkpoint.value == "position-42"
        assert store.info().schema_revision == "0002"


def test_migrations_do_not_depend_on_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with StateStore.open("sqlite:///relative/dir/state.db") as store:
        assert store.info().schema_revision == "0002"
    assert (tmp_path / "relative" / "dir" / "state.db").is_file()


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db.example:5432/crm", "postgresql+psycopg"),
        ("postgres://u@db.example/crm", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/crm", "postgresql+psycopg"),
        ("sqlite:///state.db", "sqlite+pysqlite"),
    ],
)
def test_state_urls_are_normalised_to_the_supported_drivers(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql+asyncpg://u@db/crm", "driver"),
        ("mysql://u@db/crm", "use sqlite"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_state_urls_are_config_errors(given: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        normalize_url(given)


def test_unmatched_events_kept_before_0002_get_one_retry_when_they_name_a_contact(tmp_path: Path) -> None:
    from alembic import command

    from crmbridge.state.database import Database, _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = Database(normalize_url(url))
    with database.writing() as connection:
        command.upgrade(_alembic_config(connection), "0001")
        for key, contact in (("with-contact", "c-1"), ("without", None)):
            connection.execute(
                sa.text(
                    "INSERT INTO unmatched_events (event_key, external_id, reason, first_seen, last_seen, attempts) "
                    "VALUES (:key, :contact, 'no contact', '2026-03-01 09:00:00', '2026-03-02 09:00:00', 1)"
                ),
                {"key": key, "contact": contact},
            )
    database.dispose()
    with StateStore.open(url) as store:
        due = store.unmatched_due(datetime(2026, 3, 3, tzinfo=UTC))
    assert [(row.event_key, row.next_try_at) for row in due] == [
        ("with-contact", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    ]
