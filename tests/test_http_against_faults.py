"""RetryPolicy against the fault-injecting emulator middleware, in-process: the two halves agree."""

from __future__ import annotations

import httpx
import pytest

from crmbridge.emulators.faults import FaultConfig
from crmbridge.http import Action, AdaptiveLimiter, HttpStats, MaybeAppliedError, RetryPolicy
from fault_service import TinyService
from http_fakes import FakeTime


def classify(response: httpx.Response) -> Action:
    if response.status_code == 429:
        return Action.PAUSE
    if response.status_code >= 500:
        return Action.RETRY
    return Action.SUCCESS


@pytest.mark.anyio
async def test_idempotent_reads_get_through_drops_errors_and_throttling() -> None:
    fake = FakeTime()
    service = TinyService(
        FaultConfig(seed=11, throttle_rate=0.2, retry_after_s=2, error_rate=0.1, drop_before_rate=0.1)
    )
    retry = RetryPolicy(sleep=fake.sleep, clock=fake.clock, max_attempts=10)
    limiter = AdaptiveLimiter(initial=4, clock=fake.clock, sleep=fake.sleep)
    stats = HttpStats()
    async with service.client() as client:
        for _ in range(30):
            request = client.build_request("GET", "/items")
            response = await retry.send(
                client, request, classify=classify, idempotent=True, limiter=limiter, stats=stats
            )
            assert response.status_code == 200
    injected = service.app.injected
    assert stats.throttled == injected["throttle"] == limiter.throttled
    assert stats.requests == 30 + stats.retries
    assert stats.retries == injected["throttle"] + injected["error"] + injected["drop_before"]
    assert fake.sleeps.count(2.0) >= injected["throttle"]


@pytest.mark.anyio
async def test_a_create_whose_response_was_lost_is_not_sent_twice() -> None:
    fake = FakeTime()
    service = TinyService(FaultConfig(drop_after_rate=1.0))
    retry = RetryPolicy(sleep=fake.sleep, clock=fake.clock)
    async with service.client() as client:
        request = client.build_request("POST", "/items", json={"name": "once"})
        with pytest.raises(MaybeAppliedError) as caught:
            await retry.send(client, request, classify=classify, idempotent=False)
    assert service.items == [{"id": 1, "name": "once"}]
    assert "RemoteProtocolError" in str(caught.value)


@pytest.mark.anyio
async def test_a_create_refused_with_429_is_sent_again_and_applied_once() -> None:
    fake = FakeTime()
    service = TinyService(FaultConfig(throttle_rate=1.0, retry_after_s=3))
    retry = RetryPolicy(sleep=fake.sleep, clock=fake.clock)
    async with service.client() as client:

        async def lift_throttle_after_first_pause(seconds: float) -> None:
            service.app.update(throttle_rate=0.0)
            await fake.sleep(seconds)

        retry.sleep = lift_throttle_after_first_pause
        request = client.build_request("POST", "/items", json={"name": "once"})
        response = await retry.send(client, request, classify=classify, idempotent=False)
    assert response.status_code == 201
    assert service.items == [{"id": 1, "name": "once"}]
    assert fake.sleeps == [3.0]
