"""Job 3: Campaign email events to activities on the Dynamics contact timeline.

read a batch of events → keep enabled types → drop what the ledger already holds → upsert activities (and
follow-up tasks) under ids derived from each event → roll-ups from ledger + batch → commit ledger, unmatched
events, dead letters and the source position together. Several batches are written at once, but each commits only
after it and every earlier batch were acknowledged (crmbridge.engine.pipeline): a crash replays at most the batches
in flight, never skips one, and the replay upserts the same rows and recomputes the same roll-ups.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crmbridge.config import EventsSettings
from crmbridge.engine.activities import activity_row, followup_task, is_enabled, rollup_after, rollup_values
from crmbridge.engine.event_records import event_payload, next_unmatched_try
from crmbridge.engine.event_retry import retry_unmatched
from crmbridge.engine.pipeline import OrderedPipeline
from crmbridge.engine.ports import ActivitySink, EventBatch, EventFeed, MissingContact
from crmbridge.exceptions import CheckpointExpired
from crmbridge.records import EmailEvent
from crmbridge.state import Batch, DeadLetter, Flow, LedgerEntry, RunStatus, StateStore, UnmatchedEvent

__all__ = ["EventStats", "EventsFlow"]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EventStats:
    scope: str
    read: int = 0
    written: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    not_enabled: int = 0
    unmatched: int = 0
    rejected: int = 0
    failed: int = 0
    tasks: int = 0
    rollups: int = 0
    gaps: int = 0
    unmatched_retried: int = 0  # unmatched events looked at again this pass
    unmatched_matched: int = 0  # ... of which written now that their contact exists
    batches: int = 0
    lag_seconds: float | None = None
    latencies: list[float] = field(default_factory=list)  # occurred → written, seconds, for p50/p95
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        names = ("read", "written", "duplicates", "not_enabled", "unmatched", "rejected", "failed", "tasks", "gaps")
        return {name: int(getattr(self, name)) for name in (*names, "unmatched_retried", "unmatched_matched")}


ProgressCallback = Callable[[EventStats], None]
DEFAULT_IN_FLIGHT = 4  # batches written at once; each is a few bulk requests, bounded again by the session limiter


@dataclass
class _Pending:
    """One source batch between reading and committing: what to write, and what its writes produced."""

    source: EventBatch | None  # None for events written outside a read (retries): no position to store
    batch: Batch
    now: datetime
    matched: list[tuple[EmailEvent, str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # natural keys being written (deduped against later batches)
    unmatched: int = 0
    failed: int = 0
    tasks: int = 0


class EventsFlow:
    """One event source's pass: read until caught up, write, commit batch by batch."""

    def __init__(
        self,
        settings: EventsSettings,
        feed: EventFeed,
        sink: ActivitySink,
        store: StateStore,
        *,
        scope: str,
        backfill: EventFeed | None = None,
        clock: Clock = _utc_now,
        progress: ProgressCallback | None = None,
        in_flight: int = DEFAULT_IN_FLIGHT,
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.sink = sink
        self.store = store
        self.scope = scope
        self.backfill = backfill
        self.clock = clock
        self.progress = progress
        self.in_flight = in_flight
        self._in_flight_keys: set[str] = set()

    async def run_pass(self, *, max_batches: int | None = None) -> EventStats:
        stats = EventStats(self.scope)
        loop = asyncio.get_running_loop()
        started = loop.time()
        run_id = self.store.start_run(Flow.EVENTS, self.scope)
        try:
            checkpoint = self.store.checkpoint(Flow.EVENTS, self.scope)
            position = checkpoint.value if checkpoint is not None else None
            await retry_unmatched(self, stats)
            try:
                await self._drain(self.feed, position, stats, max_batches, scope=self.scope)
            except CheckpointExpired:
                # The journal position expired (410): events in between are gone from it. Report the gap,
                # fill it from export files when configured, then go on from the oldest event still kept.
                stats.gaps += 1
                if self.backfill is not None:
                    backfill_scope = f"{self.scope}:backfill"
                    done = self.store.checkpoint(Flow.EVENTS, backfill_scope)
                    await self._drain(self.backfill, done.value if done else None, stats, None, scope=backfill_scope)
                await self._drain(self.feed, None, stats, max_batches, scope=self.scope, after_gap=True)
        except BaseException as error:
            stats.seconds = loop.time() - started
            status = RunStatus.INTERRUPTED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
            self.store.finish_run(run_id, status, stats.counts(), error=str(error) or type(error).__name__)
            raise
        stats.seconds = loop.time() - started
        self.store.finish_run(
            run_id, RunStatus.SUCCEEDED, stats.counts(), error="journal gap (HTTP 410)" if stats.gaps else None
        )
        return stats

    async def _drain(
        self,
        feed: EventFeed,
        position: str | None,
        stats: EventStats,
        max_batches: int | None,
        *,
        scope: str,
        after_gap: bool = False,
    ) -> None:
        # Reading, writing and committing overlap: the next page is read and several batches are written while
        # earlier ones wait to commit in order (crmbridge.engine.pipeline).
        count = 0
        self._in_flight_keys.clear()  # what a failed drain left behind was never committed
        async with OrderedPipeline(self.in_flight) as pipeline:
            try:
                async for source in feed.batches(position, after_gap=after_gap):
                    pending = self._prepare(source, stats, scope)
                    await pipeline.submit(self._write(pending), functools.partial(self._commit, pending, stats))
                    count += 1
                    if source.caught_up or (max_batches is not None and count >= max_batches):
                        break
            except CheckpointExpired:
                # The batches read before the journal gap are good: write and commit them before the gap is handled
                # (reading goes on from the oldest kept event, which may be newer than they are).
                await pipeline.finish()
                raise

    def _prepare(self, source: EventBatch, stats: EventStats, scope: str) -> _Pending:
        """What a batch has to write: enabled, new events (not in the ledger nor in a batch still in flight)."""
        now = self.clock()
        stats.batches += 1
        stats.read += len(source.events)
        stats.duplicates += source.repeats  # the journal's repeats, dropped by id before they became events
        if source.lag is not None:
            stats.lag_seconds = source.lag.total_seconds()
        pending = _Pending(source, Batch(Flow.EVENTS, scope), now)
        for rejected in source.rejected:
            stats.rejected += 1
            pending.batch.dead_letter(
                DeadLetter(Flow.EVENTS, scope, rejected.key, rejected.payload, "UnreadableEvent", rejected.reason, now)
            )
        for event in self._new_events(source.events, stats):
            if event.external_id:
                pending.matched.append((event, event.external_id))
            else:
                pending.unmatched += 1
                reason = "the profile has no externalId (no Dynamics contact)"
                pending.batch.keep_unmatched(self._unmatched(event, reason, now))
        pending.keys = {event.event_key for event, _ in pending.matched}
        self._in_flight_keys.update(pending.keys)
        return pending

    async def _commit(self, pending: _Pending, stats: EventStats, written: list[LedgerEntry]) -> None:
        """After this batch was acknowledged and every earlier one committed: roll-ups, then state and position."""
        if self.settings.rollups.enabled and written:
            await self._write_rollups(written, stats)
        batch = pending.batch
        batch.record_events(written)
        assert pending.source is not None  # batches of a read always have a position
        batch.advance_to(pending.source.position)
        self.store.commit(batch)
        self._in_flight_keys.difference_update(pending.keys)
        self._count(pending, written, stats)
        done = self.clock()
        stats.latencies.extend(max(0.0, (done - entry.occurred_at).total_seconds()) for entry in written)
        if self.progress is not None:
            self.progress(stats)

    @staticmethod
    def _count(pending: _Pending, written: Sequence[LedgerEntry], stats: EventStats) -> None:
        stats.written += len(written)
        stats.unmatched += pending.unmatched
        stats.failed += pending.failed
        stats.tasks += pending.tasks
        for entry in written:
            stats.by_type[entry.event_type] = stats.by_type.get(entry.event_type, 0) + 1

    def _new_events(self, events: Sequence[EmailEvent], stats: EventStats) -> list[EmailEvent]:
        """Enabled types only, each natural key once, and none the ledger already holds."""
        unique: dict[str, EmailEvent] = {}
        for event in events:
            if not is_enabled(event, self.settings):
                stats.not_enabled += 1
            elif event.event_key in unique:
                stats.duplicates += 1
            else:
                unique[event.event_key] = event
        known = self.store.ledger_contains(unique) | self._in_flight_keys.intersection(unique)
        stats.duplicates += len(known)
        return [event for key, event in unique.items() if key not in known]

    async def _write(self, pending: _Pending) -> list[LedgerEntry]:
        """Activities (then follow-up tasks) of one batch; per-row refusals go to the batch, not the stats yet."""
        batch, now, matched = pending.batch, pending.now, pending.matched
        rows = [activity_row(event, contact, self.settings) for event, contact in matched]
        errors = await self.sink.upsert_activities(rows) if rows else {}
        tasks = [t for event, contact in matched if (t := followup_task(event, contact, self.settings)) is not None]
        written: list[LedgerEntry] = []
        task_events = {task.event_key for task in tasks}
        for (event, contact), row in zip(matched, rows, strict=True):
            error = errors.get(row.activity_id)
            if isinstance(error, MissingContact):
                pending.unmatched += 1
                batch.keep_unmatched(self._unmatched(event, f"no Dynamics contact {contact}: {error}", now))
                task_events.discard(event.event_key)
            elif error is not None:
                pending.failed += 1
                batch.dead_letter(
                    DeadLetter(
                        Flow.EVENTS,
                        self.scope,
                        event.event_key,
                        event_payload(event),
                        type(error).__name__,
                        str(error),
                        now,
                    )
                )
                task_events.discard(event.event_key)
            else:
                written.append(
                    LedgerEntry(
                        event.event_key,
                        event.source_key,
                        contact,
                        event.event_type.value,
                        event.occurred_at,
                        row.activity_id,
                        now,
                        bounce_type=event.bounce_type,
                    )
                )
        tasks = [task for task in tasks if task.event_key in task_events]
        if tasks:
            task_errors = await self.sink.upsert_tasks(tasks)
            pending.tasks += len(tasks) - len(task_errors)
            for task in tasks:
                if (task_error := task_errors.get(task.activity_id)) is not None:
                    batch.dead_letter(
                        DeadLetter(
                            Flow.EVENTS,
                            self.scope,
                            f"task:{task.event_key}",
                            dict(task.values),
                            type(task_error).__name__,
                            str(task_error),
                            now,
                        )
                    )
        return written

    async def write_events(self, events: Sequence[EmailEvent], batch: Batch, stats: EventStats) -> list[LedgerEntry]:
        """Write events outside a read (dead-letter and unmatched retries) as a pass would, adding ledger entries,
        unmatched rows and dead letters to ``batch``; the caller commits it."""
        now = self.clock()
        for event in events:
            if not event.external_id:
                stats.unmatched += 1
                batch.keep_unmatched(self._unmatched(event, "the profile has no externalId (no Dynamics contact)", now))
        pending = _Pending(None, batch, now, matched=[(e, e.external_id) for e in events if e.external_id])
        written = await self._write(pending)
        self._count(pending, written, stats)
        if self.settings.rollups.enabled and written:
            await self._write_rollups(written, stats)
        batch.record_events(written)
        return written

    def _unmatched(self, event: EmailEvent, reason: str, now: datetime) -> UnmatchedEvent:
        # An event with a contact id is looked at again while the contact may still appear (event_retry.py).
        retry_at = next_unmatched_try(now, 0, now, self.settings.unmatched_retry_for) if event.external_id else None
        return UnmatchedEvent(
            event.event_key, event.external_id, event.email, event_payload(event), reason, now, next_try_at=retry_at
        )

    async def _write_rollups(self, written: Sequence[LedgerEntry], stats: EventStats) -> None:
        """Roll-ups from the committed ledger plus this batch: the same result for any order or replay."""
        by_contact: dict[str, list[LedgerEntry]] = {}
        for entry in written:
            by_contact.setdefault(entry.contact_id, []).append(entry)
        previous = self.store.contact_rollups(by_contact)
        values = {
            contact: rollup_values(rollup_after(previous.get(contact), contact, entries), self.settings)
            for contact, entries in by_contact.items()
        }
        errors = await self.sink.update_contacts(values)
        stats.rollups += len(values) - len(errors)
