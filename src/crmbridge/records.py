"""The few value types that cross layers: a changed source row, a deletion, an email event, an opt-out change.

They are plain frozen dataclasses so the pure mapping and merge code can take and return them without I/O.
``EmailEvent`` follows the neutral event record proposed in shared/protocols/adobe-io-events-and-exports.md §D.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "EMAIL_EVENT_TEXT_FIELDS",
    "EVENT_NAMESPACE",
    "EmailEvent",
    "EventSourceKind",
    "EventType",
    "OptOutChange",
    "Side",
    "SourceChange",
    "Tombstone",
]

JsonValue = Any  # values decoded from JSON: str, int, float, bool, None, list, dict

# uuid5 namespace of crmbridge activity ids. Never change it: activity ids derived from it are persisted in
# Dataverse, and a replayed event must land on the same row forever.
EVENT_NAMESPACE = uuid.UUID("6f1c2b5e-4d0a-5c3e-9b1f-c7e8a2d4f601")


@dataclass(frozen=True, slots=True)
class SourceChange:
    """A row that was created or updated in the source table (one item of a Dataverse delta or full read)."""

    table: str
    id: str  # the row's primary id (a GUID for Dataverse)
    values: Mapping[str, JsonValue]  # column -> value, with annotations kept under their OData names


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A row that was deleted in the source (a Dataverse ``$deletedEntity``)."""

    table: str
    id: str


class EventType(StrEnum):
    SEND = "send"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"


class EventSourceKind(StrEnum):
    IO_EVENTS = "io_events"
    ACS_EXPORT = "acs_export"


def _iso_second(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# The optional text fields of EmailEvent, in declaration order: what a source may fill and a payload may store.
EMAIL_EVENT_TEXT_FIELDS = (
    "external_id",
    "email",
    "campaign_id",
    "campaign_label",
    "delivery_id",
    "delivery_label",
    "broadlog_id",
    "tracking_log_id",
    "url",
    "url_label",
    "url_type",
    "bounce_type",
    "bounce_reason",
    "mirror_page_url",
)


@dataclass(frozen=True, slots=True)
class EmailEvent:
    """One email event (send, open, click, bounce), whichever source delivered it.

    ``natural_key`` identifies the real-world event, so the same event read from the journal and from an
    export file yields the same key, the same ``event_key`` and the same Dataverse activity id.
    """

    event_type: EventType
    occurred_at: datetime  # timezone-aware, UTC
    source_kind: EventSourceKind
    source_event_id: str  # journal event id, or "broadlog:<id>:<status>" / "tracking:<id>" for exports
    source_position: str  # journal position, or "<file>#L<line>"
    external_id: str | None = None  # ACS profile externalId = Dynamics contactid
    email: str | None = None
    campaign_id: str | None = None
    campaign_label: str | None = None
    delivery_id: str | None = None
    delivery_label: str | None = None
    broadlog_id: str | None = None
    tracking_log_id: str | None = None
    url: str | None = None
    url_label: str | None = None
    url_type: str | None = None
    bounce_type: str | None = None  # "hard", "soft", "ignored"
    bounce_reason: str | None = None
    mirror_page_url: str | None = None
    raw: Mapping[str, JsonValue] = field(default_factory=dict, compare=False, hash=False)
    # The flow asks for the key several times per event (dedupe, ledger, ids, tasks): hashed once, at creation.
    _event_key: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("EmailEvent.occurred_at must be timezone-aware")
        digest = hashlib.sha256(json.dumps(self.natural_key, separators=(",", ":")).encode()).hexdigest()
        object.__setattr__(self, "_event_key", f"sha256:{digest}")

    @property
    def natural_key(self) -> tuple[str, ...]:
        """The §D natural key: (type, broadlog) for send/bounce; + second and URL for open/click."""
        kind = self.event_type.value
        if self.broadlog_id:
            if self.event_type in (EventType.SEND, EventType.BOUNCE):
                return (kind, self.broadlog_id)
            return (kind, self.broadlog_id, _iso_second(self.occurred_at), self.url or "")
        if self.delivery_id and self.external_id:
            return (kind, self.delivery_id, self.external_id, _iso_minute(self.occurred_at))
        return ("source", self.source_kind.value, self.source_event_id)

    @property
    def event_key(self) -> str:
        """Cross-source idempotency key: a hash of the natural key."""
        return self._event_key

    @property
    def source_key(self) -> str:
        """Within-source dedupe key: a hash of the source kind and the source's own event id."""
        text = f"{self.source_kind.value}\x1f{self.source_event_id}"
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def activity_id(self) -> uuid.UUID:
        """Deterministic Dataverse activity id: the same event always upserts the same row."""
        return uuid.uuid5(EVENT_NAMESPACE, self.event_key)


class Side(StrEnum):
    DYNAMICS = "dynamics"
    CAMPAIGN = "campaign"


@dataclass(frozen=True, slots=True)
class OptOutChange:
    """An opt-out flag value observed on one side, with the time that side says it changed."""

    side: Side
    contact_id: str  # Dynamics contactid = ACS externalId
    field: str  # the side's own field name, e.g. "donotbulkemail" or "blackListEmail"
    value: bool
    changed_at: datetime | None  # per-flag timestamp where the side has one, else the row's modified time
