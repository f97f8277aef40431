"""Upsert-by-key decisions that the emulator cannot force deterministically, on a scripted transport."""

from __future__ import annotations

import httpx
import pytest
from acs_env import fast_retry

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider
from crmbridge.campaign.client import CampaignClient
from crmbridge.exceptions import RecordError
from crmbridge.http import MaybeAppliedError

BASE = "https://mc.adobe.io"
EMPTY_LIST = {"content": [], "serverSidePagination": True}


def scripted(post_answer: httpx.Response, calls: list[str]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            return httpx.Response(200, json={"access_token": "token-abc", "expires_in": 86399})
        calls.append(request.method)
        if request.method == "GET":
            return httpx.Response(200, json=EMPTY_LIST)
        return post_answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def client_on(http: httpx.AsyncClient) -> CampaignClient:
    auth = ImsTokenProvider(http, ImsCredentials("cid", "secret-value", ims_url="https://ims-na1.adobelogin.com"))
    return CampaignClient.for_tenant(http, auth, organization="acme", base_url=BASE, retry=fast_retry())


@pytest.mark.anyio
async def test_creates_whose_outcome_stays_unknown_are_handed_back_after_four_tries() -> None:
    calls: list[str] = []
    unavailable = httpx.Response(503, json={"error_code": "503", "message": "Service Unavailable"})
    async with scripted(unavailable, calls) as http:
        with pytest.raises(MaybeAppliedError):
            await client_on(http).upsert_by_key("profile", "externalId", "c-1", {"email": "a@example.com"})
    # one lookup, then (create, lookup) four times: never a create without a lookup before it
    assert calls == ["GET"] + ["POST", "GET"] * 4


@pytest.mark.anyio
async def test_duplicate_key_that_the_lookup_cannot_see_becomes_a_record_error() -> None:
    calls: list[str] = []
    duplicate = httpx.Response(
        500, json={"code": 500, "message": "A 'Profile' with the same key 'c-1' already exists. PGS-220000 ERROR"}
    )
    async with scripted(duplicate, calls) as http:
        with pytest.raises(RecordError) as caught:
            await client_on(http).upsert_by_key("profile", "externalId", "c-1", {"email": "a@example.com"})
    assert caught.value.details is not None
    assert caught.value.details.code == "PGS-220000"
    assert calls.count("POST") == 4
