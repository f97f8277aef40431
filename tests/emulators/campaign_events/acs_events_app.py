"""A tiny Starlette app that mounts the events routes with a fake bearer check and an in-memory profile list.

The real IMS and profile storage come from the emulator core; here a token is valid when it is literally
``Bearer good-token`` and belongs to client ``emu-client``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crmbridge.emulators.campaign.events import (
    DeliveryTarget,
    EventsHub,
    JournalRegistration,
    TargetSpec,
    journal_routes,
    operator_routes,
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLIENT_ID = "emu-client"
IMS_ORG = "4CC7D9704674CFB2138A2C54@AdobeOrg"
JOURNAL_PATH = "/events/organizations/23294/integrations/54108/f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
HEADERS = {"Authorization": "Bearer good-token", "x-api-key": CLIENT_ID, "x-ims-org-id": IMS_ORG}
REGISTRATION = JournalRegistration(
    consumer_org_id="23294",
    credential_id="54108",
    registration_id="f89067f2-0d50-4bb2-bf78-209d0eacb6eb",
    client_id=CLIENT_ID,
    ims_org_id=IMS_ORG,
)
PROFILES = [
    DeliveryTarget(
        pkey=f"@pk{index:04d}",
        external_id=None if index % 50 == 49 else f"00000000-0000-4000-8000-{index:012d}",
        email=f"o'brien.{index}+news@exämple.com" if index % 7 == 0 else f"user{index}@example.com",
    )
    for index in range(500)
]


@dataclass(frozen=True)
class FakeToken:
    client_id: str
    scopes: tuple[str, ...]


async def fake_bearer(request: Request) -> FakeToken | Response:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return JSONResponse({"error_code": "403010", "message": "Oauth token is missing"}, status_code=403)
    if authorization == "Bearer campaign-only":
        return FakeToken(CLIENT_ID, ("openid", "AdobeID", "campaign_sdk"))
    if authorization != "Bearer good-token":
        return JSONResponse({"error_code": "401013", "message": "Oauth token is not valid"}, status_code=401)
    return FakeToken(CLIENT_ID, ("openid", "AdobeID", "adobeio_api"))


def in_memory_targets(spec: TargetSpec) -> list[DeliveryTarget]:
    if spec.count is not None:
        return PROFILES[: spec.count]
    by_key = {profile.pkey: profile for profile in PROFILES}
    missing = [key for key in spec.pkeys if key not in by_key]
    if missing:
        raise LookupError(", ".join(missing))
    return [by_key[key] for key in spec.pkeys]


def events_app(hub: EventsHub) -> Starlette:
    return Starlette(routes=journal_routes(fake_bearer, hub, REGISTRATION) + operator_routes(hub, in_memory_targets))


def client_for(hub: EventsHub) -> httpx.AsyncClient:
    """An HTTP client whose requests reach the test app in-process, addressed to 127.0.0.1."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=events_app(hub)), base_url="http://127.0.0.1", timeout=10
    )


async def simulate(client: httpx.AsyncClient, **overrides: object) -> dict[str, object]:
    """POST a delivery the way an operator would, returning the report."""
    body: dict[str, object] = {
        "campaign": {"id": "2019LoyaltyCamp", "label": "Loyalty 2019"},
        "delivery": {"id": "DM190", "label": "March newsletter"},
        "target": {"count": 100},
        "seed": 7,
    }
    body.update(overrides)
    response = await client.post("/_emulator/deliveries", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result
