"""What Campaign must hold, computed from what Dynamics holds, written independently of crmbridge.

It must not import ``crmbridge.mapping`` or ``crmbridge.engine``: it reads Dataverse with plain httpx (a token
from the emulator's Entra endpoint) and applies the test configuration's mapping rules by hand, then reads ACS
with plain httpx (an IMS token, ``_lineCount`` pages, ``next.href``). If crmbridge and the oracle agree on a bug,
it is because both were written to the same wrong reading of the config, not because they share code.
"""

from __future__ import annotations

import sqlite3
import ssl
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FORMATTED = "@OData.Community.Display.V1.FormattedValue"

# The mapping rules of tests/e2e/harness.py's E2E_CONFIG, spelled out by hand.
CONTACT_FIELDS = {
    "firstname": "firstName",
    "lastname": "lastName",
    "emailaddress1": "email",
    "telephone1": "phone",
    "address1_city": "location.city",
    "address1_postalcode": "location.zipCode",
    "birthdate": "birthDate",
}
GENDER = {"Male": "male", "Female": "female", None: "unknown"}
OPT_OUTS = {"donotbulkemail": "blackListEmail"}
VEHICLE_FIELDS = {"new_name": "name", "new_vin": "vin", "new_model": "model", "new_year": "year"}
PROFILE_PATH = "/acme/campaign/profileAndServicesExt/profile"
VEHICLE_PATH = "/acme/campaign/profileAndServicesExt/cusVehicle"


class _WaitOnThrottling(httpx.BaseTransport):
    """The oracle shares the org's service protection limits with the sync it checks: after a long crash suite on a
    loaded machine the 5-minute execution-time budget can be spent, and Dataverse answers 429 with Retry-After. The
    oracle waits as any well-behaved client would (a 429 was not processed, so resending is safe)."""

    def __init__(self, inner: httpx.BaseTransport, attempts: int = 20) -> None:
        self.inner = inner
        self.attempts = attempts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.attempts - 1):
            response = self.inner.handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            response.close()
            time.sleep(min(60.0, max(1.0, float(response.headers.get("Retry-After", "5")))))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class DataverseReader:
    """Plain Web API reads: client credentials at the emulator's token endpoint, then paged GETs."""

    def __init__(self, base_url: str, ca_path: Path, tenant: str, client_id: str, client_secret: str) -> None:
        self.base_url = base_url
        verify = ssl.create_default_context(cafile=str(ca_path))
        self.http = httpx.Client(
            base_url=base_url,
            verify=verify,
            timeout=60.0,
            trust_env=False,
            transport=_WaitOnThrottling(httpx.HTTPTransport(verify=verify)),
        )
        self._credentials = (tenant, client_id, client_secret)

    def close(self) -> None:
        self.http.close()

    def headers(self) -> dict[str, str]:
        # A new token per call: tests move the emulator clock by days, which expires any cached one.
        tenant, client_id, secret = self._credentials
        answer = self.http.post(
            f"/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": f"{self.base_url}/.default",
            },
        )
        answer.raise_for_status()
        return {
            "Authorization": f"Bearer {answer.json()['access_token']}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }

    def rows(self, entity_set: str, columns: list[str]) -> list[dict[str, Any]]:
        headers = self.headers() | {
            "Prefer": 'odata.maxpagesize=5000,odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
        }
        url: str | None = f"/api/data/v9.2/{entity_set}?$select={','.join(columns)}"
        found: list[dict[str, Any]] = []
        while url is not None:
            page = self.http.get(url, headers=headers)
            page.raise_for_status()
            body = page.json()
            found.extend(body["value"])
            url = body.get("@odata.nextLink")
        return found

    def count(self, entity_set: str, primary_id: str) -> int:
        """How many rows the entity set holds (paged through, selecting only the primary id)."""
        return len(self.rows(entity_set, [primary_id]))

    def create(self, entity_set: str, values: Mapping[str, Any]) -> str:
        answer = self.http.post(
            f"/api/data/v9.2/{entity_set}",
            json=dict(values),
            headers=self.headers() | {"Prefer": "return=representation"},
        )
        answer.raise_for_status()
        body = answer.json()
        return str(body[_primary_id(entity_set)])


def _primary_id(entity_set: str) -> str:
    return {"contacts": "contactid", "new_vehicles": "new_vehicleid"}[entity_set]


class CampaignReader:
    """Plain ACS reads: an IMS token, then ``_lineCount`` pages following ``next.href``."""

    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60.0, trust_env=False)
        self._credentials = (client_id, client_secret)
        self._headers: dict[str, str] | None = None

    def close(self) -> None:
        self.http.close()

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            client_id, secret = self._credentials
            answer = self.http.post(
                "/ims/token/v3",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                    "scope": "AdobeID,openid,campaign_sdk",
                },
            )
            answer.raise_for_status()
            self._headers = {"Authorization": f"Bearer {answer.json()['access_token']}", "X-Api-Key": client_id}
        return self._headers

    def rows(self, path: str) -> Iterator[dict[str, Any]]:
        url: str | None = f"{path}?_lineCount=500"
        while url is not None:
            page = self.http.get(url, headers=self.headers())
            if page.status_code == 401:  # the IMS token outlived the emulator clock: fetch a new one
                self._headers = None
                continue
            page.raise_for_status()
            body = page.json()
            yield from body["content"]
            url = (body.get("next") or {}).get("href")


@dataclass
class CampaignState:
    """Campaign's rows by business key, with how many rows carry each key (duplicates show as counts > 1)."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_counts: Counter[tuple[str, str]] = field(default_factory=Counter)


def read_campaign(reader: CampaignReader) -> CampaignState:
    state = CampaignState()
    pkey_to_external: dict[str, str] = {}
    for row in reader.rows(PROFILE_PATH):
        key = str(row.get("externalId") or "")
        pkey_to_external[str(row["PKey"])] = key
        state.key_counts[("profile", key)] += 1
        state.profiles[key] = {
            "firstName": row.get("firstName"),
            "lastName": row.get("lastName"),
            "email": row.get("email"),
            "phone": row.get("phone"),
            "location.city": (row.get("location") or {}).get("city"),
            "location.zipCode": (row.get("location") or {}).get("zipCode"),
            "birthDate": row.get("birthDate"),
            "gender": row.get("gender"),
            "blackListEmail": row.get("blackListEmail"),
        }
    for row in reader.rows(VEHICLE_PATH):
        key = str(row.get("vehicleId") or "")
        state.key_counts[("cusVehicle", key)] += 1
        link = row.get("profile") or {}
        state.vehicles[key] = {
            "name": row.get("name"),
            "vin": row.get("vin"),
            "model": row.get("model"),
            "year": row.get("year"),
            "profile": pkey_to_external.get(str(link.get("PKey")), f"<unknown PKey {link.get('PKey')}>")
            if link
            else None,
        }
    return state


@dataclass
class Expected:
    profiles: dict[str, dict[str, Any]]
    vehicles: dict[str, dict[str, Any]]


CONTACT_COLUMNS = ["contactid", "statecode", "gendercode", *CONTACT_FIELDS, *OPT_OUTS]
VEHICLE_COLUMNS = ["new_vehicleid", "_new_contactid_value", *VEHICLE_FIELDS]


def expected_campaign(reader: DataverseReader) -> Expected:
    """Apply the test config's rules to what Dynamics holds now."""
    return expected_from_rows(reader.rows("contacts", CONTACT_COLUMNS), reader.rows("new_vehicles", VEHICLE_COLUMNS))


def expected_from_rows(contacts: list[dict[str, Any]], vehicles: list[dict[str, Any]]) -> Expected:
    profiles: dict[str, dict[str, Any]] = {}
    for row in contacts:
        if row.get("statecode") != 0:  # filter statecode eq 0; on_filtered_out: delete
            continue
        values = {acs: row.get(column) for column, acs in CONTACT_FIELDS.items()}
        values["gender"] = GENDER.get(row.get("gendercode" + FORMATTED), "<no replacement>")
        # Dynamics owns the flag under dynamics_to_campaign; under bidirectional both sides agree after a pass.
        for column, acs in OPT_OUTS.items():
            values[acs] = bool(row.get(column))
        profiles[str(row["contactid"])] = values
    expected_vehicles: dict[str, dict[str, Any]] = {}
    for row in vehicles:
        contact = row.get("_new_contactid_value")
        if contact is not None and str(contact) not in profiles:
            continue  # a vehicle whose contact is not in Campaign is parked, never an orphan
        values = {acs: row.get(column) for column, acs in VEHICLE_FIELDS.items()}
        values["profile"] = str(contact) if contact is not None else None
        expected_vehicles[str(row["new_vehicleid"])] = values
    return Expected(profiles, expected_vehicles)


def _normal(value: Any) -> Any:
    # ACS answers "" for an unset string and 0 for an unset integer.
    if value is None or value == "":
        return ""
    return value


def differences(expected: Expected, actual: CampaignState, *, limit: int = 20) -> list[str]:
    """Row by row, field by field; duplicated business keys too. Empty when Campaign is what Dynamics implies."""
    found: list[str] = []
    for (resource, key), count in sorted(actual.key_counts.items()):
        if count != 1:
            found.append(f"{resource} {key}: {count} rows carry this business key")
    for name, want, have in (
        ("profile", expected.profiles, actual.profiles),
        ("cusVehicle", expected.vehicles, actual.vehicles),
    ):
        for key in sorted(want.keys() - have.keys()):
            found.append(f"{name} {key}: missing in Campaign")
        for key in sorted(have.keys() - want.keys()):
            found.append(f"{name} {key}: in Campaign but Dynamics implies none")
        for key in sorted(want.keys() & have.keys()):
            for field_name, value in want[key].items():
                got = have[key].get(field_name)
                if field_name == "year" and value is None:
                    value = 0
                if _normal(value) != _normal(got):
                    found.append(f"{name} {key}.{field_name}: Campaign has {got!r}, Dynamics implies {value!r}")
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def stored_rows(campaign_operator: httpx.Client) -> dict[str, int]:
    """Rows Campaign stores per resource, including children hidden behind a missing mandatory link (orphans)."""
    answer = campaign_operator.get("/stats")
    answer.raise_for_status()
    return {str(k): int(v) for k, v in answer.json()["rows"].items()}


def dynamics_flags(reader: DataverseReader, column: str = "donotbulkemail") -> dict[str, bool]:
    """Each contact's opt-out column, by contactid."""
    return {str(row["contactid"]): bool(row.get(column)) for row in reader.rows("contacts", ["contactid", column])}


def campaign_flags(reader: CampaignReader, flag: str = "blackListEmail") -> dict[str, bool]:
    """Each profile's opt-out flag, by externalId (profiles without one are left out)."""
    return {str(row["externalId"]): bool(row.get(flag)) for row in reader.rows(PROFILE_PATH) if row.get("externalId")}


def both_flags(
    dataverse: DataverseReader, campaign: CampaignReader, contacts: list[str]
) -> dict[str, tuple[bool, bool | None]]:
    """(Dynamics donotbulkemail, Campaign blackListEmail) per contact; None where Campaign has no profile."""
    dynamics, acs = dynamics_flags(dataverse), campaign_flags(campaign)
    return {contact: (dynamics[contact], acs.get(contact)) for contact in contacts}


# The demo's event tables (crmbridge's default activity tables, cmb_ prefix) and Dataverse's own task table.
ACTIVITY_SETS = {
    "send": "cmb_emailsends",
    "open": "cmb_emailopens",
    "click": "cmb_emailclicks",
    "bounce": "cmb_emailbounces",
}
FLAG_TIMESTAMP = {"blackListEmail": "blackListEmailLastModified"}  # ACS per-flag timestamp (seen in real data)


def activity_counts(reader: DataverseReader) -> dict[str, int]:
    """Rows per email-event activity table, plus follow-up ``tasks``."""
    found = {kind: reader.count(entity_set, "activityid") for kind, entity_set in ACTIVITY_SETS.items()}
    found["tasks"] = reader.count("tasks", "activityid")
    return found


def contacts_written_since(reader: DataverseReader, version: int) -> dict[str, dict[str, Any]]:
    """Contacts whose row version is above ``version`` (Dataverse bumps versionnumber on every write)."""
    rows = reader.rows("contacts", ["contactid", "versionnumber", *OPT_OUTS])
    return {str(row["contactid"]): row for row in rows if int(row["versionnumber"]) > version}


def profiles_with_flag_changed_since(reader: CampaignReader, flag: str, moment: str) -> dict[str, bool]:
    """externalId -> flag of profiles whose flag changed at or after ``moment`` (ACS timestamps sort as text)."""
    stamp = FLAG_TIMESTAMP[flag]
    return {
        str(row.get("externalId") or ""): bool(row.get(flag))
        for row in reader.rows(PROFILE_PATH)
        if str(row.get(stamp) or "") >= moment
    }


@dataclass(frozen=True)
class StoredOutcome:
    """What crmbridge's state file says, read with plain SQL (no crmbridge code)."""

    dead_letters: list[tuple[str, str, str, str, int]]  # flow, mapping, record_key, status, attempts
    unmatched_events: int
    conflicts: list[tuple[str, str]]  # contact_id, winner


def read_state_file(path: Path) -> StoredOutcome:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        letters = connection.execute("SELECT flow, mapping, record_key, status, attempts FROM dead_letters ORDER BY id")
        dead_letters = [(str(a), str(b), str(c), str(d), int(e)) for a, b, c, d, e in letters]
        (unmatched,) = connection.execute("SELECT count(*) FROM unmatched_events").fetchone()
        conflicts = [(str(a), str(b)) for a, b in connection.execute("SELECT contact_id, winner FROM conflicts")]
    return StoredOutcome(dead_letters, int(unmatched), conflicts)
