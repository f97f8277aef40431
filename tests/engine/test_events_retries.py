"""Events written again: unmatched events once their contact exists, and events dead letters an operator retries.

In-memory journal and Dataverse, a real SQLite state store. Expectations are literal, or the rows the same flow
writes for the same events when nothing is refused (the retry must change nothing about what lands in Dynamics).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmbridge.engine.event_retry import NO_EVENTS, retry_event_letters
from crmbridge.engine.events import EventsFlow
from crmbridge.exceptions import RecordError
from crmbridge.records import EventType
from crmbridge.state import DeadLetter, DeadLetterStatus, Flow, StateStore
from tests.engine.fakes import FakeDynamics, FakeEventFeed
from tests.engine.test_events_flow import event, settings

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class RefusingDynamics(FakeDynamics):
    """Dataverse that refuses activities and tasks of chosen contacts with a record error (not a missing contact)."""

    refuse_activities: set[str] = field(default_factory=set)
    refuse_tasks: set[str] = field(default_factory=set)

    async def upsert_activities(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        refused = {
            r.activity_id: RecordError("0x80044331 bad value (fake)")
            for r in rows
            if r.contact_id in self.refuse_activities
        }
        errors = dict(await super().upsert_activities([r for r in rows if r.activity_id not in refused]))
        return {**errors, **refused}

    async def upsert_tasks(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        refused = {
            r.activity_id: RecordError("0x80040203 task refused (fake)")
            for r in rows
            if r.contact_id in self.refuse_tasks
        }
        await super().upsert_tasks([r for r in rows if r.activity_id not in refused])
        return refused


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


def flow(feed: Any, dynamics: FakeDynamics, store: StateStore, clock: Clock) -> EventsFlow:
    return EventsFlow(settings(), feed, dynamics, store, scope="journal", clock=clock)


def unmatched_rows(store: StateStore) -> list[tuple[str, int, datetime | None]]:
    return [(u.external_id or "", u.attempts, u.next_try_at) for u in store.unmatched_due(T0 + timedelta(days=365))]


CLICK_C9 = event(EventType.CLICK, "c9", "b9", 8, url="https://example.com/offer")


async def test_an_unmatched_event_is_written_once_its_contact_exists(store: StateStore, clock: Clock) -> None:
    dynamics = FakeDynamics({"c1"})
    first = await flow(FakeEventFeed([CLICK_C9]), dynamics, store, clock).run_pass()
    assert (first.written, first.unmatched) == (0, 1)
    assert unmatched_rows(store) == [("c9", 1, T0 + timedelta(minutes=15))]

    clock.now = T0 + timedelta(minutes=5)  # not due yet: nothing is looked at
    early = await flow(FakeEventFeed([]), dynamics, store, clock).run_pass()
    assert early.unmatched_retried == 0

    dynamics.contacts.add("c9")  # the contact now exists in Dynamics
    clock.now = T0 + timedelta(minutes=15)
    later = await flow(FakeEventFeed([]), dynamics, store, clock).run_pass()

    assert (later.unmatched_retried, later.unmatched_matched, later.written, later.tasks) == (1, 1, 1, 1)
    assert later.counts()["unmatched_matched"] == 1
    (activity,) = dynamics.activities.values()
    assert (activity["@table"], activity["cmb_trackingurl"]) == ("cmb_emailclicks", "https://example.com/offer")
    assert activity["regardingobjectid_contact_cmb_emailclick@odata.bind"] == "/contacts(c9)"
    assert dynamics.contact_values["c9"]["cmb_emailclickcount"] == 1
    assert store.ledger_contains([CLICK_C9.event_key]) == {CLICK_C9.event_key}
    assert store.info().unmatched_events == 0

    repeated = FakeEventFeed([CLICK_C9, CLICK_C9])  # the journal delivers it again after the stored position
    again = await flow(repeated, dynamics, store, clock).run_pass()
    assert (again.written, again.duplicates, len(dynamics.activities)) == (0, 1, 1)


async def test_unmatched_retries_back_off_and_stop_after_unmatched_retry_for(store: StateStore, clock: Clock) -> None:
    dynamics = FakeDynamics(set())
    await flow(FakeEventFeed([CLICK_C9]), dynamics, store, clock).run_pass()
    tried_at: list[timedelta] = []
    while rows := store.unmatched_due(T0 + timedelta(days=365)):
        (row,) = rows
        assert row.next_try_at is not None
        clock.now = row.next_try_at
        stats = await flow(FakeEventFeed([]), dynamics, store, clock).run_pass()
        assert (stats.unmatched_retried, stats.unmatched_matched, stats.unmatched) == (1, 0, 0)
        tried_at.append(clock.now - T0)
        assert len(tried_at) < 50

    hours = [t / timedelta(hours=1) for t in tried_at]
    # 15 min, then doubling waits up to 12 h; no try later than 7 days after the event was first seen.
    assert hours == [0.25, 0.75, 1.75, 3.75, 7.75, 15.75, *(27.75 + 12 * n for n in range(12))]
    assert store.info().unmatched_events == 1  # kept for inspection, not retried any more
    assert store.purge_personal_data(T0 + timedelta(days=30)).unmatched_deleted == 1


async def test_an_unmatched_event_without_a_contact_id_is_kept_and_not_retried(store: StateStore, clock: Clock) -> None:
    await flow(FakeEventFeed([event(EventType.OPEN, None, "b4", 7)]), FakeDynamics(set()), store, clock).run_pass()
    assert store.info().unmatched_events == 1
    assert store.unmatched_due(T0 + timedelta(days=365)) == []


async def test_an_events_dead_letter_retried_writes_the_same_row_once_and_closes_the_letter(
    tmp_path: Path, store: StateStore, clock: Clock
) -> None:
    dynamics = RefusingDynamics({"c1", "c2"}, refuse_activities={"c2"})
    events = [event(EventType.OPEN, "c1", "b1", 5), event(EventType.BOUNCE, "c2", "b2", 1, bounce_type="hard")]
    stats = await flow(FakeEventFeed(list(events)), dynamics, store, clock).run_pass()
    assert (stats.written, stats.failed) == (1, 1)
    (letter,) = store.dead_letters.list(flow=Flow.EVENTS)
    assert (letter.mapping, letter.record_key) == ("journal", events[1].event_key)

    dynamics.refuse_activities.clear()
    writer = EventsFlow(settings(), NO_EVENTS, dynamics, store, scope="journal", clock=clock)
    assert letter.id is not None
    outcomes = await retry_event_letters(writer, [letter])

    assert outcomes[letter.id].outcome == "resolved"
    closed = store.dead_letters.get(letter.id)
    assert closed is not None
    assert (closed.status, closed.close_reason) == (DeadLetterStatus.RESOLVED, "retried: written to Dynamics")
    assert store.ledger_contains([events[1].event_key]) == {events[1].event_key}
    # Oracle: the same events through the same flow with nothing refused.
    with StateStore.open(f"sqlite:///{tmp_path / 'clean.db'}") as clean_store:
        clean = FakeDynamics({"c1", "c2"})
        await flow(FakeEventFeed(list(events)), clean, clean_store, clock).run_pass()
    assert dynamics.activities == clean.activities
    assert dynamics.tasks == clean.tasks
    assert str(events[1].activity_id) in dynamics.activities
    assert dynamics.contact_values["c2"] == clean.contact_values["c2"]

    again = await retry_event_letters(writer, [letter])  # idempotent: already in the ledger
    assert again[letter.id].outcome == "resolved"
    assert dynamics.activities == clean.activities


async def test_a_retried_event_whose_contact_is_gone_moves_to_the_unmatched_events(
    store: StateStore, clock: Clock
) -> None:
    dynamics = RefusingDynamics({"c2"}, refuse_activities={"c2"})
    bounce = event(EventType.BOUNCE, "c2", "b2", 1, bounce_type="hard")
    await flow(FakeEventFeed([bounce]), dynamics, store, clock).run_pass()
    (letter,) = store.dead_letters.list()
    dynamics.contacts.clear()
    dynamics.refuse_activities.clear()
    assert letter.id is not None

    outcomes = await retry_event_letters(
        EventsFlow(settings(), NO_EVENTS, dynamics, store, scope="journal", clock=clock), [letter]
    )

    assert outcomes[letter.id].outcome == "unmatched"
    assert store.dead_letters.list() == []
    assert unmatched_rows(store) == [("c2", 1, T0 + timedelta(minutes=15))]


async def test_a_refused_followup_task_is_retried_on_its_own(store: StateStore, clock: Clock) -> None:
    dynamics = RefusingDynamics({"c9"}, refuse_tasks={"c9"})
    await flow(FakeEventFeed([CLICK_C9]), dynamics, store, clock).run_pass()
    (letter,) = store.dead_letters.list()
    assert letter.record_key == f"task:{CLICK_C9.event_key}"
    assert dynamics.tasks == {}

    dynamics.refuse_tasks.clear()
    assert letter.id is not None
    writer = EventsFlow(settings(), NO_EVENTS, dynamics, store, scope="journal", clock=clock)
    outcomes = await retry_event_letters(writer, [letter])

    assert outcomes[letter.id].outcome == "resolved"
    (task,) = dynamics.tasks.values()
    assert task["subject"] == "Follow up on URL click: https://example.com/offer"
    assert task["regardingobjectid_contact_task@odata.bind"] == "/contacts(c9)"
    assert len(dynamics.activities) == 1  # the activity was written in the pass, and not again


async def test_a_letter_whose_payload_cannot_rebuild_the_event_is_skipped(store: StateStore, clock: Clock) -> None:
    old_style = {"event_type": "open", "occurred_at": T0.isoformat(), "external_id": "c1"}  # no natural key fields
    batch_letter = DeadLetter(Flow.EVENTS, "journal", "sha256:abc", old_style, "RecordError", "bad", T0)
    from crmbridge.state import Batch

    batch = Batch(Flow.EVENTS, "journal")
    batch.dead_letter(batch_letter)
    store.commit(batch)
    (letter,) = store.dead_letters.list()
    assert letter.id is not None
    dynamics = FakeDynamics({"c1"})

    outcomes = await retry_event_letters(
        EventsFlow(settings(), NO_EVENTS, dynamics, store, scope="journal", clock=clock), [letter]
    )

    assert outcomes[letter.id].outcome == "skipped"
    assert dynamics.activities == {}
    assert store.dead_letters.list()[0].status is DeadLetterStatus.OPEN
