"""SQLite storage of the events emulator: events scheduled to happen, the published journal, exports, deliveries.

The journal is append-only; a row's ``seq`` is its journal position, so positions grow monotonically with
publication and survive restarts (the journal id in ``meta`` keeps positions of another database invalid).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["DueEvent", "EventStore", "JournalRow", "ScheduledRow", "db_time"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scheduled (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    envelope TEXT NOT NULL,
    export_kind TEXT NOT NULL,
    export_row TEXT NOT NULL,
    released_at TEXT,  -- when the clock passed the event: from then on ACS (and its exports) know it
    journal_state INTEGER NOT NULL DEFAULT 0  -- 0 not yet in the journal, 1 held back by a fault, 2 published
);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (journal_state, occurred_at);
CREATE INDEX IF NOT EXISTS scheduled_released ON scheduled (export_kind, released_at);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    published_at TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_published ON journal (published_at);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, report TEXT NOT NULL);
"""


def db_time(moment: datetime) -> str:
    """Fixed-width UTC text, so SQLite compares times as strings in time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    event_id: str
    occurred_at: datetime
    envelope: dict[str, Any]
    export_kind: str  # "delivery" or "tracking": which export file the row belongs to
    export_row: dict[str, str]


@dataclass(frozen=True, slots=True)
class DueEvent:
    id: int
    event_id: str
    envelope_json: str
    held: bool  # held back from an earlier round by the delay fault


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    published_at: datetime
    envelope_json: str  # kept serialized: it is sized against the response cap and sent as is


class EventStore:
    """One SQLite file (or ``:memory:``) owned by one :class:`EventsHub`."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process; enough here
        self._db.executescript(SCHEMA)
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('journal_id', ?)", (uuid.uuid4().hex,))
        self.journal_id = self.get_meta("journal_id") or ""

    def close(self) -> None:
        self._db.close()

    # --- meta ---------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def next_counter(self, key: str, amount: int) -> int:
        """Reserve ``amount`` ids of a named counter; returns the first one."""
        first = int(self.get_meta(key) or "1")
        self.set_meta(key, str(first + amount))
        return first

    # --- scheduled events ---------------------------------------------------------------------------------

    def schedule(self, rows: Iterable[ScheduledRow]) -> None:
        """Store the rows as they come (a generator keeps a big delivery from being held in memory twice)."""
        encoded = (
            (r.event_id, db_time(r.occurred_at), json.dumps(r.envelope), r.export_kind, json.dumps(r.export_row))
            for r in rows
        )
        with self._db:
            self._db.executemany(
                "INSERT INTO scheduled (event_id, occurred_at, envelope, export_kind, export_row) VALUES (?,?,?,?,?)",
                encoded,
            )

    def due(self, now: datetime) -> list[DueEvent]:
        """Events that have happened by ``now`` and are not in the journal yet, in time order."""
        cursor = self._db.execute(
            "SELECT id, event_id, envelope, journal_state FROM scheduled WHERE journal_state < 2 AND occurred_at <= ?"
            " ORDER BY occurred_at, id",
            (db_time(now),),
        )
        return [DueEvent(int(i), str(e), str(env), held=state == 1) for i, e, env, state in cursor]

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM scheduled WHERE journal_state < 2").fetchone()[0])

    def release(
        self, due: Sequence[DueEvent], entries: Sequence[tuple[str, str]], held: Sequence[DueEvent], now: datetime
    ) -> None:
        """Atomically: all ``due`` events have happened; ``entries`` (event id, envelope JSON) are appended to the
        journal, and the ``held`` events stay out of it until the next round."""
        stamp = db_time(now)
        held_ids = {event.id for event in held}
        with self._db:
            self._db.executemany(
                "UPDATE scheduled SET released_at = coalesce(released_at, ?), journal_state = ? WHERE id = ?",
                [(stamp, 1 if event.id in held_ids else 2, event.id) for event in due],
            )
            # Explicit positions after the newest ever published: SQLite would reuse rowids freed by a purge of the
            # whole journal, putting new events at or before the purge mark where no reader ever sees them.
            head = self.head_seq()
            self._db.executemany(
                "INSERT INTO journal (seq, event_id, published_at, envelope) VALUES (?, ?, ?, ?)",
                [(head + offset, event_id, stamp, envelope) for offset, (event_id, envelope) in enumerate(entries, 1)],
            )

    def released_rows(self, export_kind: str, after: datetime | None, until: datetime) -> list[dict[str, str]]:
        """Export rows of events released in (after, until], in occurrence order (an incremental query, §C.4)."""
        lower = db_time(after) if after else ""
        cursor = self._db.execute(
            "SELECT export_row FROM scheduled WHERE export_kind = ? AND released_at > ? AND released_at <= ?"
            " ORDER BY occurred_at, id",
            (export_kind, lower, db_time(until)),
        )
        return [json.loads(row[0]) for row in cursor]

    # --- journal ------------------------------------------------------------------------------------------

    def read_after(self, seq: int, limit: int) -> list[JournalRow]:
        cursor = self._db.execute(
            "SELECT seq, published_at, envelope FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [JournalRow(int(s), _from_db_time(p), str(e)) for s, p, e in cursor]

    def head_seq(self) -> int:
        """Position of the newest event ever published (0 before the first), purged or not."""
        row = self._db.execute("SELECT max(seq) FROM journal").fetchone()
        return max(int(row[0] or 0), self.purged_through())

    def purged_through(self) -> int:
        return int(self.get_meta("purged_through") or "0")

    def last_seq_published_before(self, moment: datetime) -> int:
        """The position to read *after* to start at the first event published at or after ``moment``."""
        row = self._db.execute("SELECT max(seq) FROM journal WHERE published_at < ?", (db_time(moment),)).fetchone()
        return max(int(row[0] or 0), self.purged_through())

    def expire(self, published_before: datetime | None) -> int:
        """Drop journal events published before the cutoff (all when None); returns how many were dropped."""
        if published_before is None:
            row = self._db.execute("SELECT max(seq) FROM journal").fetchone()
        else:
            row = self._db.execute(
                "SELECT max(seq) FROM journal WHERE published_at < ?", (db_time(published_before),)
            ).fetchone()
        through = int(row[0] or 0)
        if through <= self.purged_through():
            return 0
        with self._db:
            dropped = self._db.execute("DELETE FROM journal WHERE seq <= ?", (through,)).rowcount
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('purged_through', ?)", (str(through),))
        return int(dropped)

    def journal_stats(self) -> dict[str, Any]:
        count, oldest, newest = self._db.execute(
            "SELECT count(*), min(published_at), max(published_at) FROM journal"
        ).fetchone()
        return {"events": int(count), "oldestPublishedAt": oldest, "newestPublishedAt": newest}

    # --- deliveries ---------------------------------------------------------------------------------------

    def add_delivery(self, report: dict[str, Any]) -> None:
        with self._db:
            self._db.execute("INSERT INTO deliveries (report) VALUES (?)", (json.dumps(report),))

    def deliveries(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT report FROM deliveries ORDER BY id")]
