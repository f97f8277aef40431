"""Alembic environment: runs on the connection ``crmbridge.state.database`` passes in, inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from crmbridge.state.schema import METADATA

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("state migrations run through StateStore.open(url), which passes the connection in")

context.configure(connection=connection, target_metadata=METADATA)
with context.begin_transaction():
    context.run_migrations()
