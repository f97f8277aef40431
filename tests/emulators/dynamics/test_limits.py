"""§7.1-7.2 Service protection limits: per-user sliding window of requests, execution time and concurrency."""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.dynamics.limits import LimitSettings, ServiceProtection
from crmbridge.emulators.dynamics.protocol import ODataError
from crmbridge.emulators.faults import FaultConfig

from .conftest import BASE, make_app

CONTACT = "Microsoft.Dynamics.CRM.contact"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_count_window_slides() -> None:
    clock = FakeClock()
    limits = ServiceProtection(LimitSettings(max_requests=3, window_s=10), now=clock)
    for _ in range(3):
        limits.admit("app")
        limits.release("app", {})
    with pytest.raises(ODataError) as refused:
        limits.admit("app")
    assert (refused.value.status, refused.value.code) == (429, "0x80072322")
    assert refused.value.message == "Number of requests exceeded the limit of 3 over time window of 10 seconds."
    assert refused.value.headers["Retry-After"] == "10"
    clock.now += 10.5
    limits.admit("app")
    limits.admit("other-user")  # limits are per user


def test_execution_time_is_charged_per_row_written() -> None:
    clock = FakeClock()
    limits = ServiceProtection(LimitSettings(max_execution_ms=1000, request_ms=0, row_write_ms=10), now=clock)
    limits.admit("app")
    limits.release("app", {"rows_written": 99})  # 990 ms: still under
    limits.admit("app")
    limits.release("app", {"rows_written": 1})
    with pytest.raises(ODataError) as refused:
        limits.admit("app")
    assert refused.value.code == "0x80072321"
    assert refused.value.message.startswith(
        "Combined execution time of incoming requests exceeded limit of 1,000 milliseconds over time window of 300"
    )


@pytest.fixture
def app() -> Starlette:
    limits = LimitSettings(max_requests=1000, max_execution_ms=500, request_ms=1, row_write_ms=1, max_concurrent=2)
    return make_app(limits=limits, faults=FaultConfig(latency_ms=150))


@pytest.mark.anyio
async def test_a_bulk_write_costs_what_its_rows_cost(api: httpx.AsyncClient) -> None:
    targets = [{"@odata.type": CONTACT, "lastname": f"Row {i}"} for i in range(600)]
    response = await api.post(f"{BASE}contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})
    assert response.status_code == 200
    refused = await api.get(f"{BASE}WhoAmI")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "0x80072321"
    assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.anyio
async def test_concurrency_limit_fails_at_once(api: httpx.AsyncClient) -> None:
    codes: list[int] = []

    async def call() -> None:
        codes.append((await api.get(f"{BASE}WhoAmI")).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(call)
    assert sorted(codes) == [200, 200, 429, 429]


@pytest.mark.anyio
async def test_limits_and_faults_are_configurable_at_run_time(api: httpx.AsyncClient) -> None:
    assert (await api.put("/_emulator/limits", json={"max_requests": 1, "window_s": 60})).status_code == 200
    assert (await api.put("/_emulator/faults", json={"latency_ms": 0})).status_code == 200
    assert (await api.get(f"{BASE}WhoAmI")).status_code == 200
    throttled = await api.get(f"{BASE}WhoAmI")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "0x80072322"
    stats = (await api.get("/_emulator/stats")).json()
    assert stats["limits"]["throttled"] == {"0x80072322": 1}
    assert (await api.put("/_emulator/limits", json={"bogus": 1})).status_code == 400
