"""Dead letters record when and why they were closed; unmatched events get a retry time; deleted links are indexed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("dead_letters", sa.Column("close_reason", sa.Text(), nullable=True))
    op.create_index(op.f("ix_dead_letters_flow_record_key"), "dead_letters", ["flow", "record_key"], unique=False)
    op.add_column("unmatched_events", sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_unmatched_events_next_try_at"), "unmatched_events", ["next_try_at"], unique=False)
    # Unmatched events kept before retries existed get one look at the next events pass (from when they were last
    # seen, so events older than events.unmatched_retry_for are tried once and then left for inspection).
    unmatched = sa.table("unmatched_events", sa.column("external_id"), sa.column("last_seen"), sa.column("next_try_at"))
    op.execute(unmatched.update().where(unmatched.c.external_id.is_not(None)).values(next_try_at=unmatched.c.last_seen))
    op.create_index(
        op.f("ix_links_mapping_deleted_at"),
        "links",
        ["mapping", "deleted_at"],
        unique=False,
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_links_mapping_deleted_at"), table_name="links")
    op.drop_index(op.f("ix_unmatched_events_next_try_at"), table_name="unmatched_events")
    op.drop_column("unmatched_events", "next_try_at")
    op.drop_index(op.f("ix_dead_letters_flow_record_key"), table_name="dead_letters")
    op.drop_column("dead_letters", "close_reason")
    op.drop_column("dead_letters", "closed_at")
