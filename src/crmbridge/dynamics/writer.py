"""Writing Dataverse rows: create, update, upsert (by id or alternate key), delete (§5) and the bulk actions
``CreateMultiple``/``UpdateMultiple``/``UpsertMultiple`` (§5.4), each bulk call split until a bad record stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from crmbridge.dynamics.errors import RequestKind
from crmbridge.dynamics.odata import format_key
from crmbridge.dynamics.reader import TableRef
from crmbridge.dynamics.results import WriteResult, run_chunks, split_until_alone
from crmbridge.dynamics.session import DataverseSession
from crmbridge.exceptions import ProtocolError, RecordError

__all__ = ["MAX_BULK_SIZE", "DataverseWriter", "RowKey", "key_text", "unusable_key_error"]

RowKey = str | Mapping[str, Any]  # a primary-key GUID, or alternate-key column -> value
Values = Mapping[str, Any]
MAX_BULK_SIZE = 1000  # Microsoft's suggested starting point per bulk request (§5.4)
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")
# Alternate-key values with these characters cannot be used in a URL, hence not for GET/PATCH/upsert (§5.4, S19).
_URL_UNSAFE_KEY_CHARACTERS = frozenset("/<>*%&:\\?+")


def unusable_key_error(key: RowKey) -> RecordError | None:
    """A RecordError when an alternate-key value cannot address a row through the Web API, else None."""
    if isinstance(key, str):
        return None
    for name, value in key.items():
        if isinstance(value, str) and _URL_UNSAFE_KEY_CHARACTERS.intersection(value):
            return RecordError(
                f"alternate key {name}={value!r} contains one of / < > * % & : \\ ? +, which Dataverse cannot "
                "take in a URL: address this row by its id or by another key",
                record_key=key_text(key),
            )
    return None


def key_text(key: RowKey) -> str:
    """A readable record key for errors and dead letters."""
    if isinstance(key, str):
        return key
    return ",".join(f"{name}={value}" for name, value in key.items())


def _id_from_entity_url(url: str | None) -> str | None:
    match = _ENTITY_ID.search(url or "")
    return match.group(1).lower() if match else None


class DataverseWriter:
    """Single and bulk writes against one org. Bulk chunks run concurrently, bounded by the session's limiter."""

    def __init__(self, session: DataverseSession, *, bulk_size: int = MAX_BULK_SIZE) -> None:
        if not 1 <= bulk_size <= MAX_BULK_SIZE:
            raise ValueError(f"bulk_size must be between 1 and {MAX_BULK_SIZE}")
        self._session = session
        self._bulk_size = bulk_size

    async def create(self, entity_set: str, values: Values, *, record_key: str | None = None) -> str:
        """POST a new row; returns its id (from ``OData-EntityId``). Not idempotent: never repeated blindly."""
        response = await self._session.send(
            "POST", entity_set, kind=RequestKind.WRITE, idempotent=False, payload=dict(values), record_key=record_key
        )
        row_id = _id_from_entity_url(response.headers.get("OData-EntityId") or response.headers.get("Location"))
        if row_id is None:
            raise ProtocolError(f"Dataverse created a {entity_set} row without saying its id (no OData-EntityId)")
        return row_id

    async def update(self, entity_set: str, key: RowKey, values: Values) -> None:
        """PATCH with ``If-Match: *``: update only; a missing row is a RecordError (404)."""
        await self._session.send(
            "PATCH",
            f"{entity_set}{format_key(key)}",
            kind=RequestKind.WRITE,
            idempotent=True,
            payload=dict(values),
            headers={"If-Match": "*"},
            record_key=key_text(key),
        )

    async def upsert(self, entity_set: str, key: RowKey, values: Values) -> None:
        """PATCH without ``If-Match``: creates the row when missing, updates it otherwise (idempotent)."""
        unusable = unusable_key_error(key)
        if unusable is not None:
            raise unusable
        await self._session.send(
            "PATCH",
            f"{entity_set}{format_key(key)}",
            kind=RequestKind.WRITE,
            idempotent=True,
            payload=dict(values),
            record_key=key_text(key),
        )

    async def delete(self, entity_set: str, key: RowKey) -> bool:
        """DELETE a row; False when it was already gone (so a replayed delete is not an error)."""
        try:
            path = f"{entity_set}{format_key(key)}"
            await self._session.send("DELETE", path, kind=RequestKind.WRITE, idempotent=True, record_key=key_text(key))
        except RecordError as error:
            if error.details is not None and error.details.status == 404:
                return False
            raise
        return True

    async def create_multiple(self, table: TableRef, rows: Sequence[Values]) -> list[WriteResult]:
        """``CreateMultiple``: one result per input row, in input order, with the new ids."""

        async def call(chunk: Sequence[tuple[int, Values]]) -> list[WriteResult]:
            targets = [_target(table, values) for _, values in chunk]
            response = await self._bulk_action(table, "CreateMultiple", targets, idempotent=False)
            ids = response.get("Ids") if isinstance(response, dict) else None
            if not isinstance(ids, list) or len(ids) != len(chunk):
                raise ProtocolError(f"CreateMultiple on {table.entity_set} returned {ids!r} for {len(chunk)} rows")
            return [WriteResult(index=index, id=str(row_id)) for (index, _), row_id in zip(chunk, ids, strict=True)]

        return await self._in_chunks(list(enumerate(rows)), call)

    async def update_multiple(self, table: TableRef, rows: Sequence[Values]) -> list[WriteResult]:
        """``UpdateMultiple``: every row carries its primary id column."""
        for values in rows:
            if table.primary_id not in values:
                raise ValueError(f"update_multiple needs {table.primary_id} in every {table.logical_name} row")

        async def call(chunk: Sequence[tuple[int, Values]]) -> list[WriteResult]:
            await self._bulk_action(table, "UpdateMultiple", [_target(table, v) for _, v in chunk], idempotent=True)
            return [WriteResult(index=index, id=str(values[table.primary_id])) for index, values in chunk]

        return await self._in_chunks(list(enumerate(rows)), call)

    async def upsert_multiple(self, table: TableRef, rows: Sequence[tuple[RowKey, Values]]) -> list[WriteResult]:
        """``UpsertMultiple``: each row addressed by its primary id or an alternate key (§5.4, as the Python SDK)."""

        async def call(chunk: Sequence[tuple[int, tuple[RowKey, Values]]]) -> list[WriteResult]:
            targets = [_upsert_target(table, key, values) for _, (key, values) in chunk]
            await self._bulk_action(table, "UpsertMultiple", targets, idempotent=True)
            return [WriteResult(index=i, id=key if isinstance(key, str) else None) for i, (key, _) in chunk]

        refused = [(i, unusable_key_error(key)) for i, (key, _) in enumerate(rows)]
        results = [WriteResult(index=i, error=error) for i, error in refused if error is not None]
        sendable = [(i, row) for (i, row), (_, error) in zip(enumerate(rows), refused, strict=True) if error is None]
        results += await self._in_chunks(sendable, call)
        return sorted(results, key=lambda result: result.index)

    async def _bulk_action(
        self, table: TableRef, action: str, targets: list[dict[str, Any]], *, idempotent: bool
    ) -> Any:
        response = await self._session.send(
            "POST",
            f"{table.entity_set}/Microsoft.Dynamics.CRM.{action}",
            kind=RequestKind.WRITE,
            idempotent=idempotent,
            payload={"Targets": targets},
        )
        return response.json() if response.content else None

    async def _in_chunks(
        self,
        items: list[tuple[int, Any]],
        call: Callable[[Sequence[tuple[int, Any]]], Awaitable[list[WriteResult]]],
    ) -> list[WriteResult]:
        results: list[WriteResult] = []

        async def run(chunk: list[tuple[int, Any]]) -> None:
            results.extend(await split_until_alone(chunk, call))

        chunks = [items[start : start + self._bulk_size] for start in range(0, len(items), self._bulk_size)]
        await run_chunks(chunks, run, self._session.max_parallel)
        return sorted(results, key=lambda result: result.index)


def _target(table: TableRef, values: Values) -> dict[str, Any]:
    return {**values, "@odata.type": f"Microsoft.Dynamics.CRM.{table.logical_name}"}


def _upsert_target(table: TableRef, key: RowKey, values: Values) -> dict[str, Any]:
    target = _target(table, values)
    if isinstance(key, str):
        target[table.primary_id] = key
    else:
        # The key columns stay out of the body; the reference names the row (§5.4, Python SDK).
        target["@odata.id"] = f"{table.entity_set}{format_key(key)}"
    return target
