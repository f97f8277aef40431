"""Read helpers shared by the store's methods: chunking of IN lists, row-to-value conversion, roll-ups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmbridge.records import EventType
from crmbridge.state import schema
from crmbridge.state.rows import ContactRollup, LinkRow, OptOutState, ParkedChild

__all__ = ["IN_CHUNK", "chunked", "contact_rollups", "link_from_row", "optout_from_row", "parked_from_row"]

# Bound parameters per IN list: far below SQLite's limit (32,766) and PostgreSQL's (65,535), and large enough
# that 5,000 ids cost ten round trips.
IN_CHUNK = 500


_T = TypeVar("_T")


def chunked(values: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def link_from_row(row: Any) -> LinkRow:
    return LinkRow(
        mapping=row.mapping,
        source_id=row.source_id,
        target_key=row.target_key,
        values_hash=row.values_hash,
        synced_at=row.synced_at,
        parent_keys=row.parent_keys,
        deleted_at=row.deleted_at,
    )


def parked_from_row(row: Any) -> ParkedChild:
    return ParkedChild(
        mapping=row.mapping,
        source_id=row.source_id,
        parent_mapping=row.parent_mapping,
        parent_id=row.parent_id,
        payload=row.payload,
        parked_at=row.parked_at,
        next_try_at=row.next_try_at,
        attempts=row.attempts,
    )


def optout_from_row(row: Any) -> OptOutState:
    return OptOutState(
        contact_id=row.contact_id,
        pair=row.pair,
        base_value=row.base_value,
        dynamics_value=row.dynamics_value,
        dynamics_seen_at=row.dynamics_seen_at,
        campaign_value=row.campaign_value,
        campaign_seen_at=row.campaign_seen_at,
        updated_at=row.updated_at,
    )


_LAST_FIELD = {
    EventType.SEND: "last_sent",
    EventType.OPEN: "last_opened",
    EventType.CLICK: "last_clicked",
    EventType.BOUNCE: "last_bounced",
}
_COUNT_FIELD = {
    EventType.SEND: "sends",
    EventType.OPEN: "opens",
    EventType.CLICK: "clicks",
    EventType.BOUNCE: "bounces",
}


def contact_rollups(connection: Connection, contact_ids: Iterable[str]) -> dict[str, ContactRollup]:
    """Aggregate the ledger per contact and event type; the result depends only on which events were written."""
    ledger = schema.event_ledger
    hard = sa.func.max(sa.case((ledger.c.bounce_type == "hard", 1), else_=0))
    fields: dict[str, dict[str, Any]] = {}
    for chunk in chunked(contact_ids):
        query = (
            sa.select(
                ledger.c.contact_id, ledger.c.event_type, sa.func.max(ledger.c.occurred_at), sa.func.count(), hard
            )
            .where(ledger.c.contact_id.in_(chunk))
            .group_by(ledger.c.contact_id, ledger.c.event_type)
        )
        for contact_id, event_type, last, count, hard_bounce in connection.execute(query):
            values = fields.setdefault(contact_id, {})
            kind = EventType(event_type)
            values[_LAST_FIELD[kind]] = last  # max() keeps the column's type, so this is an aware UTC datetime
            values[_COUNT_FIELD[kind]] = int(count)
            values["hard_bounced"] = values.get("hard_bounced", False) or bool(hard_bounce)
    return {contact_id: ContactRollup(contact_id=contact_id, **values) for contact_id, values in fields.items()}
