"""IMS token endpoint (campaign-standard-api.md §1.3, §10.1) and gateway checks in order (§1.5, §10.2)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.emulators.campaign.conftest import CLIENT_ID, OTHER_CLIENT, token_for

PROFILES = "/acme/campaign/profileAndServices/profile"


@pytest.mark.anyio
async def test_client_credentials_grant_returns_bearer_token_valid_for_a_day(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "s3cret-value",
              "scope": "openid,AdobeID,campaign_sdk"},
    )  # fmt: skip
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert len(body["access_token"]) > 20


@pytest.mark.anyio
async def test_token_parameters_may_come_in_the_query_string(client: httpx.AsyncClient) -> None:
    params = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "s3cret-value"}
    response = await client.post("/ims/token/v3", params=params)
    assert response.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client_id", "secret", "description"),
    [("nobody", "x", "invalid client_id parameter"), (CLIENT_ID, "wrong", "invalid client_secret parameter")],
)
async def test_bad_credentials_get_ims_400_with_oauth_error_body(
    client: httpx.AsyncClient, client_id: str, secret: str, description: str
) -> None:
    response = await client.post(
        "/ims/token/v3", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": description}


@pytest.mark.anyio
async def test_scope_beyond_the_credential_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "s3cret-value",
              "scope": "openid,read_pc.dma_tartan"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.anyio
async def test_missing_bearer_is_403010(client: httpx.AsyncClient) -> None:
    response = await client.get(PROFILES, headers={"X-Api-Key": CLIENT_ID})
    assert response.status_code == 403
    assert response.json() == {"error_code": "403010", "message": "Oauth token is missing"}


@pytest.mark.anyio
async def test_unknown_bearer_is_401013_even_without_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get(PROFILES, headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.json() == {"error_code": "401013", "message": "Oauth token is not valid"}


@pytest.mark.anyio
async def test_expired_token_is_401013(app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    app.state.campaign.settings.clock.advance(86400)
    response = await client.get(PROFILES, headers=headers)
    assert response.status_code == 401
    assert response.json()["error_code"] == "401013"


@pytest.mark.anyio
async def test_missing_api_key_is_403000(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(PROFILES, headers={"Authorization": headers["Authorization"]})
    assert response.status_code == 403
    assert response.json() == {"error_code": "403000", "message": "Api Key is required"}


@pytest.mark.anyio
async def test_api_key_of_another_client_is_403003(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(PROFILES, headers={**headers, "X-Api-Key": OTHER_CLIENT})
    assert response.status_code == 403
    assert response.json() == {"error_code": "403003", "message": "Api Key is invalid"}


@pytest.mark.anyio
async def test_unknown_organization_is_500_check_your_uri(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/initech/campaign/profileAndServices/profile", headers=headers)
    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "Oops. Something went wrong. Check your URI and try again."}


@pytest.mark.anyio
async def test_token_not_bound_to_the_tenant_is_403023(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/globex/campaign/profileAndServices/profile", headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error_code": "403023", "message": "Profile is not valid"}
    other = await token_for(client, OTHER_CLIENT, "other-secret")
    allowed = await client.get(
        "/globex/campaign/profileAndServices/profile",
        headers={"Authorization": f"Bearer {other}", "X-Api-Key": OTHER_CLIENT},
    )
    assert allowed.status_code == 200


@pytest.mark.anyio
async def test_rate_limit_answers_429050_with_retry_after(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    config = await client.post("/_emulator/config", json={"rateLimitPerS": 2})
    assert config.json()["rateLimitPerS"] == 2
    statuses = [(await client.get(PROFILES, headers=headers)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await client.get(PROFILES, headers=headers)
    assert limited.json() == {"error_code": "429050", "message": "Too many requests"}
    assert limited.headers["retry-after"] == "1"


@pytest.mark.anyio
async def test_injected_faults_hit_the_api_but_never_operator_routes(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_emulator/config", json={"faults": {"error_rate": 1.0}})
    assert (await client.get(PROFILES, headers=headers)).status_code == 503
    stats = await client.get("/_emulator/stats")
    assert stats.status_code == 200
    assert stats.json()["faultsInjected"] == {"error": 1}
