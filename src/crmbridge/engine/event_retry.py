"""Events written again: unmatched events once their contact may exist, and dead letters an operator retries.

Both rebuild the event from what was stored with it (an event never changes, see event_records.py) and write it
through the events flow's own path under its deterministic activity id, so a retry is an idempotent upsert, the
ledger and roll-ups move as in a pass, and the commit that records the write closes the letter or unmatched row.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from crmbridge.engine.activities import TaskRow
from crmbridge.engine.event_records import event_from_payload, next_unmatched_try
from crmbridge.engine.ports import EventBatch
from crmbridge.records import EVENT_NAMESPACE, EmailEvent
from crmbridge.state import Batch, DeadLetter, DeadLetterStatus, Flow, UnmatchedEvent

if TYPE_CHECKING:
    from crmbridge.engine.events import EventsFlow, EventStats

__all__ = ["NO_EVENTS", "LetterOutcome", "retry_event_letters", "retry_unmatched"]

_TASK_PREFIX = "task:"


class _NoEvents:
    """The feed of an events flow built only to write retries: it never reads."""

    async def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[EventBatch]:
        return
        yield  # an async generator with nothing to give


NO_EVENTS = _NoEvents()


@dataclass(frozen=True, slots=True)
class LetterOutcome:
    outcome: str  # resolved | failed | unmatched | skipped
    detail: str


async def retry_unmatched(flow: EventsFlow, stats: EventStats, *, limit: int = 1000) -> None:
    """Write the unmatched events whose next try is due; the rest waits longer, until ``unmatched_retry_for``."""
    now = flow.clock()
    due = {row.event_key: row for row in flow.store.unmatched_due(now, limit=limit)}
    if not due:
        return
    from crmbridge.engine.events import EventStats  # the flow module imports this one: imported when used

    batch = Batch(Flow.EVENTS, flow.scope)
    events: list[EmailEvent] = []
    for key, row in due.items():
        event = event_from_payload(row.payload, key)
        if event is None or not event.external_id:
            batch.keep_unmatched(_rescheduled(row, None, "its stored payload cannot be written again"))
        else:
            events.append(event)
    already = flow.store.ledger_contains(e.event_key for e in events)
    batch.resolve_unmatched(already)  # written meanwhile from another source
    events = [e for e in events if e.event_key not in already]
    retried = EventStats(flow.scope)
    written = {entry.event_key for entry in await flow.write_events(events, batch, retried)}
    failed = {letter.record_key for letter in batch.dead_letters}
    batch.resolve_unmatched(failed)  # refused for another reason: now a dead letter an operator can retry
    # Still no contact: the flow kept it as unmatched again; look again later, with a longer wait each time.
    batch.unmatched = [
        _rescheduled(due[u.event_key], _next_try(flow, due[u.event_key]), u.reason) if u.event_key in due else u
        for u in batch.unmatched
        if u.event_key not in written
    ]
    flow.store.commit(batch)
    stats.unmatched_retried += len(due)
    stats.unmatched_matched += len(written)
    stats.written += retried.written
    stats.failed += retried.failed
    stats.tasks += retried.tasks
    stats.rollups += retried.rollups
    for kind, count in retried.by_type.items():
        stats.by_type[kind] = stats.by_type.get(kind, 0) + count


def _next_try(flow: EventsFlow, row: UnmatchedEvent) -> datetime | None:
    first_seen = row.first_seen or row.seen_at
    return next_unmatched_try(first_seen, row.attempts, flow.clock(), flow.settings.unmatched_retry_for)


def _rescheduled(row: UnmatchedEvent, next_try: datetime | None, reason: str) -> UnmatchedEvent:
    # A retry is not a sighting: last_seen stays, so the retention counts from when the source last delivered it.
    return replace(row, reason=reason, next_try_at=next_try)


async def retry_event_letters(flow: EventsFlow, letters: Sequence[DeadLetter]) -> dict[int, LetterOutcome]:
    """Write these events dead letters again (all of ``flow.scope``); returns each letter's outcome by id."""
    from crmbridge.engine.events import EventStats  # the flow module imports this one: imported when used

    outcomes: dict[int, LetterOutcome] = {}
    events: dict[int, EmailEvent] = {}
    tasks: dict[int, TaskRow] = {}
    for letter in letters:
        assert letter.id is not None
        if letter.record_key.startswith(_TASK_PREFIX) and letter.payload:
            tasks[letter.id] = _task_row(letter)
        elif (event := event_from_payload(letter.payload, letter.record_key)) is not None:
            events[letter.id] = event
        else:
            why = "payload purged" if not letter.payload else "the stored payload does not rebuild this event"
            outcomes[letter.id] = LetterOutcome("skipped", f"{why}; it can only be read again from its source")
    already = flow.store.ledger_contains(e.event_key for e in events.values())
    batch = Batch(Flow.EVENTS, flow.scope)
    written = await flow.write_events(
        [e for e in events.values() if e.event_key not in already], batch, EventStats(flow.scope)
    )
    task_errors = await flow.sink.upsert_tasks(list(tasks.values())) if tasks else {}
    now = flow.clock()
    for letter_id, task in tasks.items():
        if (error := task_errors.get(task.activity_id)) is not None:
            letter = next(item for item in letters if item.id == letter_id)
            batch.dead_letter(replace(letter, error_class=type(error).__name__, reason=str(error), failed_at=now))
    flow.store.commit(batch)
    written_keys = {entry.event_key for entry in written}
    unmatched_keys = {u.event_key for u in batch.unmatched}
    for letter_id, event in events.items():
        key = event.event_key
        if key in written_keys or key in already:
            detail = "written to Dynamics" if key in written_keys else "already written (in the ledger)"
            _resolve(flow, letter_id, f"retried: {detail}")
            outcomes[letter_id] = LetterOutcome("resolved", detail)
        elif key in unmatched_keys:
            detail = "no Dynamics contact yet: kept as an unmatched event and retried with it"
            _resolve(flow, letter_id, f"retried: {detail}")
            outcomes[letter_id] = LetterOutcome("unmatched", detail)
        else:
            refreshed = flow.store.dead_letters.get(letter_id)
            outcomes[letter_id] = LetterOutcome("failed", refreshed.reason if refreshed else "refused again")
    for letter_id, task in tasks.items():
        if task.activity_id in task_errors:
            outcomes[letter_id] = LetterOutcome("failed", str(task_errors[task.activity_id]))
        else:
            _resolve(flow, letter_id, "retried: follow-up task written")
            outcomes[letter_id] = LetterOutcome("resolved", "follow-up task written")
    return outcomes


def _resolve(flow: EventsFlow, letter_id: int, reason: str) -> None:
    flow.store.dead_letters.mark([letter_id], DeadLetterStatus.RESOLVED, reason)


def _task_row(letter: DeadLetter) -> TaskRow:
    """The follow-up task as it was refused: its id derives from the event (activities.followup_task)."""
    values = dict(letter.payload or {})
    bind = str(values.get("regardingobjectid_contact_task@odata.bind", ""))
    contact = bind.removeprefix("/contacts(").removesuffix(")")
    event_key = letter.record_key.removeprefix(_TASK_PREFIX)
    return TaskRow(str(uuid.uuid5(EVENT_NAMESPACE, letter.record_key)), contact, event_key, values)
