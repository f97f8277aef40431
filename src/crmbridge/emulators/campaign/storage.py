"""SQLite storage of the Campaign emulator: one table per resource, indexes for keys, filters and keyset paging.

Rows are addressed by integer ids; PKeys are derived from them (``keys.PKeyCodec``) and never stored, so a new
salt gives every row a new PKey, as a new ACS instance would. Paging is keyset-based (no OFFSET scans).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmbridge.emulators.campaign.keys import PKeyCodec
from crmbridge.emulators.campaign.schema import (
    ANY_FLAG_TIMESTAMP,
    FLAG_TIMESTAMP_FIELDS,
    FieldSpec,
    ResourceSpec,
    Schema,
)
from crmbridge.emulators.campaign.targets import DeliveryTarget

__all__ = ["DuplicateKey", "Query", "Storage", "table_name", "unique_index_name"]

Row = dict[str, Any]


class DuplicateKey(Exception):
    def __init__(self, index: str) -> None:
        super().__init__(index)
        self.index = index


def table_name(resource: str) -> str:
    return f"r_{resource}"


def unique_index_name(spec: ResourceSpec) -> str:
    # Shaped like ACS's constraint names, e.g. nmsservice_name (§2.7).
    return f"{spec.schema.replace(':', '')}_{(spec.custom_key or 'id').lower()}"


@dataclass(slots=True)
class Query:
    """A list request: WHERE fragments over alias ``t``, an order column and a keyset position."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    order_column: str = "id"
    descending: bool = False
    after: list[Any] | None = None  # [order value, id] of the first row to return
    limit: int = 25


def _column_sql(spec: FieldSpec) -> str:
    if spec.type == "link":
        return f'"{spec.column}" INTEGER'
    if spec.type in ("boolean", "integer"):
        return f'"{spec.column}" INTEGER NOT NULL DEFAULT 0'
    default = spec.default if spec.type == "enumeration" and spec.default is not None else ""
    if spec.type == "item":
        default = "{}"
    return f"\"{spec.column}\" TEXT NOT NULL DEFAULT '{default}'"


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _timestamp_columns(spec: ResourceSpec) -> list[str]:
    if not any(f.opt_out for f in spec.fields.values()):
        return []
    return [*FLAG_TIMESTAMP_FIELDS.values(), ANY_FLAG_TIMESTAMP]


class Storage:
    """Owns the SQLite connection; every method is one short statement or one transaction."""

    def __init__(self, path: str, schema: Schema, pkeys: PKeyCodec) -> None:
        self.schema = schema
        self.pkeys = pkeys
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-65536")  # 64 MB: keeps index pages of a million rows hot
        self._counts: dict[str, int] = {}
        self.create_tables()

    # --- DDL ---------------------------------------------------------------------------------------------

    def create_tables(self) -> None:
        for spec in self.schema.resources.values():
            self._create_resource_table(spec)
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS subscription (
                id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, service_id INTEGER NOT NULL,
                created TEXT NOT NULL, UNIQUE (profile_id, service_id));
            CREATE INDEX IF NOT EXISTS ix_subscription_service ON subscription (service_id);
            CREATE TABLE IF NOT EXISTS sub_history (
                id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, service_id INTEGER NOT NULL,
                action TEXT NOT NULL, date TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_sub_history_profile ON sub_history (profile_id);
            """
        )

    def _create_resource_table(self, spec: ResourceSpec) -> None:
        table = table_name(spec.name)
        columns = ["id INTEGER PRIMARY KEY", "created TEXT NOT NULL", '"lastModified" TEXT NOT NULL']
        columns += [_column_sql(f) for f in spec.fields.values() if f.stored]
        columns += [f"\"{name}\" TEXT NOT NULL DEFAULT ''" for name in _timestamp_columns(spec)]
        statements = [f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})"]
        statements.append(f'CREATE INDEX IF NOT EXISTS ix_{spec.name}_lastmodified ON {table} ("lastModified")')
        for f in spec.fields.values():
            if f.stored and (f.index or f.type == "link") and f.name != spec.custom_key:
                statements.append(f'CREATE INDEX IF NOT EXISTS ix_{spec.name}_{f.column} ON {table} ("{f.column}")')
        if spec.custom_key:
            statements.append(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{unique_index_name(spec)}" ON {table} ("{spec.custom_key}") '
                f"WHERE \"{spec.custom_key}\" != ''"
            )
        for statement in statements:
            self.db.execute(statement)

    def reset(self) -> None:
        for spec in self.schema.resources.values():
            self.db.execute(f"DROP TABLE IF EXISTS {table_name(spec.name)}")
        self.db.execute("DROP TABLE IF EXISTS subscription")
        self.db.execute("DROP TABLE IF EXISTS sub_history")
        self._counts.clear()
        self.create_tables()

    # --- rows ----------------------------------------------------------------------------------------------

    def visibility(self, spec: ResourceSpec) -> list[str]:
        """Children on a "1 cardinality" link stay hidden until their parent exists (§2.5, I1)."""
        return [
            f't."{link.column}" IN (SELECT id FROM {table_name(str(link.target))})' for link in spec.mandatory_links()
        ]

    def get(self, spec: ResourceSpec, row_id: int, *, include_hidden: bool = False) -> Row | None:
        conditions = ["t.id = ?", *([] if include_hidden else self.visibility(spec))]
        sql = f"SELECT t.* FROM {table_name(spec.name)} t WHERE {' AND '.join(conditions)}"
        row = self.db.execute(sql, (row_id,)).fetchone()
        return dict(row) if row is not None else None

    def find_by_key(self, spec: ResourceSpec, value: str) -> int | None:
        if not spec.custom_key or value == "":
            return None
        sql = f'SELECT id FROM {table_name(spec.name)} WHERE "{spec.custom_key}" = ? AND "{spec.custom_key}" != \'\''
        row = self.db.execute(sql, (value,)).fetchone()
        return int(row[0]) if row is not None else None

    def exists(self, spec: ResourceSpec, row_id: int) -> bool:
        return self.db.execute(f"SELECT 1 FROM {table_name(spec.name)} WHERE id = ?", (row_id,)).fetchone() is not None

    def insert(self, spec: ResourceSpec, values: Row) -> int:
        names = list(values)
        sql = f"INSERT INTO {table_name(spec.name)} ({_quoted(names)}) VALUES ({', '.join('?' for _ in names)})"
        try:
            cursor = self.db.execute(sql, [values[n] for n in names])
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(unique_index_name(spec)) from exc
        self._counts.pop(spec.name, None)
        return int(cursor.lastrowid or 0)

    def insert_many(self, spec: ResourceSpec, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        sql = f"INSERT INTO {table_name(spec.name)} ({_quoted(names)}) VALUES ({', '.join('?' for _ in names)})"
        self.db.execute("BEGIN")
        try:
            self.db.executemany(sql, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self._counts.pop(spec.name, None)

    def update(self, spec: ResourceSpec, row_id: int, values: Row) -> None:
        if not values:
            return
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        try:
            self.db.execute(
                f"UPDATE {table_name(spec.name)} SET {assignments} WHERE id = ?", [*values.values(), row_id]
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(unique_index_name(spec)) from exc

    def delete(self, spec: ResourceSpec, row_id: int) -> None:
        self.db.execute(f"DELETE FROM {table_name(spec.name)} WHERE id = ?", (row_id,))
        if spec.name == "profile":
            self.db.execute("DELETE FROM subscription WHERE profile_id = ?", (row_id,))
        elif spec.name == "service":
            self.db.execute("DELETE FROM subscription WHERE service_id = ?", (row_id,))
        self._counts.pop(spec.name, None)

    # --- lists ---------------------------------------------------------------------------------------------

    def select(self, spec: ResourceSpec, query: Query) -> list[Row]:
        """Up to ``query.limit`` rows in keyset order, starting at ``query.after`` (inclusive)."""
        conditions = [*self.visibility(spec), *query.conditions]
        params = list(query.params)
        column = f't."{query.order_column}"' if query.order_column != "id" else "t.id"
        if query.after is not None:
            comparison = "<=" if query.descending else ">="
            if query.order_column == "id":
                conditions.append(f"t.id {comparison} ?")
                params.append(query.after[1])
            else:
                conditions.append(f"({column}, t.id) {comparison} (?, ?)")
                params += query.after
        direction = "DESC" if query.descending else "ASC"
        order = f"t.id {direction}" if query.order_column == "id" else f"{column} {direction}, t.id {direction}"
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT t.* FROM {table_name(spec.name)} t {where} ORDER BY {order} LIMIT ?"
        return [dict(row) for row in self.db.execute(sql, [*params, query.limit])]

    def count(self, spec: ResourceSpec, conditions: Sequence[str] = (), params: Sequence[Any] = ()) -> int:
        where_parts = [*self.visibility(spec), *conditions]
        where = f"WHERE {' AND '.join(where_parts)}" if where_parts else ""
        row = self.db.execute(f"SELECT COUNT(*) FROM {table_name(spec.name)} t {where}", list(params)).fetchone()
        return int(row[0])

    def table_size(self, spec: ResourceSpec) -> int:
        """Rows in the table (cached between writes): what the big-table threshold is compared with."""
        if spec.name not in self._counts:
            row = self.db.execute(f"SELECT COUNT(*) FROM {table_name(spec.name)}").fetchone()
            self._counts[spec.name] = int(row[0])
        return self._counts[spec.name]

    def stats(self) -> dict[str, int]:
        sizes = {name: self.table_size(spec) for name, spec in self.schema.resources.items()}
        sizes["subscription"] = int(self.db.execute("SELECT COUNT(*) FROM subscription").fetchone()[0])
        return sizes

    # --- subscriptions --------------------------------------------------------------------------------------

    def subscribe(self, profile_id: int, service_id: int, created: str) -> int:
        try:
            cursor = self.db.execute(
                "INSERT INTO subscription (profile_id, service_id, created) VALUES (?, ?, ?)",
                (profile_id, service_id, created),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey("nmssubscription_id") from exc
        self._record_history(profile_id, service_id, "subscription", created)
        return int(cursor.lastrowid or 0)

    def _record_history(self, profile_id: int, service_id: int, action: str, date: str) -> None:
        # Subscribing and unsubscribing write subscription history (subHisto) in ACS (§5).
        self.db.execute(
            "INSERT INTO sub_history (profile_id, service_id, action, date) VALUES (?, ?, ?, ?)",
            (profile_id, service_id, action, date),
        )

    def subscription_history(self, profile_id: int) -> list[Row]:
        rows = self.db.execute("SELECT * FROM sub_history WHERE profile_id = ? ORDER BY id", (profile_id,))
        return [dict(row) for row in rows]

    def get_history_event(self, event_id: int) -> Row | None:
        row = self.db.execute("SELECT * FROM sub_history WHERE id = ?", (event_id,)).fetchone()
        return dict(row) if row is not None else None

    def subscriptions(self, *, profile_id: int | None = None, service_id: int | None = None) -> list[Row]:
        column, value = ("profile_id", profile_id) if profile_id is not None else ("service_id", service_id)
        rows = self.db.execute(f"SELECT * FROM subscription WHERE {column} = ? ORDER BY id", (value,))
        return [dict(row) for row in rows]

    def get_subscription(self, sub_id: int) -> Row | None:
        row = self.db.execute("SELECT * FROM subscription WHERE id = ?", (sub_id,)).fetchone()
        return dict(row) if row is not None else None

    def unsubscribe(self, sub_id: int, date: str) -> None:
        sub = self.get_subscription(sub_id)
        self.db.execute("DELETE FROM subscription WHERE id = ?", (sub_id,))
        if sub is not None:
            self._record_history(int(sub["profile_id"]), int(sub["service_id"]), "unsubscription", date)

    # --- for the events package ----------------------------------------------------------------------------

    def delivery_targets(
        self, *, count: int | None = None, pkeys: Sequence[str] | None = None, seed: int = 0
    ) -> list[DeliveryTarget]:
        """Profiles a delivery can target: with an email, not opted out of email (§5, S3)."""
        spec = self.schema.resources["profile"]
        eligible = "email != '' AND blackList = 0 AND blackListEmail = 0"
        if pkeys is not None:
            ids = [i for i in (self.pkeys.decode("profile", p) for p in pkeys) if i is not None]
            rows = self._rows_by_ids(ids, eligible)
            by_id = {int(r["id"]): r for r in rows}
            chosen = [by_id[i] for i in ids if i in by_id]
        else:
            chosen = self._random_rows(count if count is not None else 100, eligible, seed)
        return [
            DeliveryTarget(
                pkey=self.pkeys.encode(spec.name, int(r["id"])),
                external_id=str(r["externalId"]) or None,
                email=str(r["email"]),
            )
            for r in chosen
        ]

    def _rows_by_ids(self, ids: Sequence[int], condition: str) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = (
                f"SELECT id, email, externalId FROM r_profile WHERE {condition} "
                f"AND id IN ({', '.join('?' for _ in chunk)})"
            )
            rows += [dict(row) for row in self.db.execute(sql, chunk)]
        return rows

    def _random_rows(self, count: int, condition: str, seed: int) -> list[Row]:
        top = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM r_profile").fetchone()[0])
        eligible_total = int(self.db.execute(f"SELECT COUNT(*) FROM r_profile WHERE {condition}").fetchone()[0])
        wanted = min(count, eligible_total)
        rng = random.Random(seed)
        picked: dict[int, Row] = {}
        while len(picked) < wanted:
            # Sample ids directly (cheap on a million rows); gaps and ineligible rows are simply redrawn.
            candidates = {rng.randint(1, top) for _ in range(max(2 * (wanted - len(picked)), 16))} - set(picked)
            for row in self._rows_by_ids(sorted(candidates), condition):
                if len(picked) < wanted:
                    picked[int(row["id"])] = row
        return [picked[i] for i in sorted(picked)]
