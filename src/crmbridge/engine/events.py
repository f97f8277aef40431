"""Job 3: Campaign email events to activities on the Dynamics contact timeline.

read a batch of events → keep enabled types → drop what the ledger already holds → upsert activities (and
follow-up tasks) under ids derived from each event → roll-ups from ledger + batch → commit ledger, unmatched
events, dead letters and the source position together. A crash replays at most one batch, and the replay
upserts the same rows and recomputes the same roll-ups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crmbridge.config import EventsSettings
from crmbridge.engine.activities import activity_row, followup_task, is_enabled, rollup_after, rollup_values
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
    batches: int = 0
    lag_seconds: float | None = None
    latencies: list[float] = field(default_factory=list)  # occurred → written, seconds, for p50/p95
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        names = ("read", "written", "duplicates", "not_enabled", "unmatched", "rejected", "failed", "tasks", "gaps")
        return {name: int(getattr(self, name)) for name in names}


ProgressCallback = Callable[[EventStats], None]


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
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.sink = sink
        self.store = store
        self.scope = scope
        self.backfill = backfill
        self.clock = clock
        self.progress = progress

    async def run_pass(self, *, max_batches: int | None = None) -> EventStats:
        stats = EventStats(self.scope)
        loop = asyncio.get_running_loop()
        started = loop.time()
        run_id = self.store.start_run(Flow.EVENTS, self.scope)
        try:
            checkpoint = self.store.checkpoint(Flow.EVENTS, self.scope)
            position = checkpoint.value if checkpoint is not None else None
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
        count = 0
        async for batch in feed.batches(position, after_gap=after_gap):
            await self._process(batch, stats, scope)
            count += 1
            if batch.caught_up or (max_batches is not None and count >= max_batches):
                return

    async def _process(self, source: EventBatch, stats: EventStats, scope: str) -> None:
        now = self.clock()
        stats.batches += 1
        stats.read += len(source.events)
        stats.duplicates += source.repeats  # the journal's repeats, dropped by id before they became events
        if source.lag is not None:
            stats.lag_seconds = source.lag.total_seconds()
        batch = Batch(Flow.EVENTS, scope)
        for rejected in source.rejected:
            stats.rejected += 1
            batch.dead_letter(
                DeadLetter(Flow.EVENTS, scope, rejected.key, rejected.payload, "UnreadableEvent", rejected.reason, now)
            )
        events = self._new_events(source.events, stats)
        matched: list[tuple[EmailEvent, str]] = []
        for event in events:
            if event.external_id:
                matched.append((event, event.external_id))
            else:
                stats.unmatched += 1
                batch.keep_unmatched(_unmatched(event, "the profile has no externalId (no Dynamics contact)", now))
        written = await self._write(matched, batch, stats, now)
        if self.settings.rollups.enabled and written:
            await self._write_rollups(written, stats)
        batch.record_events(written)
        batch.advance_to(source.position)
        self.store.commit(batch)
        for entry in written:
            stats.latencies.append(max(0.0, (self.clock() - entry.occurred_at).total_seconds()))
        if self.progress is not None:
            self.progress(stats)

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
        known = self.store.ledger_contains(unique)
        stats.duplicates += len(known)
        return [event for key, event in unique.items() if key not in known]

    async def _write(
        self, matched: Sequence[tuple[EmailEvent, str]], batch: Batch, stats: EventStats, now: datetime
    ) -> list[LedgerEntry]:
        rows = [activity_row(event, contact, self.settings) for event, contact in matched]
        errors = await self.sink.upsert_activities(rows) if rows else {}
        tasks = [t for event, contact in matched if (t := followup_task(event, contact, self.settings)) is not None]
        written: list[LedgerEntry] = []
        task_events = {task.event_key for task in tasks}
        for (event, contact), row in zip(matched, rows, strict=True):
            error = errors.get(row.activity_id)
            if isinstance(error, MissingContact):
                stats.unmatched += 1
                batch.keep_unmatched(_unmatched(event, f"no Dynamics contact {contact}: {error}", now))
                task_events.discard(event.event_key)
            elif error is not None:
                stats.failed += 1
                batch.dead_letter(
                    DeadLetter(
                        Flow.EVENTS, self.scope, event.event_key, _payload(event), type(error).__name__, str(error), now
                    )
                )
                task_events.discard(event.event_key)
            else:
                stats.written += 1
                stats.by_type[event.event_type.value] = stats.by_type.get(event.event_type.value, 0) + 1
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
            stats.tasks += len(tasks) - len(task_errors)
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


def _payload(event: EmailEvent) -> dict[str, object]:
    return {
        "event_type": event.event_type.value,
        "occurred_at": event.occurred_at.isoformat(),
        "external_id": event.external_id,
        "campaign_id": event.campaign_id,
        "delivery_id": event.delivery_id,
        "broadlog_id": event.broadlog_id,
        "url": event.url,
        "source_position": event.source_position,
    }


def _unmatched(event: EmailEvent, reason: str, now: datetime) -> UnmatchedEvent:
    return UnmatchedEvent(event.event_key, event.external_id, event.email, _payload(event), reason, now)
