"""Maps an I/O Events journal event to an :class:`~crmbridge.records.EmailEvent` through a configurable mapping.

The ACS payload on I/O Events is not public (adobe-io-events-and-exports.md §B): which dotted path holds which
field, and which CloudEvent ``type`` means send/open/click/bounce, come from configuration. Pure functions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmbridge.records import EMAIL_EVENT_TEXT_FIELDS, EmailEvent, EventSourceKind, EventType

if TYPE_CHECKING:
    from crmbridge.config.events import JournalSource

__all__ = ["PayloadMapping", "UnmappedEvent", "map_event", "value_at"]

# Last segment of a reverse-DNS event code, e.g. "com.adobe.….email.open" or "….opened" (inferred fallback).
_TYPE_WORDS = {
    "send": EventType.SEND,
    "sent": EventType.SEND,
    "open": EventType.OPEN,
    "opened": EventType.OPEN,
    "click": EventType.CLICK,
    "clicked": EventType.CLICK,
    "bounce": EventType.BOUNCE,
    "bounced": EventType.BOUNCE,
}


@dataclass(frozen=True, slots=True)
class PayloadMapping:
    """EmailEvent field -> dotted path in the journal event; event codes -> event types."""

    fields: Mapping[str, str]
    event_codes: Mapping[str, EventType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for required in ("event_type", "occurred_at"):
            if required not in self.fields:
                raise ValueError(f"the payload mapping must map {required}")

    @classmethod
    def from_settings(cls, journal: JournalSource) -> PayloadMapping:
        return cls(dict(journal.payload_mapping), dict(journal.event_codes))


@dataclass(frozen=True, slots=True)
class UnmappedEvent:
    """A journal event that could not become an EmailEvent: reported with its position, never dropped silently."""

    position: str
    reason: str
    raw: Any = None


def value_at(document: Any, path: str) -> Any:
    """The value at a dotted path (``data.profile.externalId``); None when any step is missing."""
    current = document
    for part in _steps(path):
        # A plain dict (what JSON parsing gives) skips the costlier ABC check; every event reads ~10 paths.
        if not (type(current) is dict or isinstance(current, Mapping)) or part not in current:
            return None
        current = current[part]
    return current


@functools.lru_cache(maxsize=256)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def map_event(event: Any, position: str, mapping: PayloadMapping) -> EmailEvent | UnmappedEvent:
    if not isinstance(event, Mapping):
        return UnmappedEvent(position, "the journal entry has no event object", event)
    raw_type = value_at(event, mapping.fields["event_type"])
    event_type = _event_type(raw_type, mapping.event_codes)
    if event_type is None:
        return UnmappedEvent(position, f"unknown event type {raw_type!r}: add it to event_codes", event)
    occurred = _datetime(value_at(event, mapping.fields["occurred_at"]))
    if occurred is None:
        return UnmappedEvent(position, f"no readable time at {mapping.fields['occurred_at']!r}", event)
    texts = {
        name: _text(value_at(event, path)) for name, path in mapping.fields.items() if name in EMAIL_EVENT_TEXT_FIELDS
    }
    if texts.get("bounce_type"):
        texts["bounce_type"] = str(texts["bounce_type"]).lower()  # EmailEvent holds hard / soft / ignored
    return EmailEvent(
        event_type=event_type,
        occurred_at=occurred,
        source_kind=EventSourceKind.IO_EVENTS,
        source_event_id=_event_id(event, mapping) or position,
        source_position=position,
        raw=dict(event),
        **texts,
    )


def _event_id(event: Mapping[str, Any], mapping: PayloadMapping) -> str | None:
    path = mapping.fields.get("source_event_id")
    candidates = [value_at(event, path)] if path else []
    # §A.9: the new name first, then the deprecated one (removal planned by the end of 2026), then the CloudEvent id
    candidates += [event.get("eventid"), event.get("event_id"), event.get("id")]
    return next((str(value) for value in candidates if value), None)


def _event_type(raw: Any, codes: Mapping[str, EventType]) -> EventType | None:
    if not isinstance(raw, str) or not raw:
        return None
    if raw in codes:
        return codes[raw]
    return _TYPE_WORDS.get(raw.rsplit(".", 1)[-1].lower())


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range by its zone
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
