"""The narrow shapes a flow needs from the outside world: a change feed to read and a record target to write.

Flows receive these instead of concrete clients, so the same flow runs against Dataverse and ACS, against a
dry-run planner, or against an in-memory fake in unit tests. Adapters in ``engine/adapters.py`` wrap the real
clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from crmbridge.exceptions import RecordError

if TYPE_CHECKING:
    from crmbridge.engine.activities import ActivityRow, TaskRow
from crmbridge.records import EmailEvent, SourceChange, Tombstone

__all__ = [
    "ActivitySink",
    "ChangeFeed",
    "ChangePage",
    "EventBatch",
    "EventFeed",
    "MissingContact",
    "ParentRef",
    "RecordTarget",
    "RejectedEvent",
    "RowLookup",
]


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


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event (or export row) that could not become an EmailEvent: kept with its reason, never dropped."""

    key: str  # source event id, or file:line
    reason: str
    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """A batch of email events and the position to store once they are written."""

    events: Sequence[EmailEvent]
    position: str  # opaque to the flow: journal cursor or export (file, line)
    rejected: Sequence[RejectedEvent] = ()
    caught_up: bool = False  # the source has nothing more right now
    lag: timedelta | None = None  # how far behind the source's head (journal retention is 7 days)
    repeats: int = 0  # copies the source itself already dropped (the journal consumer's event-id window)


class EventFeed(Protocol):
    """Email events from one source, resumable from a stored position."""

    def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[EventBatch]: ...


class MissingContact(RecordError):
    """The contact an event regards does not exist in Dynamics: the event is kept as unmatched."""


class ActivitySink(Protocol):
    """Dynamics writes of the events flow. Each call returns the rows it could not write, by id, with why."""

    async def upsert_activities(self, rows: Sequence[ActivityRow]) -> Mapping[str, RecordError]: ...

    async def upsert_tasks(self, rows: Sequence[TaskRow]) -> Mapping[str, RecordError]: ...

    async def update_contacts(self, values: Mapping[str, Mapping[str, Any]]) -> Mapping[str, RecordError]: ...
