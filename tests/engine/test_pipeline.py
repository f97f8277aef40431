"""OrderedPipeline: batches written at once, committed strictly in order, nothing committed past a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crmbridge.engine.pipeline import OrderedPipeline

pytestmark = pytest.mark.anyio


class Gates:
    """One gate per batch: a batch's write finishes only when the test opens its gate."""

    def __init__(self, count: int) -> None:
        self.gates = [asyncio.Event() for _ in range(count)]
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def write(self, number: int, *, fail: bool = False) -> int:
        self.started.append(number)
        try:
            await self.gates[number].wait()
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        if fail:
            raise RuntimeError(f"batch {number} refused")
        return number


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_later_batches_finishing_first_are_committed_only_after_the_earlier_ones() -> None:
    gates = Gates(3)
    committed: list[int] = []

    async def commit(result: int) -> None:
        committed.append(result)

    async with OrderedPipeline(depth=3) as pipeline:
        for number in range(3):
            await pipeline.submit(gates.write(number), commit)
        gates.gates[2].set()
        gates.gates[1].set()
        await settle()
        assert committed == []  # batch 0 is not acknowledged yet: nothing after it may commit
        gates.gates[0].set()
    assert committed == [0, 1, 2]


async def test_submit_waits_while_depth_batches_are_in_flight() -> None:
    gates = Gates(3)
    committed: list[int] = []

    async def commit(result: int) -> None:
        committed.append(result)

    async with OrderedPipeline(depth=2) as pipeline:
        await pipeline.submit(gates.write(0), commit)
        await pipeline.submit(gates.write(1), commit)
        third = asyncio.ensure_future(pipeline.submit(gates.write(2), commit))
        await settle()
        assert not third.done()  # two in flight: the third waits for the oldest
        assert gates.started == [0, 1]
        gates.gates[0].set()
        await third
        assert committed == [0]
        gates.gates[1].set()
        gates.gates[2].set()
    assert committed == [0, 1, 2]
    assert pipeline.peak_in_flight == 2


async def test_a_failed_batch_stops_the_pass_commits_the_batches_before_it_and_cancels_the_rest() -> None:
    gates = Gates(5)
    committed: list[int] = []

    async def commit(result: int) -> None:
        committed.append(result)

    async def scenario() -> None:
        async with OrderedPipeline(depth=4) as pipeline:
            await pipeline.submit(gates.write(0), commit)
            await pipeline.submit(gates.write(1), commit)
            await pipeline.submit(gates.write(2, fail=True), commit)
            await pipeline.submit(gates.write(3), commit)
            gates.gates[0].set()
            gates.gates[2].set()  # fails while batch 1 is still in flight
            await settle()
            await pipeline.submit(gates.write(4), commit)  # batch 0 is committed to make room
            assert committed == [0]
        # Leaving the block waits for batch 1, sees batch 2 fail and stops: batch 1 was never acknowledged, so
        # neither it nor anything after it is committed, and what was still in flight is cancelled.

    with pytest.raises(RuntimeError, match="batch 2 refused"):
        await scenario()
    assert committed == [0]
    assert {1, 3} <= set(gates.cancelled)  # batch 4 is cancelled too, before or after it started
    assert 4 not in committed


async def test_leaving_the_block_with_an_error_cancels_what_is_in_flight_and_commits_nothing_more() -> None:
    gates = Gates(2)
    committed: list[int] = []

    async def commit(result: int) -> None:
        committed.append(result)

    async def scenario() -> None:
        async with OrderedPipeline(depth=2) as pipeline:
            await pipeline.submit(gates.write(0), commit)
            await settle()
            raise KeyboardInterrupt  # e.g. a shutdown while batch 0 is in flight

    with pytest.raises(KeyboardInterrupt):
        await scenario()
    assert committed == []
    assert gates.cancelled == [0]


async def test_waiting_for_the_oldest_batch_does_not_spin_while_a_later_one_is_done() -> None:
    gates = Gates(2)
    committed: list[int] = []
    wakeups = 0
    real_wait = asyncio.wait

    async def counting_wait(*args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return await real_wait(*args, **kwargs)

    async def commit(result: int) -> None:
        committed.append(result)

    asyncio.wait = counting_wait  # type: ignore[assignment]
    try:
        async with OrderedPipeline(depth=2) as pipeline:
            await pipeline.submit(gates.write(0), commit)
            await pipeline.submit(gates.write(1), commit)
            gates.gates[1].set()
            await settle()
            finishing = asyncio.ensure_future(pipeline.finish())
            for _ in range(50):
                await asyncio.sleep(0)
            gates.gates[0].set()
            await finishing
    finally:
        asyncio.wait = real_wait  # type: ignore[assignment]
    assert committed == [0, 1]
    assert wakeups <= 2  # one wait for batch 0, not one per turn of the event loop
