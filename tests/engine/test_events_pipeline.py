"""The events flow with batches in flight side by side: the position never passes an unacknowledged batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crmbridge.engine.events import EventsFlow
from crmbridge.engine.ports import EventBatch
from crmbridge.exceptions import CheckpointExpired, RecordError, TransientError
from crmbridge.records import EventType
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeDynamics, FakeEventFeed
from tests.engine.test_events_flow import DELIVERY, event, settings

pytestmark = pytest.mark.anyio


@dataclass
class HeldDynamics(FakeDynamics):
    """FakeDynamics whose first activity write is held until the test lets it go (or makes it fail)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    fail_first: bool = False
    started: int = 0

    async def upsert_activities(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        self.started += 1
        if self.started == 1:
            await self.release.wait()
            if self.fail_first:
                raise TransientError("outage while writing the first batch (fake)")
        return await super().upsert_activities(rows)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


async def wait_until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the flow did not get there")


async def test_later_batches_written_first_wait_for_the_first_before_the_position_moves(store: StateStore) -> None:
    dynamics = HeldDynamics({"c1", "c2", "c3"})
    flow = EventsFlow(settings(), FakeEventFeed(list(DELIVERY), batch_size=3), dynamics, store, scope="journal")
    running = asyncio.ensure_future(flow.run_pass())
    await wait_until(lambda: dynamics.started == 3)  # batches 2 and 3 written while batch 1 is held
    assert len(dynamics.activities) == 2  # batch 2's click and hard bounce (batch 3 has only unmatched events)
    assert store.checkpoint(Flow.EVENTS, "journal") is None
    assert store.ledger_contains({e.event_key for e in DELIVERY}) == set()
    dynamics.release.set()
    stats = await running
    checkpoint = store.checkpoint(Flow.EVENTS, "journal")
    assert checkpoint is not None and checkpoint.value == "8"
    assert (stats.written, len(dynamics.activities), len(dynamics.tasks)) == (3, 3, 2)


async def test_a_failed_first_batch_commits_nothing_after_it_and_the_rerun_writes_each_activity_once(
    store: StateStore,
) -> None:
    dynamics = HeldDynamics({"c1", "c2", "c3"}, fail_first=True)
    feed = FakeEventFeed(list(DELIVERY), batch_size=3)
    flow = EventsFlow(settings(), feed, dynamics, store, scope="journal")
    running = asyncio.ensure_future(flow.run_pass())
    await wait_until(lambda: dynamics.started == 3)
    dynamics.release.set()
    with pytest.raises(TransientError):
        await running
    assert store.checkpoint(Flow.EVENTS, "journal") is None  # batches 2 and 3 were written, but not committed
    dynamics.fail_first = False
    stats = await EventsFlow(settings(), feed, dynamics, store, scope="journal").run_pass()
    assert stats.written == 3
    assert len(dynamics.activities) == 3
    assert len(dynamics.tasks) == 2


async def test_an_event_repeated_in_a_batch_still_in_flight_is_a_duplicate_not_a_second_write(
    store: StateStore,
) -> None:
    dynamics = HeldDynamics({"c1"})
    repeated = [event(EventType.OPEN, "c1", "b1", 5), event(EventType.CLICK, "c1", "b1", 6, url="https://x.test/")]
    feed = FakeEventFeed([*repeated, *repeated], batch_size=2)
    flow = EventsFlow(settings(), feed, dynamics, store, scope="journal")
    running = asyncio.ensure_future(flow.run_pass())
    await wait_until(lambda: dynamics.started >= 1)
    dynamics.release.set()
    stats = await running
    assert (stats.written, stats.duplicates) == (2, 2)
    assert dynamics.calls == 1  # the second batch had nothing new to write


async def test_batches_in_flight_when_the_journal_answers_410_are_committed_before_the_gap_is_handled(
    store: StateStore,
) -> None:
    dynamics = HeldDynamics({"c1", "c2", "c3"})
    first_page, newer = DELIVERY[2:4], [event(EventType.OPEN, "c3", "b3", 30)]  # an open and a click of c1

    class ExpiringJournal:
        """Yields one page; the next read answers 410 (while that page is still being written)."""

        async def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[EventBatch]:
            if after_gap:
                yield EventBatch(newer, "after-gap", caught_up=True)
                return
            yield EventBatch(first_page, "page-1")
            await wait_until(lambda: dynamics.started >= 1)
            raise CheckpointExpired("position expired (fake 410)")

    running = asyncio.ensure_future(
        EventsFlow(settings(), ExpiringJournal(), dynamics, store, scope="journal").run_pass()
    )
    await wait_until(lambda: dynamics.started >= 1)
    await asyncio.sleep(0.01)
    dynamics.release.set()
    stats = await running
    assert stats.gaps == 1
    assert (stats.written, len(dynamics.activities)) == (3, 3)  # the page read before the gap was not dropped
    assert store.ledger_contains({e.event_key for e in first_page}) == {e.event_key for e in first_page}
