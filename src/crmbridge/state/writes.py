"""Turns a :class:`Batch` into SQL on an open write transaction. Called only by ``StateStore.commit``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from crmbridge.redaction import redact
from crmbridge.state import schema
from crmbridge.state.batch import Batch, CheckpointUpdate
from crmbridge.state.queries import chunked
from crmbridge.state.rows import DeadLetterStatus, Flow

__all__ = ["write_batch"]

Params = list[dict[str, Any]]


def _shallow(value: Any) -> dict[str, Any]:
    """A dataclass as a column dict; unlike ``dataclasses.asdict`` it does not deep-copy (5x faster on links)."""
    return {field.name: getattr(value, field.name) for field in fields(value)}


def _insert(connection: Connection, table: sa.Table) -> Any:
    """The backend's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL spell it the same way)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _upsert(
    connection: Connection,
    table: sa.Table,
    rows: Params,
    keys: Sequence[str],
    updates: dict[str, Any] | None = None,
) -> None:
    """INSERT rows; on a key conflict, set ``updates`` (default: every non-key column from the new row)."""
    if not rows:
        return
    statement = _insert(connection, table)
    if updates is None:
        updates = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)


def _write_links(connection: Connection, batch: Batch) -> None:
    links = schema.links
    rows = [
        {**_shallow(row), "parent_keys": dict(row.parent_keys) if row.parent_keys is not None else None}
        for row in batch.links_upserted
    ]
    _upsert(connection, links, rows, ("mapping", "source_id"))
    if batch.links_deleted:
        statement = (
            sa.update(links)
            .where(links.c.mapping == sa.bindparam("b_mapping"), links.c.source_id == sa.bindparam("b_source_id"))
            .values(deleted_at=sa.bindparam("b_at"))
        )
        params = [{"b_mapping": m, "b_source_id": s, "b_at": at} for m, s, at in batch.links_deleted]
        connection.execute(statement, params)


def _write_pending(connection: Connection, batch: Batch) -> None:
    pending = schema.pending
    if batch.children_unparked:
        statement = sa.delete(pending).where(
            pending.c.mapping == sa.bindparam("b_mapping"), pending.c.source_id == sa.bindparam("b_source_id")
        )
        params = [{"b_mapping": mapping, "b_source_id": source_id} for mapping, source_id in batch.children_unparked]
        connection.execute(statement, params)
    rows = [{**_shallow(child), "payload": dict(child.payload)} for child in batch.children_parked]
    if rows:
        excluded = _insert(connection, pending).excluded
        updates = {
            "parent_mapping": excluded.parent_mapping,
            "parent_id": excluded.parent_id,
            "payload": excluded.payload,
            "next_try_at": excluded.next_try_at,
            "attempts": pending.c.attempts + 1,
        }
        _upsert(connection, pending, rows, ("mapping", "source_id"), updates)


def _write_events(connection: Connection, batch: Batch) -> None:
    if batch.ledger_entries:
        statement = _insert(connection, schema.event_ledger).on_conflict_do_nothing(index_elements=["event_key"])
        connection.execute(statement, [_shallow(entry) for entry in batch.ledger_entries])
    unmatched = schema.unmatched_events
    for keys in chunked(batch.unmatched_resolved):
        connection.execute(sa.delete(unmatched).where(unmatched.c.event_key.in_(keys)))
    rows = [
        {
            "event_key": event.event_key,
            "external_id": event.external_id,
            "email": event.email,
            "payload": dict(event.payload) if event.payload is not None else None,
            "reason": event.reason,
            "first_seen": event.seen_at,
            "last_seen": event.seen_at,
            "attempts": 1,
            "next_try_at": event.next_try_at,
        }
        for event in batch.unmatched
    ]
    if rows:
        excluded = _insert(connection, unmatched).excluded
        updates = {
            "external_id": excluded.external_id,
            "email": excluded.email,
            "payload": excluded.payload,
            "reason": excluded.reason,
            "last_seen": excluded.last_seen,
            "attempts": unmatched.c.attempts + 1,
            "next_try_at": excluded.next_try_at,
        }
        _upsert(connection, unmatched, rows, ("event_key",), updates)


def _write_dead_letters(connection: Connection, batch: Batch) -> None:
    letters = schema.dead_letters
    rows = [
        {
            "flow": letter.flow.value,
            "mapping": letter.mapping,
            "record_key": letter.record_key,
            "payload": dict(letter.payload) if letter.payload is not None else None,
            "error_class": letter.error_class,
            "reason": redact(letter.reason),  # shown in the CLI and dashboard: never a secret
            "attempts": letter.attempts,
            "first_failed_at": letter.first_failed_at or letter.failed_at,
            "last_failed_at": letter.failed_at,
            "status": DeadLetterStatus.OPEN.value,
        }
        for letter in batch.dead_letters
    ]
    if rows:
        excluded = _insert(connection, letters).excluded
        updates = {
            "payload": excluded.payload,
            "error_class": excluded.error_class,
            "reason": excluded.reason,
            "last_failed_at": excluded.last_failed_at,
            "attempts": letters.c.attempts + 1,
            "status": DeadLetterStatus.OPEN.value,
            "closed_at": None,
            "close_reason": None,
        }
        _upsert(connection, letters, rows, ("flow", "mapping", "record_key"), updates)


_STILL_FAILING = (DeadLetterStatus.OPEN.value, DeadLetterStatus.RETRYING.value)


def _written_records(batch: Batch) -> dict[tuple[str | None, str], list[str]]:
    """(mapping or None for any, why) -> keys of records this batch wrote; their dead letters are closed with it."""
    written: dict[tuple[str | None, str], list[str]] = {}
    if batch.flow is Flow.TABLES:
        for link in batch.links_upserted:
            written.setdefault((link.mapping, "written by a later pass or retry"), []).append(link.source_id)
        for mapping, source_id, _ in batch.links_deleted:
            written.setdefault((mapping, "deleted; nothing left to write"), []).append(source_id)
    elif batch.flow is Flow.EVENTS:
        # Event letters are keyed by event key under the scope that wrote them; a backfill or a retry under
        # another scope writes the same event, so any scope's letter for the key is closed.
        keys = [entry.event_key for entry in batch.ledger_entries]
        if keys:
            written[(None, "event written to Dynamics")] = keys
    return written


_FEW_OPEN = 5000  # up to this many open letters of a flow are matched in memory, more through IN lists


def _close_dead_letters(connection: Connection, batch: Batch, now: datetime) -> None:
    """A record written successfully closes its open dead letter (the user fixed it in Dynamics, or a retry)."""
    if not (batch.links_upserted or batch.links_deleted or batch.ledger_entries):
        return
    letters = schema.dead_letters
    flow = batch.flow.value
    still_failing = (letters.c.flow == flow, letters.c.status.in_(_STILL_FAILING))
    open_rows = connection.execute(
        sa.select(letters.c.id, letters.c.mapping, letters.c.record_key).where(*still_failing).limit(_FEW_OPEN + 1)
    ).all()
    if not open_rows:
        return  # the usual case: nothing to close, one indexed read
    written = _written_records(batch)
    resolved = {"status": DeadLetterStatus.RESOLVED.value, "closed_at": now}
    for (mapping, reason), keys in written.items():
        # a record refused again in this very batch (a rebaseline touches its link) stays open
        failing_again = {d.record_key for d in batch.dead_letters if mapping is None or d.mapping == mapping}
        wanted = {key for key in keys if key not in failing_again}
        if len(open_rows) <= _FEW_OPEN:
            ids = [r.id for r in open_rows if r.record_key in wanted and (mapping is None or r.mapping == mapping)]
            for chunk in chunked(ids):
                statement = sa.update(letters).where(letters.c.id.in_(chunk))
                connection.execute(statement.values(**resolved, close_reason=reason))
            continue
        for chunk in chunked(wanted):
            statement = sa.update(letters).where(*still_failing, letters.c.record_key.in_(chunk))
            if mapping is not None:
                statement = statement.where(letters.c.mapping == mapping)
            connection.execute(statement.values(**resolved, close_reason=reason))


def _forget_written_unmatched(connection: Connection, batch: Batch) -> None:
    """An unmatched event that is now written (retried, or delivered again with its contact) is matched."""
    keys = [entry.event_key for entry in batch.ledger_entries]
    unmatched = schema.unmatched_events
    if not keys or connection.execute(sa.select(unmatched.c.event_key).limit(1)).first() is None:
        return
    for chunk in chunked(keys):
        connection.execute(sa.delete(unmatched).where(unmatched.c.event_key.in_(chunk)))


def _write_optouts(connection: Connection, batch: Batch) -> None:
    _upsert(connection, schema.optouts, [_shallow(state) for state in batch.optout_states], ("contact_id", "pair"))
    if batch.optout_writes:
        connection.execute(sa.insert(schema.optout_log), [_shallow(write) for write in batch.optout_writes])
    if batch.conflicts:
        connection.execute(sa.insert(schema.conflicts), [_shallow(conflict) for conflict in batch.conflicts])


def _write_checkpoint(connection: Connection, flow: Flow, scope: str, update: CheckpointUpdate, now: datetime) -> None:
    checkpoints = schema.checkpoints
    row = {
        "flow": flow.value,
        "scope": scope,
        "value": update.value if update.complete else None,
        "in_flight": None if update.complete else update.value,
        "config_fingerprint": update.config_fingerprint,
        "updated_at": now,
    }
    excluded = _insert(connection, checkpoints).excluded
    updates: dict[str, Any] = {
        "in_flight": excluded.in_flight,
        "config_fingerprint": excluded.config_fingerprint,
        "updated_at": excluded.updated_at,
    }
    if update.complete:
        updates["value"] = excluded.value
    else:
        # The last complete value stays for resuming, unless the read in flight runs under another
        # configuration: a delta link is bound to the $select it was created with.
        same_config = checkpoints.c.config_fingerprint.is_not_distinct_from(excluded.config_fingerprint)
        updates["value"] = sa.case((same_config, checkpoints.c.value), else_=sa.null())
    _upsert(connection, checkpoints, [row], ("flow", "scope"), updates)


def write_batch(connection: Connection, batch: Batch, now: datetime) -> None:
    """Write every part of ``batch`` on ``connection``; the caller's transaction makes it all-or-nothing."""
    _write_links(connection, batch)
    _write_pending(connection, batch)
    _write_events(connection, batch)
    _forget_written_unmatched(connection, batch)
    _close_dead_letters(connection, batch, now)
    _write_dead_letters(connection, batch)
    _write_optouts(connection, batch)
    if batch.checkpoint is not None:
        _write_checkpoint(connection, batch.flow, batch.scope, batch.checkpoint, now)
