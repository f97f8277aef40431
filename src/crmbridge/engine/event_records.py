"""An email event as stored with its dead letter or unmatched row, and rebuilt from there for a retry. Pure.

An event is an immutable fact, so unlike a table row it may be written again from what was stored: the rebuilt
event has the same natural key, hence the same ``event_key`` and the same deterministic activity id, and writing
it again is an idempotent upsert. A payload that does not rebuild exactly the stored key (older, partial payloads;
payloads purged for retention) is not retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from crmbridge.records import EMAIL_EVENT_TEXT_FIELDS, EmailEvent, EventSourceKind, EventType

__all__ = ["event_from_payload", "event_payload", "next_unmatched_try"]

# Backoff of unmatched retries: the contact usually appears within minutes (a contacts pass), sometimes days later.
_FIRST_RETRY = timedelta(minutes=15)
_LONGEST_WAIT = timedelta(hours=12)


def event_payload(event: EmailEvent) -> dict[str, Any]:
    """Every field of ``event`` but the raw source record, as JSON values."""
    payload: dict[str, Any] = {
        "event_type": event.event_type.value,
        "occurred_at": event.occurred_at.isoformat(),
        "source_kind": event.source_kind.value,
    }
    payload.update({name: getattr(event, name) for name in ("source_event_id", "source_position")})
    payload.update({name: getattr(event, name) for name in EMAIL_EVENT_TEXT_FIELDS})
    return payload


def event_from_payload(payload: Mapping[str, Any] | None, event_key: str) -> EmailEvent | None:
    """The event stored as ``payload`` under ``event_key``, or None when the payload cannot rebuild that event."""
    if not payload:
        return None
    texts: dict[str, Any] = {name: _text(payload.get(name)) for name in EMAIL_EVENT_TEXT_FIELDS}
    try:
        event = EmailEvent(
            event_type=EventType(payload["event_type"]),
            occurred_at=datetime.fromisoformat(str(payload["occurred_at"])),
            source_kind=EventSourceKind(payload.get("source_kind") or EventSourceKind.IO_EVENTS.value),
            source_event_id=str(payload.get("source_event_id") or ""),
            source_position=str(payload.get("source_position") or ""),
            **texts,
        )
    except (KeyError, ValueError, TypeError):
        return None
    # Payloads written before every field was kept may miss part of the natural key: those are not rewritten.
    return event if event.event_key == event_key else None


def next_unmatched_try(first_seen: datetime, tries: int, now: datetime, retry_for: timedelta) -> datetime | None:
    """When to look for an unmatched event's contact again after ``tries`` looks; None once ``retry_for`` is over."""
    delay = min(_FIRST_RETRY * 2 ** min(tries, 16), _LONGEST_WAIT)
    due = now + delay
    return due if due <= first_seen + retry_for else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
