"""What happens to the demo's data besides the sync: a contact Campaign refuses, then a CRM user's and a marketer's
live changes, made through the emulators' Web APIs and operator endpoints (never through crmbridge).

Each change is reported with the records it touched and with a mark on both emulators taken right after, so the
demo's summary can be checked against what the emulators hold (tests/e2e/test_demo.py does).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from crmbridge.emulators.launch import (
    CAMPAIGN_CLIENT_ID,
    CAMPAIGN_CLIENT_SECRET,
    DYNAMICS_CLIENT_ID,
    DYNAMICS_CLIENT_SECRET,
    DYNAMICS_TENANT,
    EmulatorProcess,
)

__all__ = [
    "CAMPAIGN_SECRET_ENV",
    "DYNAMICS_SECRET_ENV",
    "PROBLEM_CONTACT",
    "DemoEmulators",
    "LiveChanges",
    "create_problem_contact",
    "make_live_changes",
]

DYNAMICS_SECRET_ENV = "CRMBRIDGE_DEMO_DYNAMICS_SECRET"  # noqa: S105 - names of env vars, not secrets
CAMPAIGN_SECRET_ENV = "CRMBRIDGE_DEMO_CAMPAIGN_SECRET"  # noqa: S105
PROFILES = "/acme/campaign/profileAndServicesExt/profile"

# A contact as a CRM user typed it: two addresses pasted into one email field. Dynamics stores it; Campaign's email
# dataPolicy refuses it, so the demo always ends with one dead letter to look at and retry on the dashboard.
PROBLEM_CONTACT: dict[str, Any] = {
    "firstname": "Mira",
    "lastname": "Kowalska-Öberg",
    "emailaddress1": "mira.kowalska@example.com; mira@work.example",
    "telephone1": "+48 22 555 0142",
    "address1_city": "Kraków",
    "gendercode": 2,
    "birthdate": "1987-04-12",
}


def demo_secrets() -> tuple[str, str]:
    """The emulators' client secrets: the demo config's env vars when set (the secret scan uses them), else the
    sandbox defaults. The emulators get them through their environment, the config through ``${ENV}``."""
    return (
        os.environ.get(DYNAMICS_SECRET_ENV) or DYNAMICS_CLIENT_SECRET,
        os.environ.get(CAMPAIGN_SECRET_ENV) or CAMPAIGN_CLIENT_SECRET,
    )


class DemoEmulators:
    """The two emulator processes of a demo, with plain HTTP clients for their APIs and operator endpoints."""

    def __init__(self, dynamics: EmulatorProcess, campaign: EmulatorProcess) -> None:
        self.dynamics = dynamics
        self.campaign = campaign

    def stop(self) -> None:
        try:
            self.dynamics.stop()
        finally:
            self.campaign.stop()

    def dynamics_http(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.dynamics.ca_path))
        return httpx.Client(base_url=self.dynamics.base_url, verify=context, timeout=60.0, trust_env=False)

    def campaign_http(self) -> httpx.Client:
        return httpx.Client(base_url=self.campaign.base_url, timeout=60.0, trust_env=False)

    def describe(self) -> dict[str, Any]:
        """Addresses and process ids, for the summary file."""
        return {
            "dynamics": {
                "url": self.dynamics.base_url,
                "ca_path": str(self.dynamics.ca_path),
                "pid": self.dynamics.process.pid,
            },
            "campaign": {"url": self.campaign.base_url, "pid": self.campaign.process.pid},
        }


def _dataverse_headers(dynamics: httpx.Client) -> dict[str, str]:
    """A client-credentials token from the emulator's Entra endpoint, as any Web API client gets one."""
    answer = dynamics.post(
        f"/{DYNAMICS_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DYNAMICS_CLIENT_ID,
            "client_secret": demo_secrets()[0],
            "scope": f"{dynamics.base_url}/.default",
        },
    )
    answer.raise_for_status()
    return {
        "Authorization": f"Bearer {answer.json()['access_token']}",
        "Accept": "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
    }


def _campaign_headers(campaign: httpx.Client) -> dict[str, str]:
    """An IMS token, then the headers every ACS call carries."""
    answer = campaign.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": CAMPAIGN_CLIENT_ID,
            "client_secret": demo_secrets()[1],
            "scope": "AdobeID,openid,campaign_sdk",
        },
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}", "X-Api-Key": CAMPAIGN_CLIENT_ID}


def create_problem_contact(emulators: DemoEmulators) -> str:
    """Create :data:`PROBLEM_CONTACT` in Dynamics through the Web API; returns its contactid."""
    with emulators.dynamics_http() as dynamics:
        answer = dynamics.post(
            "/api/data/v9.2/contacts",
            json=PROBLEM_CONTACT,
            headers=_dataverse_headers(dynamics) | {"Prefer": "return=representation"},
        )
        answer.raise_for_status()
        return str(answer.json()["contactid"])


@dataclass
class LiveChanges:
    """What the live changes did, which records they touched, and where both emulators stood right after."""

    made: dict[str, int] = field(default_factory=dict)  # printed: what a user would call each change
    edited: list[str] = field(default_factory=list)  # contactids edited in Dynamics
    deleted: list[str] = field(default_factory=list)  # contactids deleted in Dynamics
    dynamics_opt_outs: list[str] = field(default_factory=list)
    campaign_opt_outs: list[str] = field(default_factory=list)  # externalIds (= contactids)
    campaign_opt_ins: list[str] = field(default_factory=list)  # opted-out contacts re-subscribed in Campaign
    dynamics_version_mark: int = 0  # Dataverse row versions above this were written after the changes
    campaign_clock_mark: str = ""  # Campaign timestamps from this one on were written after the changes

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def make_live_changes(emulators: DemoEmulators, *, size: int, seed: int) -> LiveChanges:
    """What a CRM user and a marketer would do meanwhile: edits, deletes, opt-outs on both sides, one opt-in in
    Campaign over a Dynamics opt-out (an opt-out conflict), and a delivery with sends, opens, clicks and bounces.

    Every change goes to a synced contact of its own, so each one is a change on one side only, and the contact
    Campaign refused keeps exactly one failure (its dead letter is the one to retry on the dashboard).
    """
    changes = LiveChanges()
    updates, deletes = max(5, size // 20), max(2, size // 200)
    with emulators.dynamics_http() as dynamics, emulators.campaign_http() as campaign:
        synced = _synced_profiles(campaign, lines=max(200, 2 * (updates + deletes)))
        chosen = [external_id for external_id, _opted_out in synced[: updates + deletes]]
        rest = synced[len(chosen) :]
        response = dynamics.post(
            "/_emulator/mutate",
            json={"table": "contact", "ids": chosen, "updates": updates, "deletes": deletes, "seed": seed},
        )
        response.raise_for_status()
        changed = response.json()
        changes.deleted = [str(i) for i in changed["deleted"]]
        changes.edited = [str(i) for i in changed["updated"]]
        changes.made["contacts edited in Dynamics"] = len(changes.edited)
        changes.made["contacts deleted in Dynamics"] = len(changes.deleted)
        opted_in = [external_id for external_id, opted_out in rest if not opted_out]
        opted_out = [external_id for external_id, opted_out in rest if opted_out]
        changes.dynamics_opt_outs = opted_in[3:6]
        if changes.dynamics_opt_outs:
            dynamics.post(
                "/_emulator/mutate",
                json={"table": "contact", "ids": changes.dynamics_opt_outs, "changes": {"donotbulkemail": True}},
            ).raise_for_status()
        changes.made["opt-outs set in Dynamics"] = len(changes.dynamics_opt_outs)
        changes.campaign_opt_outs = _set_campaign_flag(campaign, opted_in[:3], value=True)
        changes.made["opt-outs set in Campaign"] = len(changes.campaign_opt_outs)
        changes.campaign_opt_ins = _set_campaign_flag(campaign, opted_out[:1], value=False)
        changes.made["opt-ins in Campaign over a Dynamics opt-out (conflict)"] = len(changes.campaign_opt_ins)
        changes.made["emails in the simulated delivery"] = _simulate_delivery(campaign, size=size, seed=seed)
        # Opens and clicks come over the next hours: move the Campaign clock on, then publish what is due.
        moved = campaign.post("/_emulator/clock", json={"advanceSeconds": 3 * 86400})
        moved.raise_for_status()
        changes.campaign_clock_mark = str(moved.json()["now"])
        campaign.post("/_emulator/journal/release").raise_for_status()
        stats = dynamics.get("/_emulator/stats")
        stats.raise_for_status()
        changes.dynamics_version_mark = int(stats.json()["version"])
    return changes


def _simulate_delivery(campaign: httpx.Client, *, size: int, seed: int) -> int:
    """A newsletter to up to 300 profiles; returns how many emails were sent."""
    delivery = campaign.post(
        "/_emulator/deliveries",
        json={
            "campaign": {"id": "2026SpringCamp", "label": "Spring 2026"},
            "delivery": {"id": "DM190", "label": "Spring newsletter"},
            "target": {"count": min(size, 300)},
            "seed": seed,
        },
    )
    delivery.raise_for_status()
    return int(delivery.json().get("sends", delivery.json().get("messages", 0)))


def _synced_profiles(campaign: httpx.Client, *, lines: int) -> list[tuple[str, bool]]:
    """(externalId, opted out) of synced profiles, in Campaign's order, read the documented way."""
    listing = campaign.get(PROFILES, params={"_lineCount": lines}, headers=_campaign_headers(campaign))
    listing.raise_for_status()
    return [
        (str(row["externalId"]), bool(row.get("blackListEmail")))
        for row in listing.json().get("content", [])
        if row.get("externalId")
    ]


def _set_campaign_flag(campaign: httpx.Client, external_ids: list[str], *, value: bool) -> list[str]:
    """What a denylist landing page does; returns the externalIds whose profile was found."""
    done = []
    for external_id in external_ids:
        answer = campaign.post(
            "/_emulator/optouts", json={"externalId": external_id, "flags": {"blackListEmail": value}}
        )
        if answer.status_code == 200:
            done.append(external_id)
    return done
