"""Fixtures: an in-process emulator and an httpx client that already holds a bearer token.

Requests are written from the protocol document (headers of §2.3), never through crmbridge's own client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings, create_app

ORIGIN = "https://org.example.test"
BASE = f"{ORIGIN}/api/data/v9.2/"
TENANT = DEFAULT_CLIENT.tenant
HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "If-None-Match": "null",
}


async def fetch_token(client: httpx.AsyncClient, client_id: str, secret: str, tenant: str = TENANT) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": f"{ORIGIN}/.default",
    }
    return await client.post(f"{ORIGIN}/{tenant}/oauth2/v2.0/token", data=form)


def make_app(**settings: Any) -> Starlette:
    return create_app(DynamicsEmulatorSettings(**settings))


@pytest.fixture
def app() -> Starlette:
    return make_app()


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, timeout=10) as client:
        token = (await fetch_token(client, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret)).json()
        client.headers.update(HEADERS)
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield client


async def create_contact(api: httpx.AsyncClient, **values: Any) -> str:
    response = await api.post(f"{BASE}contacts", json=values)
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


async def renew_token(api: httpx.AsyncClient) -> None:
    """Fetch a fresh token after the emulator clock moved past the old one's lifetime."""
    token = (await fetch_token(api, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret)).json()
    api.headers["Authorization"] = f"Bearer {token['access_token']}"
