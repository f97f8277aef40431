"""The narrow shapes a flow needs from the outside world: a change feed to read and a record target to write.

Flows receive these instead of concrete clients, so the same flow runs against Dataverse and ACS, against a
dry-run planner, or against an in-memory fake in unit tests. Adapters in ``engine/adapters.py`` wrap the real
clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crmbridge.records import SourceChange, Tombstone

__all__ = ["ChangeFeed", "ChangePage", "ParentRef", "RecordTarget", "RowLookup"]


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of a change-tracking read."""

    changes: Sequence[SourceChange | Tombstone]
    next_link: str | None  # where the read resumes after this page (None on the last page)
    delta_link: str | None  # set on the last page only: where the next incremental pass starts


class ChangeFeed(Protocol):
    """Changed rows of one source table: a full read (no delta link) or the changes since a delta link."""

    def read(
        self, *, columns: Sequence[str], delta_link: str | None, next_link: str | None
    ) -> AsyncIterator[ChangePage]: ...


class RowLookup(Protocol):
    """Current source rows by id (for dead-letter retries, which must never write a stale payload)."""

    async def fetch_rows(self, ids: Sequence[str], columns: Sequence[str]) -> dict[str, Mapping[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A link to the row synced from a parent mapping, by business key (PKeys are resolved at write time)."""

    resource: str
    key_field: str
    key: str


class RecordTarget(Protocol):
    """One Campaign resource, addressed by its business key."""

    async def upsert(
        self, key: str, values: Mapping[str, Any], *, known: bool, parents: Mapping[str, ParentRef]
    ) -> None:
        """Create or update the record with business key ``key``. ``known``: crmbridge wrote it before.

        Raises :class:`crmbridge.exceptions.RecordError` when the target refuses this record.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete the record with business key ``key``; a record that is already gone is not an error."""
        ...

    async def fetch(self, key: str) -> Mapping[str, Any] | None:
        """The record as the target holds it now, or None (dry-run diffs and reconcile)."""
        ...
