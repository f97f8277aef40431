"""The unit of writing: a :class:`Batch` collects everything one batch of a flow changes, checkpoint included.

``StateStore.commit(batch)`` writes it in one transaction, so after a crash the store holds either all of a batch
with its new checkpoint or none of it. A batch is filled in memory only; building one never touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from crmbridge.state.rows import (
    ConflictRecord,
    DeadLetter,
    Flow,
    LedgerEntry,
    LinkRow,
    OptOutState,
    OptOutWrite,
    ParkedChild,
    UnmatchedEvent,
)

__all__ = ["Batch", "CheckpointUpdate"]


@dataclass(frozen=True, slots=True)
class CheckpointUpdate:
    """The checkpoint a batch moves to.

    ``complete=True``: ``value`` is a resumable position (delta link, journal position, file#line, watermark) and any
    in-flight sub-checkpoint is cleared. ``complete=False``: ``value`` is the nextLink of a read still in progress,
    kept beside the last complete value.
    """

    value: str
    complete: bool
    config_fingerprint: str | None


@dataclass(slots=True)
class Batch:
    """Everything one batch of ``flow``/``scope`` writes to the state store, committed all together or not at all."""

    flow: Flow
    scope: str
    links_upserted: list[LinkRow] = field(default_factory=list)
    links_deleted: list[tuple[str, str, datetime]] = field(default_factory=list)  # mapping, source id, when
    children_parked: list[ParkedChild] = field(default_factory=list)
    children_unparked: list[tuple[str, str]] = field(default_factory=list)  # mapping, source id
    ledger_entries: list[LedgerEntry] = field(default_factory=list)
    unmatched: list[UnmatchedEvent] = field(default_factory=list)
    unmatched_resolved: list[str] = field(default_factory=list)  # event keys
    dead_letters: list[DeadLetter] = field(default_factory=list)
    optout_states: list[OptOutState] = field(default_factory=list)
    optout_writes: list[OptOutWrite] = field(default_factory=list)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    checkpoint: CheckpointUpdate | None = None

    def upsert_links(self, rows: Iterable[LinkRow]) -> None:
        """Record rows the target acknowledged (created or updated), with the hash of the values written."""
        self.links_upserted.extend(rows)

    def mark_deleted(self, mapping: str, source_ids: Iterable[str], at: datetime) -> None:
        """Record that these source rows were deleted in the target (tombstones, or absent after a re-baseline)."""
        self.links_deleted.extend((mapping, source_id, at) for source_id in source_ids)

    def park(self, child: ParkedChild) -> None:
        """Park a child whose parent is not synced yet; parking it again counts one more attempt."""
        self.children_parked.append(child)

    def unpark(self, mapping: str, source_id: str) -> None:
        """Remove a parked child (written once its parent landed, or given up and dead-lettered)."""
        self.children_unparked.append((mapping, source_id))

    def record_events(self, entries: Iterable[LedgerEntry]) -> None:
        """Record events written to Dynamics; an event already in the ledger is kept as first written."""
        self.ledger_entries.extend(entries)

    def keep_unmatched(self, event: UnmatchedEvent) -> None:
        """Keep an event whose contact could not be found; seeing it again counts one more attempt."""
        self.unmatched.append(event)

    def resolve_unmatched(self, event_keys: Iterable[str]) -> None:
        self.unmatched_resolved.extend(event_keys)

    def dead_letter(self, letter: DeadLetter) -> None:
        """Park a refused record; if the same record already has a dead letter, that one is updated and reopened."""
        self.dead_letters.append(letter)

    def set_optout_state(self, state: OptOutState) -> None:
        self.optout_states.append(state)

    def log_optout_write(self, write: OptOutWrite) -> None:
        self.optout_writes.append(write)

    def log_conflict(self, conflict: ConflictRecord) -> None:
        self.conflicts.append(conflict)

    def advance_to(self, value: str, *, config_fingerprint: str | None = None) -> None:
        """Move the checkpoint to a complete position; clears the in-flight nextLink."""
        self._set_checkpoint(CheckpointUpdate(value, complete=True, config_fingerprint=config_fingerprint))

    def advance_in_flight(self, next_link: str, *, config_fingerprint: str | None = None) -> None:
        """Store the nextLink of a read in progress; a read under another fingerprint invalidates the old value."""
        self._set_checkpoint(CheckpointUpdate(next_link, complete=False, config_fingerprint=config_fingerprint))

    def _set_checkpoint(self, update: CheckpointUpdate) -> None:
        if self.checkpoint is not None:
            raise ValueError("a batch moves its checkpoint once; commit this batch and start another")
        self.checkpoint = update

    @property
    def is_empty(self) -> bool:
        return self.checkpoint is None and not any(
            (
                self.links_upserted,
                self.links_deleted,
                self.children_parked,
                self.children_unparked,
                self.ledger_entries,
                self.unmatched,
                self.unmatched_resolved,
                self.dead_letters,
                self.optout_states,
                self.optout_writes,
                self.conflicts,
            )
        )
