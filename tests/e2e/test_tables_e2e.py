"""Contacts and vehicles, Dynamics to Campaign, through the real CLI against both emulators (issue 7).

Every expectation comes from ``tests/e2e/oracle.py``, which reads both sides over HTTP and applies the
configuration's rules by hand.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import Org, run_sync
from tests.e2e.oracle import CONTACT_COLUMNS, differences, expected_campaign, read_campaign, stored_rows

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]


def assert_campaign_matches_dynamics(org: Org) -> None:
    problems = differences(expected_campaign(org.dataverse), read_campaign(org.campaign))
    assert problems == [], "\n".join(problems)


def _contacts(org: Org) -> list[dict[str, Any]]:
    return org.dataverse.rows("contacts", CONTACT_COLUMNS)


def test_initial_sync_then_updates_deletes_and_filter_transitions_leave_campaign_as_dynamics_implies(
    make_org: MakeOrg,
) -> None:
    _initial_sync_then_changes(make_org())


@pytest.mark.slow
def test_initial_sync_of_5000_contacts_and_2000_vehicles_then_changes_leave_campaign_as_dynamics_implies(
    make_org: MakeOrg,
) -> None:
    _initial_sync_then_changes(make_org(contacts=5000, vehicles_share=0.4), timeout=1200.0)


def _initial_sync_then_changes(org: Org, *, timeout: float = 120.0) -> None:
    org.set_latency(dynamics_ms=5, campaign_ms=10)
    first = run_sync(org.config, "--json", timeout=timeout).tables()
    expected = expected_campaign(org.dataverse)
    assert first["contacts"]["created"] == len(expected.profiles)
    assert first["vehicles"]["created"] == len(expected.vehicles)
    assert_campaign_matches_dynamics(org)

    rnd = random.Random(7)
    contacts = _contacts(org)
    active = [str(c["contactid"]) for c in contacts if c["statecode"] == 0]
    inactive = [str(c["contactid"]) for c in contacts if c["statecode"] != 0]
    rnd.shuffle(active)
    renamed, regendered, ungendered, opted_out, deleted, deactivated = (active[i * 5 : i * 5 + 5] for i in range(6))
    org.update("contact", renamed, {"lastname": "O'Brien-Ñúñez", "telephone1": "+33 1 23 45 67 89"})
    org.update("contact", regendered, {"gendercode": 2})
    org.update("contact", ungendered, {"gendercode": None})
    org.update("contact", opted_out, {"donotbulkemail": True})
    org.delete("contact", deleted)
    org.update("contact", deactivated, {"statecode": 1, "statuscode": 2})
    org.update("contact", inactive[:3], {"statecode": 0, "statuscode": 1})
    vehicles = org.dataverse.rows("new_vehicles", ["new_vehicleid", "_new_contactid_value"])
    live = [str(v["new_vehicleid"]) for v in vehicles if str(v["_new_contactid_value"]) in set(active[30:])]
    org.update("new_vehicle", live[:4], {"new_model": "Roadster", "new_year": 2024})
    org.delete("new_vehicle", live[4:6])
    org.update("new_vehicle", live[6:8], {"new_contactid@odata.bind": f"/contacts({active[-1]})"})

    second = run_sync(org.config, "--json", timeout=timeout).tables()
    assert second["contacts"]["kind"] == "delta"
    assert second["contacts"]["deleted"] == len(deleted) + len(deactivated)
    assert_campaign_matches_dynamics(org)
    third = run_sync(org.config, "--json", timeout=timeout).tables()
    assert third["contacts"]["written"] == 0 and third["vehicles"]["written"] == 0, third


def test_vehicle_synced_before_its_contact_is_parked_then_written_after_the_contact_never_as_orphan(
    make_org: MakeOrg,
) -> None:
    org = make_org(contacts=0)
    contact = org.dataverse.create(
        "contacts", {"firstname": "Zoë", "lastname": "D'Arcy", "emailaddress1": "zoe+crm@example.com"}
    )
    vehicle = org.dataverse.create(
        "new_vehicles",
        {"new_name": "Ioniq 5", "new_vin": "KMHC851CGNU000001", "new_contactid@odata.bind": f"/contacts({contact})"},
    )

    vehicles_only = run_sync(org.config, "--mapping", "vehicles", "--json").tables()["vehicles"]
    assert vehicles_only["parked"] == 1 and vehicles_only["written"] == 0
    with org.emulators.campaign_operator() as operator:
        assert stored_rows(operator)["cusVehicle"] == 0  # not even hidden behind the missing profile

    run_sync(org.config, "--json")
    state = read_campaign(org.campaign)
    assert state.vehicles[vehicle]["profile"] == contact
    assert_campaign_matches_dynamics(org)
    with org.emulators.campaign_operator() as operator:
        assert stored_rows(operator)["cusVehicle"] == 1


def test_expired_delta_token_rebaselines_and_finds_the_deletions_that_happened_meanwhile(make_org: MakeOrg) -> None:
    org = make_org(contacts=60)
    run_sync(org.config, "--json")
    contacts = [str(c["contactid"]) for c in _contacts(org) if c["statecode"] == 0]
    org.delete("contact", contacts[:6])
    org.update("contact", contacts[6:9], {"lastname": "Ångström"})
    moved = org.advance_dynamics_clock(days=8)  # past ExpireChangeTrackingInDays (7): tombstones purged too
    assert moved["tombstones_purged"] >= 6

    report = run_sync(org.config, "--json").tables()
    assert report["contacts"]["kind"] == "rebaseline"
    assert report["contacts"]["deleted"] == 6
    assert_campaign_matches_dynamics(org)


def test_dry_run_changes_nothing_on_either_side_and_counts_what_the_real_pass_then_does(make_org: MakeOrg) -> None:
    org = make_org(contacts=80)
    run_sync(org.config, "--json")
    owners = {str(v["_new_contactid_value"]) for v in org.dataverse.rows("new_vehicles", ["_new_contactid_value"])}
    parked_parents = [
        str(c["contactid"]) for c in _contacts(org) if c["statecode"] != 0 and str(c["contactid"]) in owners
    ]
    assert parked_parents, "the seed should hold an inactive contact with a vehicle (a parked child)"
    contacts = [str(c["contactid"]) for c in _contacts(org) if c["statecode"] == 0]
    org.update("contact", contacts[:7], {"telephone1": "+49 30 1234567"})
    org.update("contact", contacts[7:9], {"statecode": 1, "statuscode": 2})
    org.delete("contact", contacts[9:12])
    org.update("contact", parked_parents[:1], {"statecode": 0, "statuscode": 1})  # its vehicle can land now
    fresh = org.dataverse.create("contacts", {"firstname": "Nia", "lastname": "Okafor"})
    before_dynamics = org.dataverse.rows("contacts", CONTACT_COLUMNS)
    before_campaign = read_campaign(org.campaign)

    planned = run_sync(org.config, "--dry-run", "--json").tables()
    assert org.dataverse.rows("contacts", CONTACT_COLUMNS) == before_dynamics
    assert read_campaign(org.campaign) == before_campaign
    assert fresh not in before_campaign.profiles

    done = run_sync(org.config, "--json").tables()
    counted = ("created", "updated", "deleted", "skipped", "filtered", "parked", "failed")
    for mapping in ("contacts", "vehicles"):
        assert {n: planned[mapping][n] for n in counted} == {n: done[mapping][n] for n in counted}, mapping
        engine_calls = done[mapping]["created"] + 2 * done[mapping]["updated"] + done[mapping]["deleted"]  # §8
        assert planned[mapping]["budget"]["engine_calls"] == engine_calls, mapping
    assert done["contacts"]["created"] == 2 and done["contacts"]["updated"] == 7 and done["contacts"]["deleted"] == 5
    assert done["vehicles"]["created"] >= 1
    assert_campaign_matches_dynamics(org)
