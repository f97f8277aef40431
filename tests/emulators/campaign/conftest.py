"""In-process Campaign emulator for protocol tests: a plain httpx client, requests written from the docs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.campaign import CampaignEmulatorSettings, ImsClientConfig, create_app

CLIENT_ID = "acs-client"
CLIENT_SECRET = "s3cret-value"
OTHER_CLIENT = "other-client"
BASE = "http://acs.test"


def make_settings(**changes: object) -> CampaignEmulatorSettings:
    settings = CampaignEmulatorSettings(
        organizations=("acme", "globex"),
        clients=(
            ImsClientConfig(CLIENT_ID, CLIENT_SECRET, tenants=("acme",)),
            ImsClientConfig(OTHER_CLIENT, "other-secret", tenants=("globex",)),
        ),
        pkey_salt="test-salt",
    )
    for name, value in changes.items():
        setattr(settings, name, value)
    return settings


async def token_for(client: httpx.AsyncClient, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    response = await client.post(
        "/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
              "scope": "openid,AdobeID,campaign_sdk,additional_info.projectedProductContext"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def app() -> Starlette:
    return create_app(make_settings())


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield http


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    token = await token_for(client)
    return {
        "Authorization": f"Bearer {token}",
        "X-Api-Key": CLIENT_ID,
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
    }


@pytest.fixture
def api() -> str:
    return "/acme/campaign"
