"""How the events package plugs into an emulator: sync bearer checks, token scopes, the operator prefix, the
response size cap, background publishing, and a journal served over a real socket on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import anyio
import httpx
import pytest
import uvicorn
from acs_events_app import HEADERS, JOURNAL_PATH, REGISTRATION, FakeToken, in_memory_targets, simulate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from crmbridge.emulators.campaign.events import EventsHub, ManualClock, journal_routes, operator_routes

pytestmark = pytest.mark.anyio


async def eventually(condition: Callable[[], object], timeout_s: float = 10) -> None:
    """Polls a condition of code that offers nothing to wait on (uvicorn's ``started``, the pump's progress)."""
    with anyio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


def sync_bearer(request: Request) -> FakeToken:
    return FakeToken("emu-client", ("adobeio_api",))


async def test_journal_accepts_a_synchronous_bearer_check(hub: EventsHub) -> None:
    app = Starlette(routes=journal_routes(sync_bearer, hub, REGISTRATION))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        assert (await client.get(JOURNAL_PATH, headers=HEADERS)).status_code == 204


async def test_a_token_without_the_io_management_scope_gets_403(http: httpx.AsyncClient) -> None:
    response = await http.get(JOURNAL_PATH, headers={**HEADERS, "Authorization": "Bearer campaign-only"})
    assert response.status_code == 403
    assert "adobeio_api" in response.json()["message"]


async def test_operator_routes_mount_inside_an_app_already_at_the_operator_prefix(hub: EventsHub) -> None:
    operator = Starlette(routes=operator_routes(hub, in_memory_targets, prefix=""))
    app = Starlette(routes=[Mount("/_emulator", app=operator)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        report = await simulate(client, target={"count": 3})
        assert report["messages"] == 3
        assert (await client.get("/_emulator/journal")).json()["events"] >= 1


async def test_a_page_stops_before_the_response_size_cap_but_never_returns_nothing(
    hub: EventsHub, clock: ManualClock
) -> None:
    app = Starlette(
        routes=journal_routes(sync_bearer, hub, REGISTRATION, max_response_bytes=4000)
        + operator_routes(hub, in_memory_targets)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        await simulate(client, target={"count": 30})
        clock.advance(timedelta(days=4))
        page = await client.get(f"{JOURNAL_PATH}?limit=30", headers=HEADERS)
        assert 1 <= page.json()["_page"]["count"] < 30
        assert len(page.content) <= 4000 + 1000
    tiny = Starlette(routes=journal_routes(sync_bearer, hub, REGISTRATION, max_response_bytes=10))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tiny), base_url="http://127.0.0.1") as client:
        assert (await client.get(JOURNAL_PATH, headers=HEADERS)).json()["_page"]["count"] == 1


async def test_pump_publishes_events_as_the_clock_passes_them(http: httpx.AsyncClient, hub: EventsHub) -> None:
    clock: ManualClock = hub.clock  # type: ignore[assignment]
    await simulate(http, target={"count": 10}, rates={"bounce_rate": 0, "open_rate": 0})
    before = hub.stats()["events"]
    clock.advance(timedelta(hours=1))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hub.pump, 0.01)
        await eventually(lambda: not hub.stats()["pendingEvents"])
        tasks.cancel_scope.cancel()
    assert (before, hub.stats()["events"]) == (1, 10)


async def test_journal_pages_over_a_real_socket_keep_every_link_header(hub: EventsHub, clock: ManualClock) -> None:
    app = Starlette(routes=journal_routes(sync_bearer, hub, REGISTRATION) + operator_routes(hub, in_memory_targets))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        await eventually(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await simulate(client, target={"count": 5})
            clock.advance(timedelta(days=4))
            response = await client.get(f"{JOURNAL_PATH}?limit=2", headers=HEADERS)
            end = await client.get(f"{JOURNAL_PATH}?latest=true", headers=HEADERS)
        server.should_exit = True
    assert response.status_code == 200
    assert len(response.headers.get_list("link")) == 6
    assert end.status_code == 204
    assert end.headers["retry-after"] == "10"
