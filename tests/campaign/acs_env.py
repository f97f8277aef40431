"""The Campaign emulator (core + email events) wired for client tests, in-process or over a real socket.

Expectations in the tests come from the emulator's storage and from literal values, never from the client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider
from crmbridge.campaign.client import CampaignClient
from crmbridge.emulators.campaign import CampaignEmulatorSettings, create_app
from crmbridge.emulators.campaign.context import EmulatorContext
from crmbridge.emulators.campaign.events import (
    DeliveryTarget,
    EventsHub,
    JournalFaults,
    JournalRegistration,
    TargetSpec,
    journal_routes,
)
from crmbridge.emulators.campaign.events import operator_routes as events_operator_routes
from crmbridge.emulators.campaign.ims import TokenInfo, verify_bearer
from crmbridge.emulators.campaign.settings import DEFAULT_SCOPES, ImsClientConfig
from crmbridge.emulators.faults import FaultConfig, asgi_transport
from crmbridge.http import RetryPolicy

CLIENT_ID = "crmbridge-emulator"
CLIENT_SECRET = "emulator-secret"
IMS_ORG = "0123456789ABCDEF01234567@AdobeOrg"
ORGANIZATION = "acme"
BASE = "http://127.0.0.1"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REGISTRATION = JournalRegistration(
    consumer_org_id="23294",
    credential_id="54108",
    registration_id="f89067f2-0d50-4bb2-bf78-209d0eacb6eb",
    client_id=CLIENT_ID,
    ims_org_id=IMS_ORG,
)
JOURNAL_PATH = REGISTRATION.path


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def fast_retry(service: str = "campaign") -> RetryPolicy:
    """Real retry rules, no real waiting: tests stay fast and deterministic."""
    return RetryPolicy(service=service, sleep=_no_sleep, max_attempts=8)


@dataclass
class Emulator:
    app: Starlette
    settings: CampaignEmulatorSettings
    hub: EventsHub

    @property
    def context(self) -> EmulatorContext:
        context: EmulatorContext = self.app.state.campaign
        return context


def make_emulator(
    *,
    db_path: str = ":memory:",
    events_db: str = ":memory:",
    salt: str = "salt-a",
    big_table_threshold: int = 100_000,
    faults: FaultConfig | None = None,
    journal_faults: JournalFaults | None = None,
    seed_profiles: int = 0,
) -> Emulator:
    settings = CampaignEmulatorSettings(
        db_path=db_path,
        pkey_salt=salt,
        big_table_threshold=big_table_threshold,
        faults=faults or FaultConfig(),
        seed_profiles=seed_profiles,
        # The default emulator client lacks the I/O Management API scope the journal settings require.
        clients=(
            ImsClientConfig(CLIENT_ID, CLIENT_SECRET, IMS_ORG, (*DEFAULT_SCOPES, "read_organizations", "adobeio_api")),
        ),
    )
    settings.clock.advance(0)
    hub = EventsHub(events_db, clock=settings.clock.now, faults=journal_faults)

    async def bearer(request: Request) -> TokenInfo | Response:
        return verify_bearer(request)

    def targets(spec: TargetSpec) -> list[DeliveryTarget]:
        storage = app.state.campaign.storage
        chosen = storage.delivery_targets(count=spec.count, pkeys=list(spec.pkeys) or None)
        return [DeliveryTarget(t.pkey, t.external_id, t.email) for t in chosen]

    app = create_app(
        settings,
        extra_routes=journal_routes(bearer, hub, REGISTRATION),
        extra_operator_routes=events_operator_routes(hub, targets),
    )
    return Emulator(app, settings, hub)


JOURNAL_SCOPES = ("openid", "AdobeID", "read_organizations", "adobeio_api")


def credentials(base: str = BASE) -> ImsCredentials:
    """The journal's credential: its token must carry the I/O Management API scope (events doc §A.3)."""
    return ImsCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes=JOURNAL_SCOPES, ims_url=base)


def in_process_http(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=asgi_transport(app), base_url=BASE, timeout=30)


def campaign_client(http: httpx.AsyncClient, *, base: str = BASE, page_size: int = 200) -> CampaignClient:
    auth = ImsTokenProvider(http, ImsCredentials(CLIENT_ID, CLIENT_SECRET, ims_url=base), retry=fast_retry("ims"))
    return CampaignClient.for_tenant(
        http, auth, organization=ORGANIZATION, base_url=base, retry=fast_retry(), page_size=page_size
    )


@asynccontextmanager
async def client_for(emulator: Emulator, *, page_size: int = 200) -> AsyncIterator[CampaignClient]:
    async with in_process_http(emulator.app) as http:
        yield campaign_client(http, page_size=page_size)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
