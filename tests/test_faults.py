"""FaultInjector in-process (through asgi_transport) and over a real socket: each fault does what it says."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from crmbridge.emulators.faults import DroppedConnection, FaultConfig
from tests.fault_service import TinyService


@pytest.mark.anyio
async def test_latency_delays_every_api_request() -> None:
    service = TinyService(FaultConfig(latency_ms=60))
    async with service.client() as client:
        started = time.perf_counter()
        response = await client.get("/items")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.06


@pytest.mark.anyio
@pytest.mark.parametrize(("retry_after_s", "header"), [(1.0, "1"), (2.5, "3"), (0.0, "0"), (None, None)])
async def test_throttle_answers_429_with_integer_retry_after_or_none(
    retry_after_s: float | None, header: str | None
) -> None:
    service = TinyService(FaultConfig(throttle_rate=1.0, retry_after_s=retry_after_s))
    async with service.client() as client:
        response = await client.post("/items", json={"name": "a"})
    assert response.status_code == 429
    assert response.headers.get("retry-after") == header
    assert response.json()["error"]["code"] == "429"
    assert service.items == []
    assert service.app.injected == {"throttle": 1}


@pytest.mark.anyio
async def test_error_answers_503_without_applying() -> None:
    service = TinyService(FaultConfig(error_rate=1.0))
    async with service.client() as client:
        response = await client.post("/items", json={"name": "a"})
    assert response.status_code == 503
    assert service.items == []


@pytest.mark.anyio
async def test_drop_before_fails_the_client_and_applies_nothing() -> None:
    service = TinyService(FaultConfig(drop_before_rate=1.0))
    async with service.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/items", json={"name": "a"})
    assert service.items == []
    assert service.app.injected == {"drop_before": 1}


@pytest.mark.anyio
async def test_drop_after_applies_the_request_but_the_client_sees_an_error() -> None:
    service = TinyService(FaultConfig(drop_after_rate=1.0))
    async with service.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/items", json={"name": "a"})
    assert service.items == [{"id": 1, "name": "a"}]
    assert service.app.injected == {"drop_after": 1}


@pytest.mark.anyio
async def test_plain_asgi_transport_would_leak_the_server_side_exception() -> None:
    service = TinyService(FaultConfig(drop_before_rate=1.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://e.test") as client:
        with pytest.raises(DroppedConnection):
            await client.get("/items")


@pytest.mark.anyio
async def test_malformed_keeps_status_and_truncates_the_json_body() -> None:
    service = TinyService(FaultConfig(malformed_rate=1.0))
    async with service.client() as client:
        response = await client.get("/items")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content.startswith(b'{"value"')
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.anyio
async def test_operator_routes_are_never_faulted() -> None:
    service = TinyService(FaultConfig(throttle_rate=1.0))
    async with service.client() as client:
        assert (await client.get("/_emulator/stats")).status_code == 200
        assert (await client.get("/_emulatorish")).status_code == 429  # only the /_emulator/ folder is exempt
        assert (await client.get("/items")).status_code == 429


async def status_sequence(seed: int, count: int = 40) -> list[int]:
    service = TinyService(FaultConfig(seed=seed, throttle_rate=0.3, error_rate=0.3))
    async with service.client() as client:
        return [(await client.get("/items")).status_code for _ in range(count)]


@pytest.mark.anyio
async def test_same_seed_gives_the_same_faults() -> None:
    first = await status_sequence(seed=7)
    assert first == await status_sequence(seed=7)
    assert {200, 429, 503} == set(first)
    assert first != await status_sequence(seed=8)


@pytest.mark.anyio
async def test_reconfiguring_at_run_time_resets_the_sequence() -> None:
    service = TinyService(FaultConfig(seed=3, throttle_rate=0.5))
    async with service.client() as client:
        first = [(await client.get("/items")).status_code for _ in range(20)]
        service.app.update(seed=3)
        again = [(await client.get("/items")).status_code for _ in range(20)]
        service.app.update(throttle_rate=0.0)
        clean = [(await client.get("/items")).status_code for _ in range(5)]
    assert first == again
    assert clean == [200] * 5


def test_config_from_mapping_refuses_unknown_keys_and_bad_rates() -> None:
    assert FaultConfig.from_mapping({"throttle_rate": 0.2}).throttle_rate == 0.2
    with pytest.raises(ValueError, match="unknown fault settings: throtle_rate"):
        FaultConfig.from_mapping({"throtle_rate": 0.2})
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultConfig.from_mapping({"error_rate": 1.5})


@pytest.fixture
def served() -> Iterator[tuple[TinyService, str]]:
    """The tiny service behind uvicorn on a free 127.0.0.1 port, in a thread."""
    service = TinyService(FaultConfig())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service.app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.parametrize(("fault", "applied"), [("drop_before_rate", 0), ("drop_after_rate", 1)])
def test_drops_surface_as_transport_errors_over_a_real_socket(
    served: tuple[TinyService, str], fault: str, applied: int
) -> None:
    service, url = served
    service.app.update(**{fault: 1.0})
    with httpx.Client(base_url=url, timeout=5.0) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/items", json={"name": "a"})
        assert len(service.items) == applied
        service.app.update(**{fault: 0.0})
        assert client.post("/items", json={"name": "b"}).status_code == 201  # the server itself survived
