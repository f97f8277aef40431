"""serve_web runs the app on a real socket inside the caller's event loop and stops on request."""

from __future__ import annotations

import socket

import httpx
import pytest

from crmbridge.state import StateStore
from crmbridge.web import FixedStatus, Metrics, create_web_app, serve_web

pytestmark = pytest.mark.anyio


async def test_served_app_answers_over_a_socket_and_stops(
    store: StateStore, status: FixedStatus, metrics: Metrics
) -> None:
    server = await serve_web(create_web_app(store, status, metrics, None, token=None), port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{server.url}/healthz")
        assert response.status_code == 200
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(f"{server.url}/healthz")


async def test_a_busy_port_is_an_os_error_for_the_caller(
    store: StateStore, status: FixedStatus, metrics: Metrics
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            await serve_web(create_web_app(store, status, metrics, None, token=None), port=port)
