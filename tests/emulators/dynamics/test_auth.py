"""§1 Authentication: Entra ID client-credentials token endpoint, OpenID discovery, 401/403 on the data API."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.dynamics import DEFAULT_CLIENT
from crmbridge.emulators.dynamics.auth import ClientApp

from .conftest import BASE, HEADERS, ORIGIN, TENANT, fetch_token, make_app

OUTSIDER = ClientApp("11111111-2222-3333-4444-555555555555", "outsider-secret", TENANT, application_user=False)


@pytest.fixture
def app() -> Starlette:
    return make_app(clients=[DEFAULT_CLIENT, OUTSIDER])


@pytest.fixture
async def raw(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, headers=HEADERS)


@pytest.mark.anyio
async def test_client_credentials_grant_returns_the_documented_token_body(raw: httpx.AsyncClient) -> None:
    response = await fetch_token(raw, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["ext_expires_in"] == 3599
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) > 20


@pytest.mark.anyio
async def test_wrong_secret_is_an_invalid_client_error(raw: httpx.AsyncClient) -> None:
    response = await fetch_token(raw, DEFAULT_CLIENT.client_id, "wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.anyio
async def test_unknown_client_and_wrong_tenant_are_refused(raw: httpx.AsyncClient) -> None:
    assert (await fetch_token(raw, "nobody", "x")).json()["error"] == "unauthorized_client"
    other_tenant = await fetch_token(raw, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, "other-tenant")
    assert other_tenant.status_code == 400


@pytest.mark.anyio
async def test_openid_discovery_points_at_the_token_endpoint(raw: httpx.AsyncClient) -> None:
    response = await raw.get(f"{ORIGIN}/{TENANT}/v2.0/.well-known/openid-configuration")
    document = response.json()
    assert document["token_endpoint"] == f"{ORIGIN}/{TENANT}/oauth2/v2.0/token"
    assert document["issuer"] == f"{ORIGIN}/{TENANT}/v2.0"
    assert document["authorization_endpoint"].startswith(f"{ORIGIN}/{TENANT}/")


@pytest.mark.anyio
async def test_data_api_answers_401_without_a_bearer_token(raw: httpx.AsyncClient) -> None:
    response = await raw.get(f"{BASE}contacts")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


@pytest.mark.anyio
async def test_data_api_answers_401_for_an_unknown_token(raw: httpx.AsyncClient) -> None:
    response = await raw.get(f"{BASE}contacts", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


@pytest.mark.anyio
async def test_token_expires_after_its_lifetime_on_the_emulator_clock(raw: httpx.AsyncClient) -> None:
    token = (await fetch_token(raw, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await raw.get(f"{BASE}WhoAmI", headers=auth)).status_code == 200
    await raw.post(f"{ORIGIN}/_emulator/clock", json={"advance_seconds": 3600})
    expired = await raw.get(f"{BASE}WhoAmI", headers=auth)
    assert expired.status_code == 401
    assert "ExpiredAuthTicket" in expired.json()["error"]["message"]


@pytest.mark.anyio
async def test_client_that_is_not_an_application_user_gets_403(raw: httpx.AsyncClient) -> None:
    token = (await fetch_token(raw, OUTSIDER.client_id, OUTSIDER.client_secret)).json()["access_token"]
    response = await raw.get(f"{BASE}contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "The user is not a member of the organization."
