"""Both emulators in-process (ASGI transports) behind ``Services``, for the operations commands' tests.

The Dataverse emulator is seeded through its operator route; expectations in the tests are read from the
emulators' own APIs or written out literally, never computed with crmbridge's mapping code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.emulators.campaign import CampaignEmulatorSettings
from crmbridge.emulators.campaign import create_app as create_campaign_app
from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings
from crmbridge.emulators.dynamics import create_app as create_dynamics_app
from crmbridge.emulators.faults import asgi_transport
from crmbridge.engine.runner import Services
from tests.dynamics.emulator_support import ORIGIN, EmulatorTokens

CONTACT_FIELDS = """\
      - {dynamics: firstname, campaign: firstName}
      - {dynamics: lastname, campaign: lastName}
      - {dynamics: emailaddress1, campaign: email}
      - {dynamics: address1_city, campaign: location.city}
      - {dynamics: birthdate, campaign: birthDate, apply_updates: false}
"""


def config_text(state_path: Path, *, extra: str = "", contact_fields: str = CONTACT_FIELDS) -> str:
    return f"""\
version: 1
dynamics:
  org_url: {ORIGIN}
  authority_host: {ORIGIN}
  tenant_id: {DEFAULT_CLIENT.tenant}
  client_id: "{DEFAULT_CLIENT.client_id}"
  client_secret: {DEFAULT_CLIENT.client_secret}
campaign:
  organization: acme
  base_url: http://127.0.0.1
  ims_url: http://127.0.0.1
  client_id: crmbridge-emulator
  client_secret: emulator-secret
mappings:
  - name: contacts
    table: contact
    entity_set: contacts
    resource: profileAndServicesExt
    key: {{dynamics: contactid, campaign: externalId}}
    deletes: propagate
    fields:
{contact_fields}  - name: vehicles
    table: new_vehicle
    entity_set: new_vehicles
    resource: cusVehicle
    key: {{dynamics: new_vehicleid, campaign: vehicleId}}
    deletes: propagate
    fields:
      - {{dynamics: new_name, campaign: name}}
      - {{dynamics: new_model, campaign: model}}
    links:
      - {{lookup: new_contactid, mapping: contacts, campaign_link: profile, max_wait: 10m}}
{extra}state:
  url: sqlite:///{state_path}
"""


@dataclass
class Emulators:
    dynamics: Starlette
    campaign: Starlette

    def opener(self) -> Any:
        """An ``open_services`` for the ops commands: ``Services.open`` wired to the in-process emulators."""

        def open_services(config: CrmbridgeConfig) -> AbstractAsyncContextManager[Services]:
            transport = httpx.ASGITransport(app=self.dynamics)
            tokens = EmulatorTokens(
                transport, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, "emulator-tenant"
            )
            return Services.open(
                config,
                dynamics_tokens=tokens,
                dynamics_transport=transport,
                campaign_transport=asgi_transport(self.campaign),
            )

        return open_services

    @asynccontextmanager
    async def services(self, config: CrmbridgeConfig) -> AsyncIterator[Services]:
        async with self.opener()(config) as services:
            yield services

    async def seed(self, contacts: int, *, seed: int = 3) -> dict[str, Any]:
        body = {"contacts": contacts, "vehicles_share": 0.5, "optout_share": 0.2, "seed": seed, "accounts": 0}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.dynamics), base_url=ORIGIN) as client:
            response = await client.post("/_emulator/seed", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def make_emulators(*, flag_timestamps: bool = True) -> Emulators:
    dynamics = create_dynamics_app(DynamicsEmulatorSettings())
    campaign = create_campaign_app(CampaignEmulatorSettings(pkey_salt="ops", flag_timestamps=flag_timestamps))
    return Emulators(dynamics, campaign)


def load(state_path: Path, **options: Any) -> CrmbridgeConfig:
    return parse_config(config_text(state_path, **options))
