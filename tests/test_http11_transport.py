"""Http11Transport over real sockets: keep-alive within max_connections, TLS, timeouts and httpx's exceptions."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmbridge.emulators.faults import FaultConfig, FaultInjector
from crmbridge.http import create_client
from crmbridge.http11 import Http11Transport


class Service:
    """Echoes JSON bodies, answers slowly on request, gzips on request; remembers client ports and peak load."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.open = 0
        self.peak = 0
        self.received: list[Any] = []
        self.app = Starlette(
            routes=[
                Route("/echo", self.echo, methods=["POST"]),
                Route("/slow", self.slow, methods=["GET"]),
                Route("/gzip", self.gzipped, methods=["GET"]),
            ]
        )

    async def echo(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.received.append(body)
        return JSONResponse({"echo": body, "host": request.headers["host"]}, status_code=201)

    async def slow(self, request: Request) -> JSONResponse:
        assert request.client is not None
        self.ports.add(request.client.port)
        self.open += 1
        self.peak = max(self.peak, self.open)
        await asyncio.sleep(float(request.query_params.get("s", "0.05")))
        self.open -= 1
        return JSONResponse({"ok": True})

    async def gzipped(self, request: Request) -> Response:
        body = gzip.compress(json.dumps({"zipped": "yes"}).encode())
        return Response(body, headers={"content-encoding": "gzip", "content-type": "application/json"})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(app: Any, *, keep_alive_s: int = 5, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    port = _free_port()
    tls_options: dict[str, Any] = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", timeout_keep_alive=keep_alive_s
    )
    for name, value in tls_options.items():
        setattr(config, name, value)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.anyio
async def test_concurrent_requests_stay_within_max_connections_and_reuse_them() -> None:
    service = Service()
    with served(service.app) as origin:
        transport = Http11Transport(max_connections=12)
        async with create_client(base_url=origin, transport=transport) as client:
            for _ in range(2):  # the second round runs on the kept-alive connections of the first
                responses = await asyncio.gather(*(client.get("/slow") for _ in range(30)))
                assert [r.status_code for r in responses] == [200] * 30
            assert transport.open_connections == 12
    assert service.peak == 12
    assert len(service.ports) == 12
    assert transport.connections_opened == 12


@pytest.mark.anyio
async def test_a_post_body_arrives_and_the_json_answer_comes_back() -> None:
    service = Service()
    with served(service.app) as origin:
        async with create_client(base_url=origin, transport=Http11Transport(max_connections=2)) as client:
            response = await client.post("/echo", json={"externalId": "c-1", "name": "Zoë"})
            gzipped = await client.get("/gzip")
    assert response.status_code == 201
    assert response.json() == {"echo": {"externalId": "c-1", "name": "Zoë"}, "host": origin.split("//")[1]}
    assert service.received == [{"externalId": "c-1", "name": "Zoë"}]
    assert gzipped.json() == {"zipped": "yes"}  # Content-Encoding is undone as httpx does


@pytest.mark.anyio
async def test_https_with_a_trusted_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    service = Service()
    with served(service.app, tls=(cert_file, key_file)) as origin:
        trusted = Http11Transport(max_connections=2, verify=str(ca_file))
        async with create_client(base_url=origin, transport=trusted) as client:
            assert (await client.post("/echo", json={"a": 1})).status_code == 201
        untrusted = Http11Transport(max_connections=2)  # the system store does not know this CA
        async with create_client(base_url=origin, transport=untrusted) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post("/echo", json={"a": 2})
    assert service.received == [{"a": 1}]


@pytest.mark.anyio
async def test_timeouts_and_refusals_raise_httpx_exceptions() -> None:
    service = Service()
    with served(service.app) as origin:
        async with create_client(base_url=origin, transport=Http11Transport(max_connections=1), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow", params={"s": "2"})
            # The timed-out connection was dropped, not reused with a response still on its way.
            assert (await client.get("/slow", params={"s": "0"})).status_code == 200
            held = asyncio.create_task(client.get("/slow", params={"s": "0.5"}, timeout=5))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):  # the only connection is busy for longer than the timeout
                await client.get("/slow", params={"s": "0"}, timeout=httpx.Timeout(5, pool=0.1))
            assert (await held).status_code == 200
    async with create_client(base_url=origin, transport=Http11Transport(max_connections=1)) as client:
        with pytest.raises(httpx.ConnectError):  # the server is gone: nothing listens on the port
            await client.get("/slow")


@pytest.mark.anyio
async def test_a_response_lost_after_the_write_was_applied_is_a_remote_protocol_error() -> None:
    service = Service()
    dropping = FaultInjector(service.app, FaultConfig(drop_after_rate=1.0))
    with served(dropping) as origin:
        async with create_client(base_url=origin, transport=Http11Transport(max_connections=1)) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/echo", json={"applied": True})
            dropping.update(drop_after_rate=0.0)
            assert (await client.post("/echo", json={"again": True})).status_code == 201
    assert service.received == [{"applied": True}, {"again": True}]


@pytest.mark.anyio
async def test_a_connection_the_server_closed_while_idle_is_replaced_not_used() -> None:
    service = Service()
    with served(service.app, keep_alive_s=1) as origin:
        transport = Http11Transport(max_connections=1)
        async with create_client(base_url=origin, transport=transport) as client:
            assert (await client.post("/echo", json={"n": 1})).status_code == 201
            await asyncio.sleep(1.5)  # uvicorn closes the idle connection after 1 s
            assert (await client.post("/echo", json={"n": 2})).status_code == 201
    assert transport.connections_opened == 2
    assert service.received == [{"n": 1}, {"n": 2}]


def test_refuses_a_pool_without_connections() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        Http11Transport(max_connections=0)


def test_an_ssl_context_is_used_as_given() -> None:
    context = ssl.create_default_context()
    assert Http11Transport(max_connections=1, verify=context)._ssl is context
