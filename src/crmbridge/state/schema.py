"""The state store's tables as SQLAlchemy Core metadata: the one description both backends and Alembic share.

Roles are those of ARCHITECTURE.md ("State store"). Migrations in ``migrations/versions`` create exactly this
schema; a test compares the migrated database with this metadata on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["METADATA", "UtcDateTime"]

# Deterministic constraint names, so migrations and metadata agree on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends (SQLite stores naive text, so UTC is restored on read)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state timestamps must be timezone-aware")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


METADATA = sa.MetaData(naming_convention=NAMING_CONVENTION)


checkpoints = sa.Table(
    "checkpoints",
    METADATA,
    sa.Column("flow", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),  # mapping name, journal id, opt-out pair, ...
    sa.Column("value", sa.Text, nullable=True),  # delta link / journal position / "file#Lline" / watermark
    sa.Column("in_flight", sa.Text, nullable=True),  # nextLink of a read in progress (sub-checkpoint)
    sa.Column("config_fingerprint", sa.String(128), nullable=True),  # binds the value to the $select it was made with
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

links = sa.Table(
    "links",
    METADATA,
    sa.Column("mapping", sa.String(200), primary_key=True),
    sa.Column("source_id", sa.String(200), primary_key=True),
    sa.Column("target_key", sa.String(400), nullable=False),  # business key in ACS, never a PKey
    sa.Column("values_hash", sa.String(128), nullable=False),
    sa.Column("parent_keys", sa.JSON(none_as_null=True), nullable=True),  # {"link name": "parent business key"}
    sa.Column("synced_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    # Only deleted rows are indexed (cheap to keep): children of recently deleted parents are found through it.
    sa.Index(
        None,
        "mapping",
        "deleted_at",
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    ),
)

pending = sa.Table(
    "pending",
    METADATA,
    sa.Column("mapping", sa.String(200), primary_key=True),
    sa.Column("source_id", sa.String(200), primary_key=True),
    sa.Column("parent_mapping", sa.String(200), nullable=False),
    sa.Column("parent_id", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("parked_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_try_at", UtcDateTime, nullable=False),
    sa.Index(None, "parent_mapping", "parent_id"),
    sa.Index(None, "next_try_at"),
)

optouts = sa.Table(
    "optouts",
    METADATA,
    sa.Column("contact_id", sa.String(200), primary_key=True),
    sa.Column("pair", sa.String(200), primary_key=True),  # e.g. "donotbulkemail:blackListEmail"
    sa.Column("base_value", sa.Boolean, nullable=True),  # last value both sides agreed on
    sa.Column("dynamics_value", sa.Boolean, nullable=True),
    sa.Column("dynamics_seen_at", UtcDateTime, nullable=True),
    sa.Column("campaign_value", sa.Boolean, nullable=True),
    sa.Column("campaign_seen_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

optout_log = sa.Table(
    "optout_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("contact_id", sa.String(200), nullable=False),
    sa.Column("pair", sa.String(200), nullable=False),
    sa.Column("side_written", sa.String(16), nullable=False),
    sa.Column("old_value", sa.Boolean, nullable=True),
    sa.Column("new_value", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("rule", sa.String(64), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Index(None, "contact_id", "pair"),
)

conflicts = sa.Table(
    "conflicts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("contact_id", sa.String(200), nullable=False),
    sa.Column("pair", sa.String(200), nullable=False),
    sa.Column("dynamics_value", sa.Boolean, nullable=False),
    sa.Column("dynamics_changed_at", UtcDateTime, nullable=True),
    sa.Column("campaign_value", sa.Boolean, nullable=False),
    sa.Column("campaign_changed_at", UtcDateTime, nullable=True),
    sa.Column("winner", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("resolved_value", sa.Boolean, nullable=False),
    sa.Index(None, "at"),
)

event_ledger = sa.Table(
    "event_ledger",
    METADATA,
    sa.Column("event_key", sa.String(80), primary_key=True),
    sa.Column("source_key", sa.String(80), nullable=False),
    sa.Column("contact_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("bounce_type", sa.String(16), nullable=True),  # "hard" sets the roll-up's hard-bounce flag
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("activity_id", sa.String(36), nullable=False),
    sa.Column("written_at", UtcDateTime, nullable=False),
    sa.Index(None, "source_key"),
    sa.Index(None, "contact_id", "event_type"),
)

unmatched_events = sa.Table(
    "unmatched_events",
    METADATA,
    sa.Column("event_key", sa.String(80), primary_key=True),
    sa.Column("external_id", sa.String(200), nullable=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),  # nulled by purge_personal_data
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen", UtcDateTime, nullable=False),
    sa.Column("last_seen", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_try_at", UtcDateTime, nullable=True),  # None: not retried (no contact id, or retried long enough)
    sa.Index(None, "last_seen"),
    sa.Index(None, "next_try_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("record_key", sa.String(400), nullable=False),
    sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),  # nulled by purge_personal_data
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_failed_at", UtcDateTime, nullable=False),
    sa.Column("last_failed_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=True),  # when it was resolved or dropped; None while open
    sa.Column("close_reason", sa.Text, nullable=True),  # why: "written by a later pass", "dropped by an operator"
    # one row per failing record: a record that fails again updates its row instead of piling up
    sa.UniqueConstraint("flow", "mapping", "record_key"),
    sa.Index(None, "status"),
    sa.Index(None, "flow", "record_key"),  # events letters are closed by event key, whichever scope wrote them
)

runs = sa.Table(
    "runs",
    METADATA,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index(None, "flow", "scope", "started_at"),
)
