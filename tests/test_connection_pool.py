"""ShardedPoolTransport: many connections in small pools, never more than asked for, each freed when its body closes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crmbridge.connection_pool import ShardedPoolTransport
from crmbridge.http import create_client


class SlowService:
    """Answers after a short wait; remembers the client ports (one per connection) and the peak of open requests."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.open = 0
        self.peak = 0
        self.app = Starlette(routes=[Route("/slow", self.slow)])

    async def slow(self, request: Request) -> JSONResponse:
        assert request.client is not None
        self.ports.add(request.client.port)
        self.open += 1
        self.peak = max(self.peak, self.open)
        await asyncio.sleep(0.05)
        self.open -= 1
        return JSONResponse({"ok": True})


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_connections_are_split_into_shards_of_at_most_the_shard_size() -> None:
    assert ShardedPoolTransport(max_connections=20, shard_size=8).sizes == [7, 7, 6]
    assert ShardedPoolTransport(max_connections=128).sizes == [8] * 16
    assert ShardedPoolTransport(max_connections=3, shard_size=8).sizes == [3]
    with pytest.raises(ValueError, match="max_connections"):
        ShardedPoolTransport(max_connections=0)


@pytest.mark.anyio
async def test_many_concurrent_requests_use_at_most_max_connections_and_reuse_them() -> None:
    service = SlowService()
    with served(service.app) as origin:
        transport = ShardedPoolTransport(max_connections=12, shard_size=4)
        async with create_client(base_url=origin, transport=transport) as client:
            for _ in range(2):  # the second round runs on the kept-alive connections of the first
                responses = await asyncio.gather(*(client.get("/slow") for _ in range(30)))
                assert [r.status_code for r in responses] == [200] * 30
            assert transport.open_requests == [0, 0, 0]
    assert service.peak == 12  # every connection was used at once: no shard starved while another queued
    assert len(service.ports) == 12  # never more connections than asked for, and all reused in round two


@pytest.mark.anyio
async def test_a_streamed_response_holds_its_shard_until_closed() -> None:
    service = SlowService()
    with served(service.app) as origin:
        transport = ShardedPoolTransport(max_connections=4, shard_size=2)
        async with create_client(base_url=origin, transport=transport) as client:
            async with client.stream("GET", "/slow") as response:
                assert response.status_code == 200
                assert sorted(transport.open_requests) == [0, 1]
                await response.aread()
            assert transport.open_requests == [0, 0]


@pytest.mark.anyio
async def test_create_client_shards_large_pools_over_a_real_socket() -> None:
    service = SlowService()
    with served(service.app) as origin:
        async with create_client(base_url=origin, max_connections=24) as client:
            responses = await asyncio.gather(*(client.get("/slow") for _ in range(24)))
    assert all(r.json() == {"ok": True} for r in responses)
    assert service.peak == 24
