"""Both emulators in-process (the complete Campaign instance with its journal) behind ``Services``, plus the
operator calls a fault scenario needs: faults on and off, clocks, mutations, a simulated delivery.

Expectations come from the emulators' own APIs through ``oracle`` (plain httpx), never from crmbridge code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.emulators.campaign import CampaignEmulatorSettings, create_campaign_emulator
from crmbridge.emulators.campaign.emulator import journal_registration
from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings
from crmbridge.emulators.dynamics import create_app as create_dynamics_app
from crmbridge.emulators.faults import asgi_transport
from crmbridge.engine.provision import provision
from crmbridge.engine.runner import Runner, Services
from tests.dynamics.emulator_support import ORIGIN, EmulatorTokens
from tests.engine.ops_env import config_text

from . import oracle

ACS_BASE = "http://127.0.0.1"
ACS_CLIENT = "crmbridge-emulator"
ACS_SECRET = "emulator-secret"  # the emulator's sandbox credential
ACTIVITY_SETS = {"send": "cmb_emailsends", "open": "cmb_emailopens", "click": "cmb_emailclicks"}


def events_section(campaign: Starlette) -> str:
    registration = journal_registration(campaign.state.campaign.settings)
    return f"""\
events:
  source:
    journal:
      url: {ACS_BASE}{registration.path}
      ims_org_id: "{registration.ims_org_id}"
      start: oldest
  types: {{send: true, open: true, click: true, bounce: "off"}}
  rollups: {{enabled: false}}
  followup_tasks: {{on_click: false, on_hard_bounce: "off"}}
"""


@dataclass
class Sandbox:
    """One Dataverse org and one Campaign instance, fresh per scenario."""

    dynamics: Starlette
    campaign: Starlette
    state_path: Path

    @classmethod
    def create(cls, state_path: Path, *, salt: str = "reliability") -> Sandbox:
        dynamics = create_dynamics_app(DynamicsEmulatorSettings())
        campaign = create_campaign_emulator(CampaignEmulatorSettings(pkey_salt=salt))
        return cls(dynamics, campaign, state_path)

    def config(self) -> CrmbridgeConfig:
        return parse_config(config_text(self.state_path, extra=events_section(self.campaign)))

    # --- crmbridge, wired to the in-process apps -------------------------------------------------------------

    @asynccontextmanager
    async def runner(self) -> AsyncIterator[Runner]:
        transport = httpx.ASGITransport(app=self.dynamics)
        tokens = EmulatorTokens(transport, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, "emulator-tenant")
        async with Services.open(
            self.config(),
            dynamics_tokens=tokens,
            dynamics_transport=transport,
            campaign_transport=asgi_transport(self.campaign),
        ) as services:
            yield Runner(services)

    async def provision(self) -> None:
        async with self.runner() as runner:
            await provision(runner.services.dataverse.metadata, runner.config, dry_run=False)

    # --- operator routes (never faulted) ---------------------------------------------------------------------

    @asynccontextmanager
    async def dv(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.dynamics), base_url=ORIGIN) as http:
            yield http

    @asynccontextmanager
    async def acs(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.campaign), base_url=ACS_BASE) as http:
            yield http

    async def seed(self, contacts: int, *, seed: int = 3) -> None:
        body = {"contacts": contacts, "vehicles_share": 0.5, "optout_share": 0.2, "seed": seed, "accounts": 0}
        async with self.dv() as http:
            (await http.post("/_emulator/seed", json=body)).raise_for_status()

    async def mutate_contacts(self, *, updates: int, deletes: int, seed: int) -> dict[str, Any]:
        body = {"table": "contact", "updates": updates, "deletes": deletes, "seed": seed}
        async with self.dv() as http:
            response = await http.post("/_emulator/mutate", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def set_faults(self, dynamics: dict[str, Any] | None, campaign: dict[str, Any] | None) -> None:
        """Replace the fault settings of each side (None: all off)."""
        async with self.dv() as http:
            (await http.put("/_emulator/faults", json=_all_off() | (dynamics or {}))).raise_for_status()
        async with self.acs() as http:
            (await http.post("/_emulator/config", json={"faults": campaign or {}})).raise_for_status()

    async def injected(self) -> int:
        """How many faults both emulators injected so far (proves a scenario really ran under its fault)."""
        async with self.dv() as dv, self.acs() as acs:
            dynamics = (await dv.get("/_emulator/stats")).json()["faults"]["injected"]
            campaign = (await acs.get("/_emulator/stats")).json()["faultsInjected"]
        return sum(dynamics.values()) + sum(campaign.values())

    async def advance_clocks(self, *, dynamics_s: float = 0.0, campaign_s: float = 0.0) -> None:
        async with self.dv() as http:
            (await http.post("/_emulator/clock", json={"advance_seconds": dynamics_s})).raise_for_status()
        async with self.acs() as http:
            (await http.post("/_emulator/clock", json={"advanceSeconds": campaign_s})).raise_for_status()

    async def deliver(self, *, count: int, seed: int, delivery_id: str) -> dict[str, Any]:
        """A delivery to ``count`` synced profiles, then three days of opens and clicks published to the journal."""
        body = {
            "campaign": {"id": "2026SpringCamp", "label": "Spring 2026"},
            "delivery": {"id": delivery_id, "label": "Newsletter"},
            "target": {"count": count, "seed": seed},
            "seed": seed,
        }
        async with self.acs() as http:
            response = await http.post("/_emulator/deliveries", json=body)
            response.raise_for_status()
            await http.post("/_emulator/clock", json={"advanceSeconds": 3 * 86400})
            (await http.post("/_emulator/journal/release")).raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    async def expire_journal(self) -> int:
        """Everything published so far leaves the journal's retention (a consumer's position there gets 410)."""
        async with self.acs() as http:
            response = await http.delete("/_emulator/journal")
        response.raise_for_status()
        return int(response.json()["expired"])

    # --- what both sides hold ----------------------------------------------------------------------------------

    async def contents(self) -> Contents:
        async with self.dv() as dv, self.acs() as acs:
            dv_token = await oracle.dataverse_token(
                dv, "emulator-tenant", DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret
            )
            acs_token = await oracle.campaign_token(acs, ACS_CLIENT, ACS_SECRET)
            contacts = await oracle.dataverse_rows(dv, dv_token, "contacts", "contactid")
            vehicles = await oracle.dataverse_rows(dv, dv_token, "new_vehicles", "new_vehicleid,_new_contactid_value")
            activities = {
                kind: [r["activityid"] for r in await oracle.dataverse_rows(dv, dv_token, entity_set, "activityid")]
                for kind, entity_set in ACTIVITY_SETS.items()
            }
            profiles = await oracle.campaign_rows(acs, acs_token, ACS_CLIENT, "profile")
            acs_vehicles = await oracle.campaign_rows(acs, acs_token, ACS_CLIENT, "cusVehicle")
        return Contents(
            contact_ids=sorted(str(r["contactid"]) for r in contacts),
            vehicle_parents={str(r["new_vehicleid"]): r.get("_new_contactid_value") for r in vehicles},
            profile_keys=sorted(str(r.get("externalId") or "") for r in profiles),
            acs_vehicle_keys=sorted(str(r.get("vehicleId") or "") for r in acs_vehicles),
            activities=activities,
        )


def _all_off() -> dict[str, Any]:
    return {
        "latency_ms": 0.0,
        "spike_rate": 0.0,
        "throttle_rate": 0.0,
        "error_rate": 0.0,
        "drop_before_rate": 0.0,
        "drop_after_rate": 0.0,
        "malformed_rate": 0.0,
    }


@dataclass
class Contents:
    contact_ids: list[str]
    vehicle_parents: dict[str, Any]  # new_vehicleid -> contactid of its lookup (or None)
    profile_keys: list[str]  # externalId of every ACS profile, duplicates kept
    acs_vehicle_keys: list[str]  # vehicleId of every ACS cusVehicle row, duplicates kept
    activities: dict[str, list[str]]  # event type -> activity ids in Dynamics
