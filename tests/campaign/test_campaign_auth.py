"""IMS OAuth server-to-server tokens: cached, renewed before expiry, refused credentials explained (§1.3)."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
from acs_env import fast_retry

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider, campaign_headers
from crmbridge.campaign.client import CampaignClient
from crmbridge.exceptions import AuthenticationError, ConfigError

IMS = "https://ims-na1.adobelogin.com"
CREDS = ImsCredentials(client_id="cid", client_secret="a-very-secret-value", scopes=("openid", "campaign_sdk"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ims_handler(forms: list[dict[str, list[str]]], *, expires_in: int = 86399):
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == IMS + "/ims/token/v3"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        forms.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json={"access_token": f"token-{len(forms)}", "token_type": "bearer",
                                         "expires_in": expires_in})  # fmt: skip

    return handler


@pytest.mark.anyio
async def test_token_is_requested_with_client_credentials_and_cached_until_close_to_expiry() -> None:
    forms: list[dict[str, list[str]]] = []
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(ims_handler(forms))) as http:
        provider = ImsTokenProvider(http, CREDS, clock=clock)
        assert await provider.token() == "token-1"
        clock.now += 86399 - 301  # just outside the renewal margin
        assert await provider.token() == "token-1"
        clock.now += 2
        assert await provider.token() == "token-2"
    assert forms[0] == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": ["a-very-secret-value"],
        "scope": ["openid,campaign_sdk"],
    }
    assert len(forms) == 2


@pytest.mark.anyio
async def test_expires_in_given_in_milliseconds_is_normalised() -> None:
    forms: list[dict[str, list[str]]] = []
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(ims_handler(forms, expires_in=86_399_999))) as http:
        provider = ImsTokenProvider(http, CREDS, clock=clock)
        await provider.token()
        clock.now += 80_000
        await provider.token()
    assert len(forms) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_client", "error_description": "invalid client_secret parameter"}, ConfigError),
        (400, {"error": "invalid_scope", "error_description": "Invalid scope"}, ConfigError),
        (401, {"error": "unauthorized"}, AuthenticationError),
    ],
)
async def test_refused_credentials_are_explained_without_the_secret(
    status: int, body: dict[str, str], error: type
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(error) as caught:
            await ImsTokenProvider(http, CREDS, retry=fast_retry("ims")).token()
    assert "a-very-secret-value" not in str(caught.value)
    assert "a-very-secret-value" not in repr(CREDS)


def test_required_headers_of_every_campaign_call() -> None:
    assert campaign_headers("tok", "cid") == {
        "Authorization": "Bearer tok",
        "X-Api-Key": "cid",
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
    }


@pytest.mark.anyio
async def test_gateway_401_renews_the_token_once_then_stops() -> None:
    tokens: list[str] = []
    api_calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            tokens.append(f"t{len(tokens)}")
            return httpx.Response(200, json={"access_token": tokens[-1], "expires_in": 86399})
        api_calls.append(request.headers["authorization"])
        if len(api_calls) == 1:
            return httpx.Response(401, json={"error_code": "401013", "message": "Oauth token is not valid"})
        if len(api_calls) == 2:
            return httpx.Response(200, json={"content": [], "serverSidePagination": True})
        return httpx.Response(401, json={"error_code": "401013", "message": "Oauth token is not valid"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        auth = ImsTokenProvider(http, ImsCredentials("cid", "secret-value", ims_url=IMS))
        campaign = CampaignClient.for_tenant(http, auth, organization="acme", base_url="https://mc.adobe.io",
                                             retry=fast_retry())  # fmt: skip
        assert await campaign.find_by_key("profile", "externalId", "x") == []
        assert api_calls == ["Bearer t0", "Bearer t1"]
        with pytest.raises(AuthenticationError):
            await campaign.find_by_key("profile", "externalId", "y")
    assert api_calls[2:] == ["Bearer t1", "Bearer t2"]
