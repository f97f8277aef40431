"""Rows that may exist already (replayed batches, retries) are looked up first: a closed activity is never updated."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crmbridge.engine.activities import ActivityRow
from crmbridge.engine.event_retry import NO_EVENTS, retry_event_letters
from crmbridge.engine.events import DEFAULT_IN_FLIGHT, EventsFlow
from crmbridge.engine.rewrites import plan_activities
from crmbridge.exceptions import RecordError
from crmbridge.records import EventType
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeDynamics, FakeEventFeed
from tests.engine.test_events_flow import DELIVERY, event, settings

pytestmark = pytest.mark.anyio


@dataclass
class CountingDynamics(FakeDynamics):
    """FakeDynamics that remembers which rows had their columns written (the fake refuses a closed one)."""

    activity_writes: list[str] = field(default_factory=list)
    task_writes: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # contacts whose activities are refused (a record error)

    async def upsert_activities(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        refused = {
            r.activity_id: RecordError("0x80044331 bad value (fake)") for r in rows if r.contact_id in self.refuse
        }
        kept = [r for r in rows if r.activity_id not in refused]
        errors = await super().upsert_activities(kept)
        self.activity_writes.extend(r.activity_id for r in kept if r.activity_id not in errors)
        return {**errors, **refused}

    async def upsert_tasks(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        self.task_writes.extend(r.activity_id for r in rows)
        return await super().upsert_tasks(rows)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[StateStore, StateStore]]:
    """Two state stores over one Dataverse: the second is a process whose writes were never committed."""
    with (
        StateStore.open(f"sqlite:///{tmp_path / 'crashed.db'}") as crashed,
        StateStore.open(f"sqlite:///{tmp_path / 'replay.db'}") as replay,
    ):
        yield crashed, replay


def flow(feed: FakeEventFeed, dynamics: FakeDynamics, store: StateStore) -> EventsFlow:
    return EventsFlow(settings(), feed, dynamics, store, scope="journal")


def row(activity_id: str) -> ActivityRow:
    return ActivityRow("cmb_emailopens", "cmb_emailopen", activity_id, "c1", f"key-{activity_id}", {})


def test_rows_are_sorted_by_the_state_found() -> None:
    rows = [row("A1"), row("a2"), row("a3"), row("a4")]
    plan = plan_activities(rows, {"a1": 1, "a2": 0, "a4": 2})  # Dataverse answers GUIDs in lower case
    assert [r.activity_id for r in plan.write] == ["a3"]
    assert [r.activity_id for r in plan.close] == ["a2"]
    assert [r.activity_id for r in plan.done] == ["A1", "a4"]  # completed and canceled are both read-only


async def test_a_replay_after_a_crash_writes_nothing_fails_nothing_and_records_the_events(
    stores: tuple[StateStore, StateStore],
) -> None:
    crashed, replay = stores
    dynamics = CountingDynamics({"c1", "c2", "c3"})
    first = await flow(FakeEventFeed(list(DELIVERY), batch_size=3), dynamics, crashed).run_pass()
    assert (first.written, first.tasks) == (3, 2)  # open c1, click c1, hard bounce c2; tasks on click and bounce
    activities, tasks = dict(dynamics.activities), dict(dynamics.tasks)
    dynamics.activity_writes.clear()
    dynamics.task_writes.clear()

    # The same three batches again, as after a SIGKILL before any position was committed.
    again = await flow(FakeEventFeed(list(DELIVERY), batch_size=3), dynamics, replay).run_pass()

    assert (dynamics.activity_writes, dynamics.task_writes, dynamics.closed_only) == ([], [], [])
    assert (again.written, again.failed, again.tasks) == (3, 0, 2)
    assert replay.dead_letters.list(flow=Flow.EVENTS) == []
    assert (dynamics.activities, dynamics.tasks) == (activities, tasks)
    keys = {e.event_key for e in DELIVERY}
    assert replay.ledger_contains(keys) == crashed.ledger_contains(keys)
    assert dynamics.contact_values["c1"]["cmb_emailclickcount"] == 1  # roll-ups from the ledger, not doubled


async def test_a_row_written_but_not_yet_closed_is_only_closed(stores: tuple[StateStore, StateStore]) -> None:
    crashed, replay = stores
    dynamics = CountingDynamics({"c1"})
    opens = [event(EventType.OPEN, "c1", "b1", 5), event(EventType.OPEN, "c1", "b2", 6)]
    await flow(FakeEventFeed(list(opens)), dynamics, crashed).run_pass()
    written_open = str(opens[0].activity_id)
    dynamics.states[written_open] = 0  # the crash came between the upsert and the close
    dynamics.activity_writes.clear()

    stats = await flow(FakeEventFeed(list(opens)), dynamics, replay).run_pass()

    assert (stats.written, stats.failed) == (2, 0)
    assert dynamics.closed_only == [written_open]
    assert dynamics.activity_writes == []
    assert dynamics.states == {str(e.activity_id): 1 for e in opens}


async def test_after_a_stored_position_only_the_batches_a_crash_can_leave_uncommitted_are_looked_up(
    store: StateStore,
) -> None:
    dynamics = CountingDynamics({"c1"})
    count = DEFAULT_IN_FLIGHT + 3
    opens = [event(EventType.OPEN, "c1", f"b{minute}", minute) for minute in range(2 * count)]
    feed = FakeEventFeed(opens[:count], batch_size=1)
    first = await flow(feed, dynamics, store).run_pass()
    assert (first.batches, first.written) == (count, count)
    assert dynamics.state_queries == count  # no stored position: any batch may have been written before
    dynamics.state_queries = 0
    feed.events.extend(opens[count:])  # more events after the committed position

    later = await flow(feed, dynamics, store).run_pass()

    assert (later.batches, later.written) == (count, count)
    assert dynamics.state_queries == DEFAULT_IN_FLIGHT  # one query per table per replayable batch, none after


async def test_a_state_rebuilt_from_scratch_rewrites_no_closed_row(stores: tuple[StateStore, StateStore]) -> None:
    crashed, rebuilt = stores
    dynamics = CountingDynamics({"c1"})
    opens = [event(EventType.OPEN, "c1", f"b{minute}", minute) for minute in range(DEFAULT_IN_FLIGHT + 3)]
    await flow(FakeEventFeed(list(opens), batch_size=1), dynamics, crashed).run_pass()
    dynamics.activity_writes.clear()

    stats = await flow(FakeEventFeed(list(opens), batch_size=1), dynamics, rebuilt).run_pass()

    assert (stats.written, stats.failed, dynamics.activity_writes) == (len(opens), 0, [])


async def test_a_retried_dead_letter_whose_row_exists_closed_is_resolved_without_a_write(store: StateStore) -> None:
    dynamics = CountingDynamics({"c1", "c2"}, refuse={"c2"})
    bounce = event(EventType.BOUNCE, "c2", "b2", 1, bounce_type="hard", bounce_reason="User unknown")
    stats = await flow(FakeEventFeed([bounce]), dynamics, store).run_pass()
    assert stats.failed == 1
    (letter,) = store.dead_letters.list(flow=Flow.EVENTS)
    assert letter.id is not None
    # The refusal answer was wrong or lost: the row exists, completed (say a person wrote it in between).
    dynamics.states[str(bounce.activity_id)] = 1
    dynamics.refuse.clear()
    dynamics.activity_writes.clear()

    writer = EventsFlow(settings(), NO_EVENTS, dynamics, store, scope="journal")
    outcomes = await retry_event_letters(writer, [letter])

    assert outcomes[letter.id].outcome == "resolved"
    assert dynamics.activity_writes == []
    assert store.ledger_contains([bounce.event_key]) == {bounce.event_key}
    assert len(dynamics.task_writes) == 1  # its follow-up task was never written: now it is, once


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened
