"""Running the Dataverse emulator for client tests: in-process (ASGI transport) or served by uvicorn over HTTPS.

In-process, MSAL cannot be used (it insists on https and makes its own calls), so :class:`EmulatorTokens`
fetches tokens from the emulator's token endpoint through the same ASGI transport. Over a socket the client
is built exactly as in production: ``DataverseClient.from_settings`` with MSAL and the emulator's CA file.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from crmbridge.config import DynamicsSettings
from crmbridge.dynamics.client import DataverseClient
from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings, create_app
from crmbridge.emulators.dynamics.tls import make_tls_files
from crmbridge.http import RetryPolicy

ORIGIN = "https://org.example.test"


class EmulatorTokens:
    """Client credentials against the emulator's token endpoint, for in-process tests (MSAL needs a socket)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, client_id: str, secret: str, tenant: str) -> None:
        self._transport = transport
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"{ORIGIN}/.default",
        }
        self._url = f"{ORIGIN}/{tenant}/oauth2/v2.0/token"
        self._token: str | None = None
        self.fetched = 0

    async def token(self) -> str:
        if self._token is None:
            async with httpx.AsyncClient(transport=self._transport, timeout=10) as client:
                response = await client.post(self._url, data=self._form)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
            self.fetched += 1
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def close(self) -> None:
        return None


def make_emulator(**settings: Any) -> Starlette:
    return create_app(DynamicsEmulatorSettings(**settings))


def settings_for(origin: str, **overrides: Any) -> DynamicsSettings:
    values: dict[str, Any] = {
        "org_url": origin,
        "tenant_id": DEFAULT_CLIENT.tenant,
        "client_id": DEFAULT_CLIENT.client_id,
        "client_secret": DEFAULT_CLIENT.client_secret,
        "authority_host": origin,
    }
    values.update(overrides)
    return DynamicsSettings(**values)


def in_process_client(
    app: Starlette, *, client_id: str = DEFAULT_CLIENT.client_id, secret: str = DEFAULT_CLIENT.client_secret, **kw: Any
) -> DataverseClient:
    """A production-shaped client whose transport is the emulator app itself."""
    transport = httpx.ASGITransport(app=app)
    tokens = EmulatorTokens(transport, client_id, secret, DEFAULT_CLIENT.tenant)
    settings = settings_for(ORIGIN, client_id=client_id, client_secret=secret, **kw)
    retry = RetryPolicy(service="dataverse", max_elapsed=120.0)
    return DataverseClient.from_settings(settings, tokens=tokens, transport=transport, retry=retry)


async def operator(app: Starlette, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an ``/_emulator/`` operator route (seed, mutate, clock, limits)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, timeout=60) as client:
        response = await client.request(method, f"/_emulator/{path}", json=body)
    response.raise_for_status()
    return response.json()


@dataclass(frozen=True)
class ServedEmulator:
    app: Starlette
    origin: str  # https://127.0.0.1:PORT
    ca_path: Path

    def settings(self, **overrides: Any) -> DynamicsSettings:
        return settings_for(self.origin, ca_bundle=self.ca_path, **overrides)


@contextmanager
def served_over_https(app: Starlette, directory: Path) -> Iterator[ServedEmulator]:
    """The emulator behind uvicorn with a trustme certificate on a free 127.0.0.1 port, in a thread."""
    tls = make_tls_files(directory)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        lifespan="off",
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield ServedEmulator(app, f"https://127.0.0.1:{port}", tls.ca_path)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def operator_over_https(
    served: ServedEmulator, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """An ``/_emulator/`` call to a served emulator (its storage belongs to the server's thread)."""
    async with httpx.AsyncClient(verify=ssl_context(served.ca_path), base_url=served.origin, timeout=60) as client:
        response = await client.request(method, f"/_emulator/{path}", json=body)
    response.raise_for_status()
    return response.json()


def ssl_context(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))
