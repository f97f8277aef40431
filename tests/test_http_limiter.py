"""AdaptiveLimiter: a hard ceiling on concurrency, halving and pausing on 429, growing back while healthy."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from crmbridge.http import Action, AdaptiveLimiter, RetryPolicy
from tests.http_fakes import FakeTime, ScriptedTransport


def limiter_on(fake: FakeTime, **settings: int | float) -> AdaptiveLimiter:
    return AdaptiveLimiter(clock=fake.clock, sleep=fake.sleep, **settings)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_in_flight_never_exceeds_the_maximum_under_200_concurrent_tasks() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=4, maximum=8, increase_every=3)
    seen: list[int] = []

    async def work() -> None:
        async with limiter.slot():
            seen.append(limiter.in_flight)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            limiter.on_success()

    await asyncio.gather(*(work() for _ in range(200)))
    assert max(seen) <= 8
    assert limiter.peak_in_flight == 8  # it did grow to the ceiling, and no further
    assert limiter.limit == 8
    assert limiter.in_flight == 0


@pytest.mark.anyio
async def test_a_429_halves_the_limit_but_not_below_the_minimum() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=16, minimum=3, maximum=16)
    limits = []
    for _ in range(4):
        fake.now += 10  # each throttle after the previous pause ended
        limiter.on_throttled(1.0)
        limits.append(limiter.limit)
    assert limits == [8, 4, 3, 3]
    assert limiter.throttled == 4


@pytest.mark.anyio
async def test_a_burst_of_429s_within_one_pause_decreases_once() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=16, maximum=16)
    for _ in range(5):
        limiter.on_throttled(2.0)
    assert limiter.limit == 8
    assert limiter.throttled == 5


@pytest.mark.anyio
async def test_a_429_pauses_every_slot_for_retry_after() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=4, maximum=4)
    started_at: list[float] = []

    async def work() -> None:
        async with limiter.slot():
            started_at.append(fake.now)

    limiter.on_throttled(30.0)
    assert limiter.paused_for == 30.0
    await asyncio.gather(*(work() for _ in range(6)))
    assert started_at == [1030.0] * 6
    assert limiter.paused_for == 0.0


@pytest.mark.anyio
async def test_limit_doubles_per_round_trip_until_the_first_429() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=4, minimum=1, maximum=100, increase_every=5)
    for _ in range(4):  # one round trip of 4 requests: each success adds a slot
        limiter.on_success()
    assert limiter.limit == 8
    for _ in range(200):
        limiter.on_success()
    assert limiter.limit == 100


@pytest.mark.anyio
async def test_limit_grows_back_by_one_every_n_healthy_responses() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=10, minimum=1, maximum=12, increase_every=5)
    limiter.on_throttled(None)  # after a 429: additive increase
    fake.now += 100
    for _ in range(1000):  # patient near the old ceiling (10), then up to the maximum
        limiter.on_success()
    assert limiter.limit == 12  # +1 per 5 healthy responses, capped at the maximum


@pytest.mark.anyio
async def test_limit_approaches_the_level_that_drew_a_429_with_patience() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=8, minimum=1, maximum=10, increase_every=5)
    limiter.on_throttled(None)
    assert limiter.limit == 4
    growth = [0]  # growth[n] = limit after n healthy responses
    for _ in range(130):
        limiter.on_success()
        growth.append(limiter.limit)
    assert (growth[4], growth[5], growth[10], growth[15]) == (4, 5, 6, 7)  # normal pace below the old ceiling
    assert (growth[64], growth[65]) == (7, 8)  # back to 8, where the 429 came from: 10 times slower
    assert (growth[114], growth[115]) == (8, 9)  # above it: still patient
    assert growth[120] == 10  # held above the old ceiling: normal pace again, up to the maximum
    assert growth[130] == 10


@pytest.mark.anyio
async def test_a_throttle_resets_the_healthy_streak() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=8, maximum=8, increase_every=3)
    limiter.on_throttled(None)  # leaves slow start: 8 -> 4
    fake.now += 100
    limiter.on_success()
    limiter.on_success()
    fake.now += 100
    limiter.on_throttled(None)  # 4 -> 2, and the two healthy responses no longer count
    limiter.on_success()
    assert limiter.limit == 2


@pytest.mark.anyio
async def test_retry_policy_reports_throttles_and_successes_to_the_limiter() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=8, maximum=8, increase_every=100)
    transport = ScriptedTransport(httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200))
    retry = RetryPolicy(sleep=fake.sleep, clock=fake.clock, jitter=0.0)

    def classify(response: httpx.Response) -> Action:
        return Action.PAUSE if response.status_code == 429 else Action.SUCCESS

    async with transport.client() as client:
        response = await retry.send(
            client, client.build_request("GET", "/x"), classify=classify, idempotent=True, limiter=limiter
        )
    assert response.status_code == 200
    assert (limiter.limit, limiter.throttled, limiter.in_flight, limiter.peak_in_flight) == (4, 1, 0, 1)
    assert fake.now == 1005.0  # the policy's pause and the limiter's pause overlap, they do not add up


def test_limiter_refuses_inconsistent_bounds() -> None:
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        AdaptiveLimiter(initial=20, maximum=16)


@pytest.mark.anyio
async def test_a_waiter_cancelled_after_its_wake_up_passes_the_slot_on() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=1, maximum=1)
    holder_may_leave = asyncio.Event()
    got_slot: list[str] = []
    waiters: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with limiter.slot():
            await holder_may_leave.wait()
        waiters[0].cancel()  # the freed slot woke the oldest waiter; it is cancelled before it runs

    async def waiter(name: str) -> None:
        async with limiter.slot():
            got_slot.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled, patient = asyncio.create_task(waiter("cancelled")), asyncio.create_task(waiter("patient"))
    waiters.append(cancelled)
    await asyncio.sleep(0)  # both queue behind the holder
    holder_may_leave.set()
    await first
    await asyncio.wait_for(patient, timeout=5)
    assert got_slot == ["patient"]
    assert cancelled.cancelled()
    assert limiter.in_flight == 0


@pytest.mark.anyio
async def test_waiters_get_slots_in_arrival_order() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=2, maximum=2)
    order: list[int] = []

    async def work(number: int) -> None:
        async with limiter.slot():
            order.append(number)
            await asyncio.sleep(0)

    await asyncio.gather(*(work(n) for n in range(20)))
    assert order == list(range(20))
    assert limiter.in_flight == 0


@pytest.mark.anyio
async def test_waiters_cancelled_just_before_a_slot_frees_end_cancelled_and_the_next_waiter_runs() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=1, maximum=1)
    holder_may_leave = asyncio.Event()
    waiters: list[asyncio.Task[None]] = []
    got_slot: list[int] = []

    async def holder() -> None:
        async with limiter.slot():
            await holder_may_leave.wait()
            for task in waiters[:2]:
                task.cancel()  # in the same step as the release below: the wake-up meets their cancelled futures

    async def waiter(number: int) -> None:
        async with limiter.slot():
            got_slot.append(number)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters.extend(asyncio.create_task(waiter(n)) for n in range(3))
    await asyncio.sleep(0)
    holder_may_leave.set()
    await first
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["CancelledError", "CancelledError", "NoneType"]
    assert got_slot == [2]
    assert limiter.in_flight == 0


@pytest.mark.anyio
async def test_429s_answering_requests_sent_before_the_pause_began_do_not_extend_it() -> None:
    fake = FakeTime()
    limiter = limiter_on(fake, initial=8, maximum=8)
    sent = fake.now
    fake.now += 0.05
    limiter.on_throttled(1.0, sent_at=sent)  # the first answer of a burst: pause until +1 s from now
    first_deadline = fake.now + 1.0
    fake.now += 0.3  # the rest of the burst answers later, each saying 1 s from its own arrival
    limiter.on_throttled(1.0, sent_at=sent)
    limiter.on_throttled(1.0, sent_at=sent)
    assert limiter.paused_for == pytest.approx(first_deadline - fake.now)
    assert limiter.limit == 4  # one signal, one decrease
    fake.now = first_deadline + 0.01
    limiter.on_throttled(2.0, sent_at=first_deadline)  # a request sent after the pause: a new signal
    assert limiter.paused_for == pytest.approx(2.0)
    assert limiter.limit == 2
