"""EventsHub: simulated deliveries become scheduled events, published to the journal and to export files.

An event is *published* once the injected clock reaches its occurrence time (:meth:`EventsHub.release_due`,
called on every journal and operator request and by :meth:`EventsHub.pump`). Publishing is where the
journal's documented imperfections are injected (§A.8: at least once, unordered): seeded shares of the
events are swapped within their round, held back to a later round, or appended twice with the same event id.
Exports are not affected: they read what has happened, as ACS's own logs do.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio

from crmbridge.emulators.campaign.events.clock import Clock, utc_now
from crmbridge.emulators.campaign.events.exports import ExportSettings, ExportWriter, export_row
from crmbridge.emulators.campaign.events.payload import cloud_event
from crmbridge.emulators.campaign.events.simulation import DeliveryReport, DeliverySpec, report_of, simulate
from crmbridge.emulators.campaign.events.store import EventStore, ScheduledRow
from crmbridge.emulators.campaign.targets import DeliveryTarget

__all__ = ["RETENTION", "EventsHub", "JournalFaults", "disorder"]

RETENTION = timedelta(days=7)  # §A.8
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JournalFaults:
    """Shares of published events that are swapped with a later one, held back, or published a second time.

    ``reorder_rate`` swaps events within one publication round; ``delay_rate`` holds an event back until the
    next round, after the events published meanwhile, which reorders even when rounds are small (a served
    emulator publishes every second).
    """

    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    delay_rate: float = 0.0
    seed: int = 0
    window: int = 5  # how many places away a swapped event or a duplicate lands (inferred)

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "reorder_rate", "delay_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.window < 1:
            raise ValueError("window must be at least 1")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JournalFaults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            listed = ", ".join(sorted(known))
            raise ValueError(f"unknown journal fault settings: {', '.join(unknown)} (known: {listed})")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def disorder(items: Sequence[T], faults: JournalFaults, rng: random.Random) -> list[T]:
    """The items as a faulty journal would publish them: some swapped forward, some repeated a little later."""
    shuffled = list(items)
    for index in range(len(shuffled) - 1):
        if rng.random() < faults.reorder_rate:
            other = min(len(shuffled) - 1, index + rng.randint(1, faults.window))
            shuffled[index], shuffled[other] = shuffled[other], shuffled[index]
    published: list[T] = []
    repeats: list[tuple[int, T]] = []
    for index, item in enumerate(shuffled):
        published.append(item)
        if rng.random() < faults.duplicate_rate:
            repeats.append((index + rng.randint(0, faults.window), item))
        published.extend(item for due, item in repeats if due <= index)
        repeats = [(due, item) for due, item in repeats if due > index]
    published.extend(item for _, item in repeats)
    return published


class EventsHub:
    """Owns the event store; simulates deliveries and publishes their events as time passes."""

    def __init__(
        self,
        db_path: str | Path = ":memory:",
        *,
        clock: Clock = utc_now,
        exports: ExportSettings | None = None,
        faults: JournalFaults | None = None,
        retention: timedelta = RETENTION,
    ) -> None:
        self.store = EventStore(db_path)
        self.clock = clock
        self.retention = retention
        self.exporter = ExportWriter(exports or ExportSettings())
        self.faults = faults or JournalFaults()
        self._fault_rng = random.Random(self.faults.seed)

    def close(self) -> None:
        self.store.close()

    # --- configuration ------------------------------------------------------------------------------------

    def configure_faults(self, faults: JournalFaults) -> None:
        self.faults = faults
        self._fault_rng = random.Random(faults.seed)

    def configure_exports(self, settings: ExportSettings) -> None:
        self.exporter.settings = settings

    # --- deliveries ---------------------------------------------------------------------------------------

    def simulate_delivery(self, spec: DeliverySpec, targets: Sequence[DeliveryTarget]) -> DeliveryReport:
        """Schedule every event of the delivery; those already in the past are published at once."""
        first_broadlog = self.store.next_counter("next_broadlog_id", len(targets))
        first_tracking = int(self.store.get_meta("next_tracking_log_id") or "1")
        events = simulate(
            spec,
            targets,
            first_broadlog_id=first_broadlog,
            first_tracking_log_id=first_tracking,
            id_namespace=uuid.UUID(hex=self.store.journal_id),
        )
        tracked = sum(1 for event in events if event.tracking_log_id is not None)
        self.store.set_meta("next_tracking_log_id", str(first_tracking + tracked))
        self.store.schedule(
            ScheduledRow(event.event_id, event.occurred_at, cloud_event(event), *export_row(event)) for event in events
        )
        report = report_of(spec, len(targets), events)
        self.store.add_delivery(report.as_json())
        self.release_due()
        return report

    def deliveries(self) -> list[dict[str, Any]]:
        return self.store.deliveries()

    # --- publishing ---------------------------------------------------------------------------------------

    def release_due(self, *, run_due_export: bool = True) -> int:
        """Publish what has happened by now, drop what is past retention, run the export when it is due."""
        now = self.clock()
        due = self.store.due(now)
        held_before = [event for event in due if event.held]
        fresh = [event for event in due if not event.held]
        hold = [event for event in fresh if self._fault_rng.random() < self.faults.delay_rate]
        held_ids = {event.id for event in hold}
        published = [event for event in fresh if event.id not in held_ids]
        entries = disorder([(e.event_id, e.envelope_json) for e in published], self.faults, self._fault_rng)
        entries += [(event.event_id, event.envelope_json) for event in held_before]  # late: after newer events
        if due:
            self.store.release(due, entries, hold, now)
        self.store.expire(now - self.retention)
        if run_due_export and self._export_due(now):
            self.run_export()
        return len(entries)

    async def pump(self, every_s: float = 1.0) -> None:
        """Release events in the background (for a served emulator whose clients may only read SFTP)."""
        while True:
            self.release_due()
            await anyio.sleep(every_s)

    # --- journal maintenance ------------------------------------------------------------------------------

    def expire_journal(self, published_before: datetime | None = None) -> int:
        """Expire events as if their retention had run out (all of them when no cutoff is given)."""
        return self.store.expire(published_before)

    def stats(self) -> dict[str, Any]:
        return {
            **self.store.journal_stats(),
            "pendingEvents": self.store.pending_count(),
            "headSeq": self.store.head_seq(),
            "expiredThroughSeq": self.store.purged_through(),
            "deliveries": len(self.store.deliveries()),
            "retentionSeconds": self.retention.total_seconds(),
            "faults": self.faults.as_dict(),
            "now": self.clock().isoformat(),
        }

    # --- exports ------------------------------------------------------------------------------------------

    def run_export(self) -> list[Path]:
        """One export workflow run: rows released since the previous run, as one file per log."""
        if self.exporter.settings.folder is None:
            return []
        now = self.clock()
        last = self.store.get_meta("last_export_at")
        after = datetime.fromisoformat(last) if last else None
        rows = {kind: self.store.released_rows(kind, after, now) for kind in ("delivery", "tracking")}
        written = self.exporter.write_run(now, rows)
        self.store.set_meta("last_export_at", now.isoformat())
        return written

    def complete_partial_exports(self) -> list[Path]:
        return self.exporter.complete_partials()

    def _export_due(self, now: datetime) -> bool:
        if self.exporter.settings.folder is None:
            return False
        last = self.store.get_meta("last_export_at")
        interval = timedelta(seconds=self.exporter.settings.interval_s)
        return last is None or now - datetime.fromisoformat(last) >= interval
