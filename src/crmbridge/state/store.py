"""``StateStore``: the one class that owns crmbridge's state. Flows call it; they never write SQL.

Every call is one short transaction on the store's single connection (SQLite file in WAL mode by default,
PostgreSQL by URL). Calls are synchronous and brief, so an asyncio program may call them directly between awaits, or
through ``anyio.to_thread.run_sync`` when a batch is large; a lock serialises them either way. Nothing holds a
transaction open between calls: ``iter_links`` reads page by page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from crmbridge.exceptions import ConfigError
from crmbridge.redaction import redact
from crmbridge.state import schema
from crmbridge.state.batch import Batch
from crmbridge.state.database import Database, normalize_url
from crmbridge.state.dead_letters import DeadLetters
from crmbridge.state.queries import chunked, contact_rollups, link_from_row, optout_from_row, parked_from_row
from crmbridge.state.rows import (
    Checkpoint,
    ConflictRecord,
    ContactRollup,
    DeadLetterStatus,
    Flow,
    LinkRow,
    OptOutState,
    OptOutWrite,
    ParkedChild,
    PurgeResult,
    RunStatus,
    StateInfo,
    UnmatchedEvent,
)
from crmbridge.state.runs import RunRecord, last_runs
from crmbridge.state.summary import read_info
from crmbridge.state.writes import write_batch

__all__ = ["StateStore"]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """Checkpoints, links, parked children, opt-out bases and logs, the event ledger, dead letters and runs."""

    def __init__(self, database: Database, clock: Clock = _utc_now) -> None:
        self._db = database
        self._clock = clock
        self.dead_letters = DeadLetters(database, clock)

    @classmethod
    def open(cls, url: str, *, create: bool = True, clock: Clock = _utc_now) -> StateStore:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql://...``) and apply pending migrations.

        ``create=False`` refuses to create a missing SQLite file (for commands that only inspect).
        """
        parsed = normalize_url(url)
        if not create and parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
            raise ConfigError(f"no state store at {parsed.database}: nothing has been synced with this URL yet")
        database = Database(parsed)
        try:
            database.migrate()
        except BaseException:
            database.dispose()
            raise
        return cls(database, clock)

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Write all of ``batch``, its checkpoint included, in one transaction: everything or nothing."""
        if batch.is_empty:
            return
        with self._db.writing() as connection:
            write_batch(connection, batch, self._clock())

    def start_run(self, flow: Flow, scope: str) -> str:
        """Record the start of a pass and return its id (for ``finish_run`` and the opt-out audit log)."""
        run_id = str(uuid.uuid4())
        row = {"id": run_id, "flow": flow.value, "scope": scope, "started_at": self._clock()}
        with self._db.writing() as connection:
            connection.execute(sa.insert(schema.runs).values(**row, status=RunStatus.RUNNING.value))
        return run_id

    def finish_run(
        self, run_id: str, status: RunStatus, counts: Mapping[str, int] | None = None, error: str | None = None
    ) -> None:
        runs = schema.runs
        # Errors may quote URLs and headers: the store is shown on the dashboard, so secrets are masked first.
        shown_error = redact(error) if error is not None else None
        values: dict[str, Any] = {"status": status.value, "finished_at": self._clock(), "error": shown_error}
        values["counts"] = dict(counts) if counts is not None else None
        with self._db.writing() as connection:
            updated = connection.execute(sa.update(runs).where(runs.c.id == run_id).values(**values)).rowcount
        if updated != 1:
            raise KeyError(f"no run {run_id!r} in the state store")

    def purge_personal_data(self, older_than: datetime) -> PurgeResult:
        """Forget payloads (names, emails) of dead letters and unmatched events last seen before ``older_than``.

        Dead letters that are dropped or resolved are deleted; open ones keep their key and error but lose the
        payload (a retry re-reads the source row anyway). Unmatched events are deleted.
        """
        letters, unmatched = schema.dead_letters, schema.unmatched_events
        closed = [DeadLetterStatus.DROPPED.value, DeadLetterStatus.RESOLVED.value]
        stale = letters.c.last_failed_at < older_than
        with self._db.writing() as connection:
            deleted = connection.execute(sa.delete(letters).where(stale, letters.c.status.in_(closed))).rowcount
            cleared = connection.execute(
                sa.update(letters).where(stale, letters.c.payload.is_not(None)).values(payload=None)
            ).rowcount
            forgotten = connection.execute(sa.delete(unmatched).where(unmatched.c.last_seen < older_than)).rowcount
        return PurgeResult(deleted, cleared, forgotten)

    # --- reading ----------------------------------------------------------------------------------------------

    def checkpoint(self, flow: Flow, scope: str) -> Checkpoint | None:
        checkpoints = schema.checkpoints
        query = sa.select(checkpoints).where(checkpoints.c.flow == flow.value, checkpoints.c.scope == scope)
        with self._db.reading() as connection:
            row = connection.execute(query).one_or_none()
        if row is None:
            return None
        return Checkpoint(
            flow=Flow(row.flow),
            scope=row.scope,
            value=row.value,
            in_flight=row.in_flight,
            config_fingerprint=row.config_fingerprint,
            updated_at=row.updated_at,
        )

    def links_for(self, mapping: str, source_ids: Iterable[str]) -> dict[str, LinkRow]:
        """The links of these source rows (deleted ones included), by source id; ids without a link are absent."""
        links = schema.links
        found: dict[str, LinkRow] = {}
        with self._db.reading() as connection:
            for chunk in chunked(source_ids):
                query = sa.select(links).where(links.c.mapping == mapping, links.c.source_id.in_(chunk))
                for row in connection.execute(query):
                    found[row.source_id] = link_from_row(row)
        return found

    def iter_links(self, mapping: str, *, include_deleted: bool = False, page_size: int = 5000) -> Iterator[LinkRow]:
        """Every link of ``mapping`` in source id order, read page by page (keyset), so memory stays flat.

        No transaction stays open between pages, so the caller may commit batches while iterating; a row
        committed meanwhile is seen if its id sorts after the current page.
        """
        links = schema.links
        after: str | None = None
        while True:
            query = sa.select(links).where(links.c.mapping == mapping).order_by(links.c.source_id).limit(page_size)
            if not include_deleted:
                query = query.where(links.c.deleted_at.is_(None))
            if after is not None:
                query = query.where(links.c.source_id > after)
            with self._db.reading() as connection:
                page = [link_from_row(row) for row in connection.execute(query)]
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].source_id

    def deleted_links_since(self, mapping: str, since: datetime | None) -> list[LinkRow]:
        """Links of ``mapping`` marked deleted at or after ``since`` (all deleted ones when None)."""
        links = schema.links
        query = sa.select(links).where(links.c.mapping == mapping, links.c.deleted_at.is_not(None))
        if since is not None:
            query = query.where(links.c.deleted_at >= since)
        with self._db.reading() as connection:
            return [link_from_row(row) for row in connection.execute(query)]

    def children_of(self, mapping: str, link_name: str, parent_keys: Iterable[str]) -> list[LinkRow]:
        """Live links of ``mapping`` whose link ``link_name`` points at one of these parent business keys.

        Reads every link of the mapping once per 5,000 parent keys (parent keys live in a JSON column), so callers
        ask only about parents deleted since they last asked.
        """
        links = schema.links
        pointed = links.c.parent_keys[link_name].as_string()
        found: list[LinkRow] = []
        with self._db.reading() as connection:
            for chunk in chunked(parent_keys, 5000):
                query = sa.select(links).where(
                    links.c.mapping == mapping, links.c.deleted_at.is_(None), pointed.in_(chunk)
                )
                found.extend(link_from_row(row) for row in connection.execute(query))
        return found

    def last_success_started(self, flow: Flow, scope: str) -> datetime | None:
        """When the latest pass of (flow, scope) that succeeded started; None if none has."""
        runs = schema.runs
        query = sa.select(sa.func.max(runs.c.started_at)).where(
            runs.c.flow == flow.value, runs.c.scope == scope, runs.c.status == RunStatus.SUCCEEDED.value
        )
        with self._db.reading() as connection:
            started: datetime | None = connection.execute(query).scalar_one_or_none()  # max() keeps UtcDateTime
        return started

    def ledger_contains(self, event_keys: Iterable[str]) -> set[str]:
        """The subset of ``event_keys`` already written (dedupe across journal replays and export files)."""
        ledger = schema.event_ledger
        seen: set[str] = set()
        with self._db.reading() as connection:
            for chunk in chunked(event_keys):
                seen.update(connection.scalars(sa.select(ledger.c.event_key).where(ledger.c.event_key.in_(chunk))))
        return seen

    def contact_rollups(self, contact_ids: Iterable[str]) -> dict[str, ContactRollup]:
        """Roll-up values per contact from the ledger; contacts without events are absent."""
        with self._db.reading() as connection:
            return contact_rollups(connection, contact_ids)

    def pending_due(self, now: datetime, *, limit: int = 1000) -> list[ParkedChild]:
        """Parked children whose next try is due, oldest first."""
        pending = schema.pending
        query = sa.select(pending).where(pending.c.next_try_at <= now).order_by(pending.c.next_try_at).limit(limit)
        with self._db.reading() as connection:
            return [parked_from_row(row) for row in connection.execute(query)]

    def unmatched_due(self, now: datetime, *, limit: int = 1000) -> list[UnmatchedEvent]:
        """Unmatched events whose next look for their contact is due, oldest due first."""
        table = schema.unmatched_events
        query = (
            sa.select(table)
            .where(table.c.next_try_at.is_not(None), table.c.next_try_at <= now)
            .order_by(table.c.next_try_at)
            .limit(limit)
        )
        with self._db.reading() as connection:
            return [
                UnmatchedEvent(
                    row.event_key,
                    row.external_id,
                    row.email,
                    row.payload,
                    row.reason,
                    row.last_seen,
                    next_try_at=row.next_try_at,
                    attempts=row.attempts,
                    first_seen=row.first_seen,
                )
                for row in connection.execute(query)
            ]

    def parked_children_of(self, parent_mapping: str, parent_ids: Iterable[str]) -> list[ParkedChild]:
        """Children waiting for these parents (to retry them as soon as the parents land)."""
        pending = schema.pending
        children: list[ParkedChild] = []
        with self._db.reading() as connection:
            for chunk in chunked(parent_ids):
                query = sa.select(pending).where(
                    pending.c.parent_mapping == parent_mapping, pending.c.parent_id.in_(chunk)
                )
                children.extend(parked_from_row(row) for row in connection.execute(query))
        return children

    def optout_states(self, pair: str, contact_ids: Iterable[str]) -> dict[str, OptOutState]:
        """Opt-out base and last seen values per contact for one pair; contacts never seen are absent."""
        optouts = schema.optouts
        found: dict[str, OptOutState] = {}
        with self._db.reading() as connection:
            for chunk in chunked(contact_ids):
                query = sa.select(optouts).where(optouts.c.pair == pair, optouts.c.contact_id.in_(chunk))
                for row in connection.execute(query):
                    found[row.contact_id] = optout_from_row(row)
        return found

    def conflicts(self, *, since: datetime | None = None, limit: int = 100) -> list[ConflictRecord]:
        """Opt-out conflicts, newest first."""
        table = schema.conflicts
        query = sa.select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(table.c.at >= since)
        with self._db.reading() as connection:
            rows = connection.execute(query).mappings().all()
        return [ConflictRecord(**{key: value for key, value in row.items() if key != "id"}) for row in rows]

    def optout_history(self, contact_id: str) -> tuple[list[OptOutWrite], list[ConflictRecord]]:
        """Every opt-out write crmbridge made for this contact, and its conflicts, oldest first."""
        log, table = schema.optout_log, schema.conflicts
        with self._db.reading() as connection:
            writes = connection.execute(
                sa.select(log).where(log.c.contact_id == contact_id).order_by(log.c.at, log.c.id)
            ).mappings()
            history = [OptOutWrite(**{k: v for k, v in row.items() if k != "id"}) for row in writes]
            found = connection.execute(
                sa.select(table).where(table.c.contact_id == contact_id).order_by(table.c.at, table.c.id)
            ).mappings()
            conflicts = [ConflictRecord(**{k: v for k, v in row.items() if k != "id"}) for row in found]
        return history, conflicts

    def last_runs(self) -> dict[tuple[str, str], RunRecord]:
        """(flow, scope) -> the latest run with its counts and error."""
        with self._db.reading() as connection:
            return last_runs(connection)

    def info(self) -> StateInfo:
        """What the store holds per flow and scope (``crmbridge state info`` and the dashboard)."""
        revision = self._db.revision()
        with self._db.reading() as connection:
            return read_info(connection, self._db.url, revision)
