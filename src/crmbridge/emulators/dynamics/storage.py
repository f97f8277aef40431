"""SQLite storage of the Dataverse emulator: one typed table per Dataverse table, tombstones, a version counter.

Strings use ``COLLATE NOCASE`` so comparisons are case-insensitive like Dataverse's; lookups are two columns
(``x`` holds the GUID, ``x__target`` the target table). Every write takes the next value of one global counter,
which is the row's ``versionnumber``, its ETag and the first part of a delta token (§2.7, §4.6).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from crmbridge.emulators.dynamics.schema import Schema, Table, load_default_schema

__all__ = ["Storage"]

Row = dict[str, Any]


class Storage:
    """Owns the SQLite connection; all SQL of the emulator lives here, in ``filters.py`` and ``queries.py``."""

    def __init__(self, path: str, schema: Schema | None = None) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY", "cache_size=-65536"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS tombstones (tbl TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
            " deleted_on TEXT NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS tombstones_by_version ON tombstones (tbl, version)")
        stored = self.get_meta("schema")
        self.schema = schema or load_default_schema()
        if stored:
            # Tables created through metadata live in the file; tables added to tables.json since are added.
            previous = Schema.from_json(stored)
            for table in self.schema.tables.values():
                previous.tables.setdefault(table.logical_name, table)
            self.schema = previous
        for table in self.schema.tables.values():
            self.ensure_table(table)
        self.refresh_activity_view()
        self.save_schema()
        self._savepoints = itertools.count()
        self.version = self._max_version()

    # --- meta and schema ---------------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def save_schema(self) -> None:
        self.set_meta("schema", self.schema.to_json())

    def ensure_table(self, table: Table) -> None:
        """Create the SQL table, add columns declared since, and index versions, lookups and alternate keys."""
        if table.is_view:
            return
        existing = {r[1] for r in self.db.execute(f"PRAGMA table_info({table.sql_name})")}
        if not existing:
            self.db.execute(f"CREATE TABLE {table.sql_name} ({table.primary_id} TEXT PRIMARY KEY) WITHOUT ROWID")
            existing = {table.primary_id}
        for column in table.columns.values():
            if column.name not in existing:
                self.db.execute(f"ALTER TABLE {table.sql_name} ADD COLUMN {column.name} {column.sql_type}")
            if column.type == "Lookup" and f"{column.name}__target" not in existing:
                self.db.execute(f"ALTER TABLE {table.sql_name} ADD COLUMN {column.name}__target TEXT")
        name = table.sql_name
        self.db.execute(f"CREATE INDEX IF NOT EXISTS {name}__version ON {name} (versionnumber)")
        for column in table.columns.values():
            if column.type == "Lookup":
                self.db.execute(f"CREATE INDEX IF NOT EXISTS {name}__{column.name} ON {name} ({column.name})")
        for key in table.keys:
            columns = ", ".join(key.attributes)
            self.db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name}__key_{key.schema_name} ON {name} ({columns})")

    def refresh_activity_view(self) -> None:
        """``activitypointer``: the columns every activity shares, over all activity tables (the timeline's source)."""
        view = next((t for t in self.schema.tables.values() if t.is_view), None)
        if view is None:
            return
        names = [*view.columns, "regardingobjectid__target"]
        selects = [f"SELECT {', '.join(names)} FROM {t.sql_name}" for t in self.schema.activity_tables()] or [
            f"SELECT {', '.join(f'NULL AS {n}' for n in names)} WHERE 0"
        ]
        self.db.execute(f"DROP VIEW IF EXISTS {view.sql_name}")
        self.db.execute(f"CREATE VIEW {view.sql_name} AS {' UNION ALL '.join(selects)}")

    def _max_version(self) -> int:
        highest = self.db.execute("SELECT coalesce(max(version), 0) FROM tombstones").fetchone()[0]
        for table in self.schema.tables.values():
            if table.is_view:
                continue
            value = self.db.execute(f"SELECT coalesce(max(versionnumber), 0) FROM {table.sql_name}").fetchone()[0]
            highest = max(highest, value)
        return int(highest)

    def next_version(self) -> int:
        self.version += 1
        return self.version

    # --- transactions -----------------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """All or nothing; nests through savepoints (a ``$batch`` change set wraps single writes)."""
        name = f"sp{next(self._savepoints)}"
        self.db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
            raise
        self.db.execute(f"RELEASE {name}")

    # --- rows ---------------------------------------------------------------------------------------------

    def get(self, table: Table, row_id: str) -> Row | None:
        rows = self.query(f"SELECT * FROM {table.sql_name} WHERE {table.primary_id} = ?", (row_id,))
        return rows[0] if rows else None

    def find_by_values(self, table: Table, values: dict[str, Any]) -> Row | None:
        where = " AND ".join(f"{name} = ?" for name in values)
        rows = self.query(f"SELECT * FROM {table.sql_name} WHERE {where} LIMIT 1", tuple(values.values()))
        return rows[0] if rows else None

    def insert(self, table: Table, row: Row) -> None:
        names = list(row)
        placeholders = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {table.sql_name} ({', '.join(names)}) VALUES ({placeholders})"
        self.db.execute(sql, tuple(row[n] for n in names))

    def update(self, table: Table, row_id: str, changes: Row) -> None:
        assignments = ", ".join(f"{name} = ?" for name in changes)
        sql = f"UPDATE {table.sql_name} SET {assignments} WHERE {table.primary_id} = ?"
        self.db.execute(sql, (*changes.values(), row_id))

    def delete(self, table: Table, row_id: str, deleted_on: str) -> None:
        self.db.execute(f"DELETE FROM {table.sql_name} WHERE {table.primary_id} = ?", (row_id,))
        self.db.execute(
            "INSERT INTO tombstones (tbl, id, version, deleted_on) VALUES (?, ?, ?, ?)",
            (table.logical_name, row_id, self.next_version(), deleted_on),
        )

    def bulk_insert(self, table: Table, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Fast path for seeding: one prepared statement, one transaction (callers assign versions)."""
        sql = f"INSERT INTO {table.sql_name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        with self.atomic():
            self.db.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self.db.execute(sql, tuple(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def purge_tombstones(self, older_than: str) -> int:
        cursor = self.db.execute("DELETE FROM tombstones WHERE deleted_on < ?", (older_than,))
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        counts = {
            t.logical_name: int(self.scalar(f"SELECT count(*) FROM {t.sql_name}")) for t in self.schema.tables.values()
        }
        counts["tombstones"] = int(self.scalar("SELECT count(*) FROM tombstones"))
        return counts

    def reset(self) -> None:
        """Drop every row and every table created through metadata; back to the schema file."""
        with self.atomic():
            for table in self.schema.tables.values():
                kind = "VIEW" if table.is_view else "TABLE"
                self.db.execute(f"DROP {kind} IF EXISTS {table.sql_name}")
            self.db.execute("DELETE FROM tombstones")
            self.schema = load_default_schema()
            for table in self.schema.tables.values():
                self.ensure_table(table)
            self.refresh_activity_view()
            self.save_schema()

    def close(self) -> None:
        self.db.close()
