"""Value types read from and written to the state store: plain frozen dataclasses, no SQL.

Flows build these and put them in a :class:`crmbridge.state.batch.Batch`; reads return them. Nothing here
touches a database, so flows and their tests can construct them freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Checkpoint",
    "ConflictRecord",
    "ContactRollup",
    "DeadLetter",
    "DeadLetterStatus",
    "Flow",
    "LedgerEntry",
    "LinkRow",
    "OptOutState",
    "OptOutWrite",
    "ParkedChild",
    "PurgeResult",
    "RunStatus",
    "ScopeSummary",
    "StateInfo",
    "UnmatchedEvent",
]

JsonValue = Any  # values that round-trip through JSON columns


class Flow(StrEnum):
    """The flows that keep state; a checkpoint, run or dead letter belongs to one of them."""

    TABLES = "tables"  # jobs 1 and 2: scope = mapping name
    EVENTS = "events"  # job 3: scope = event source (journal or export location)
    OPTOUTS = "optouts"  # job 4: scope = opt-out pair; the ACS lastModified watermark is its checkpoint


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    RETRYING = "retrying"
    DROPPED = "dropped"
    RESOLVED = "resolved"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a flow resumes: ``value`` is complete, ``in_flight`` the nextLink of a read not yet finished."""

    flow: Flow
    scope: str
    value: str | None
    in_flight: str | None
    config_fingerprint: str | None
    updated_at: datetime

    def is_bound_to(self, fingerprint: str) -> bool:
        """False when the mapping changed since this checkpoint was made (a delta link is bound to its $select)."""
        return self.config_fingerprint == fingerprint


def _reject_pkey(target_key: str) -> None:
    # ACS PKeys are opaque "@..." strings that differ between instances: persisting one breaks every link.
    if target_key.startswith("@"):
        raise ValueError(f"target_key {target_key!r} looks like an ACS PKey; store the business key instead")


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A source row synced to the target under ``target_key`` (a business key), with the hash of what was written."""

    mapping: str
    source_id: str
    target_key: str
    values_hash: str
    synced_at: datetime
    parent_keys: Mapping[str, str] | None = None  # link name -> parent's business key
    deleted_at: datetime | None = None

    def __post_init__(self) -> None:
        _reject_pkey(self.target_key)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class ParkedChild:
    """A child row waiting for its parent to be synced (orphans are never written)."""

    mapping: str
    source_id: str
    parent_mapping: str
    parent_id: str
    payload: Mapping[str, JsonValue]
    parked_at: datetime
    next_try_at: datetime
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An email event written to Dynamics: dedupe key and the facts roll-ups are computed from."""

    event_key: str
    source_key: str
    contact_id: str
    event_type: str  # crmbridge.records.EventType value
    occurred_at: datetime
    activity_id: str
    written_at: datetime
    bounce_type: str | None = None


@dataclass(frozen=True, slots=True)
class ContactRollup:
    """Roll-up values for one contact, computed from the ledger so replays and reordering give the same result."""

    contact_id: str
    last_sent: datetime | None = None
    last_opened: datetime | None = None
    last_clicked: datetime | None = None
    last_bounced: datetime | None = None
    sends: int = 0
    opens: int = 0
    clicks: int = 0
    bounces: int = 0
    hard_bounced: bool = False


@dataclass(frozen=True, slots=True)
class UnmatchedEvent:
    """An event whose profile has no usable externalId: kept, not lost silently."""

    event_key: str
    external_id: str | None
    email: str | None
    payload: Mapping[str, JsonValue] | None
    reason: str
    seen_at: datetime  # first and last seen when new; a later sighting or retry moves only last seen
    next_try_at: datetime | None = None  # when to look for the contact again; None: not retried
    attempts: int = 1  # as stored: sightings and retries so far
    first_seen: datetime | None = None  # as stored; None on an event not stored yet


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the target refused; ``id`` is None until stored."""

    flow: Flow
    mapping: str
    record_key: str
    payload: Mapping[str, JsonValue] | None
    error_class: str
    reason: str
    failed_at: datetime
    attempts: int = 1
    first_failed_at: datetime | None = None
    status: DeadLetterStatus = DeadLetterStatus.OPEN
    id: int | None = None
    closed_at: datetime | None = None  # when it was resolved or dropped
    close_reason: str | None = None  # why, e.g. "written by a later pass"


@dataclass(frozen=True, slots=True)
class OptOutState:
    """Per contact and pair: the base both sides agreed on, and the last value seen on each side."""

    contact_id: str
    pair: str
    base_value: bool | None
    dynamics_value: bool | None
    dynamics_seen_at: datetime | None
    campaign_value: bool | None
    campaign_seen_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OptOutWrite:
    """One line of the append-only opt-out audit log."""

    at: datetime
    contact_id: str
    pair: str
    side_written: str  # crmbridge.records.Side value
    old_value: bool | None
    new_value: bool
    reason: str
    rule: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Both sides changed an opt-out differently; the rule picked ``winner``."""

    at: datetime
    contact_id: str
    pair: str
    dynamics_value: bool
    dynamics_changed_at: datetime | None
    campaign_value: bool
    campaign_changed_at: datetime | None
    winner: str  # crmbridge.records.Side value
    rule: str
    resolved_value: bool


@dataclass(frozen=True, slots=True)
class PurgeResult:
    dead_letters_deleted: int
    dead_letter_payloads_cleared: int
    unmatched_deleted: int


@dataclass(frozen=True, slots=True)
class ScopeSummary:
    """What the store holds for one (flow, scope): the rows of ``crmbridge state info``."""

    flow: str
    scope: str
    checkpoint_updated_at: datetime | None = None
    in_flight: bool = False
    links: int = 0
    deleted: int = 0
    pending: int = 0
    dead_letters_open: int = 0
    conflicts: int = 0
    last_run_status: str | None = None
    last_run_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StateInfo:
    url: str  # password redacted
    backend: str
    schema_revision: str | None
    scopes: list[ScopeSummary] = field(default_factory=list)
    ledger_events: int = 0
    unmatched_events: int = 0
