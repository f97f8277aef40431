"""Initial state store schema: checkpoints, links, pending, opt-outs and their logs, event ledger, dead letters, runs.

Written out in full (not imported from schema.py) so this revision keeps creating the same tables when the
metadata moves on; a test checks the migrated database still equals the metadata.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("in_flight", sa.Text(), nullable=True),
        sa.Column("config_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flow", "scope", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("pair", sa.String(length=200), nullable=False),
        sa.Column("dynamics_value", sa.Boolean(), nullable=False),
        sa.Column("dynamics_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("campaign_value", sa.Boolean(), nullable=False),
        sa.Column("campaign_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("winner", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("resolved_value", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index(op.f("ix_conflicts_at"), "conflicts", ["at"], unique=False)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("mapping", sa.String(length=200), nullable=False),
        sa.Column("record_key", sa.String(length=400), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("error_class", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("flow", "mapping", "record_key", name=op.f("uq_dead_letters_flow_mapping_record_key")),
    )
    op.create_index(op.f("ix_dead_letters_status"), "dead_letters", ["status"], unique=False)
    op.create_table(
        "event_ledger",
        sa.Column("event_key", sa.String(length=80), nullable=False),
        sa.Column("source_key", sa.String(length=80), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("bounce_type", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_key", name=op.f("pk_event_ledger")),
    )
    op.create_index(
        op.f("ix_event_ledger_contact_id_event_type"), "event_ledger", ["contact_id", "event_type"], unique=False
    )
    op.create_index(op.f("ix_event_ledger_source_key"), "event_ledger", ["source_key"], unique=False)
    op.create_table(
        "links",
        sa.Column("mapping", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("target_key", sa.String(length=400), nullable=False),
        sa.Column("values_hash", sa.String(length=128), nullable=False),
        sa.Column("parent_keys", sa.JSON(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("mapping", "source_id", name=op.f("pk_links")),
    )
    op.create_table(
        "optout_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("pair", sa.String(length=200), nullable=False),
        sa.Column("side_written", sa.String(length=16), nullable=False),
        sa.Column("old_value", sa.Boolean(), nullable=True),
        sa.Column("new_value", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optout_log")),
    )
    op.create_index(op.f("ix_optout_log_contact_id_pair"), "optout_log", ["contact_id", "pair"], unique=False)
    op.create_table(
        "optouts",
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("pair", sa.String(length=200), nullable=False),
        sa.Column("base_value", sa.Boolean(), nullable=True),
        sa.Column("dynamics_value", sa.Boolean(), nullable=True),
        sa.Column("dynamics_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("campaign_value", sa.Boolean(), nullable=True),
        sa.Column("campaign_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "pair", name=op.f("pk_optouts")),
    )
    op.create_table(
        "pending",
        sa.Column("mapping", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("parent_mapping", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mapping", "source_id", name=op.f("pk_pending")),
    )
    op.create_index(op.f("ix_pending_next_try_at"), "pending", ["next_try_at"], unique=False)
    op.create_index(
        op.f("ix_pending_parent_mapping_parent_id"), "pending", ["parent_mapping", "parent_id"], unique=False
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_flow_scope_started_at"), "runs", ["flow", "scope", "started_at"], unique=False)
    op.create_table(
        "unmatched_events",
        sa.Column("event_key", sa.String(length=80), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_key", name=op.f("pk_unmatched_events")),
    )
    op.create_index(op.f("ix_unmatched_events_last_seen"), "unmatched_events", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_unmatched_events_last_seen"), table_name="unmatched_events")
    op.drop_table("unmatched_events")
    op.drop_index(op.f("ix_runs_flow_scope_started_at"), table_name="runs")
    op.drop_table("runs")
    op.drop_index(op.f("ix_pending_parent_mapping_parent_id"), table_name="pending")
    op.drop_index(op.f("ix_pending_next_try_at"), table_name="pending")
    op.drop_table("pending")
    op.drop_table("optouts")
    op.drop_index(op.f("ix_optout_log_contact_id_pair"), table_name="optout_log")
    op.drop_table("optout_log")
    op.drop_table("links")
    op.drop_index(op.f("ix_event_ledger_source_key"), table_name="event_ledger")
    op.drop_index(op.f("ix_event_ledger_contact_id_event_type"), table_name="event_ledger")
    op.drop_table("event_ledger")
    op.drop_index(op.f("ix_dead_letters_status"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index(op.f("ix_conflicts_at"), table_name="conflicts")
    op.drop_table("conflicts")
    op.drop_table("checkpoints")
