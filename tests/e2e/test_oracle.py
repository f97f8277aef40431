"""The oracle itself, on literal rows: it must see every kind of divergence the e2e tests rely on it to find."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.oracle import FORMATTED, CampaignState, differences, expected_from_rows

pytestmark = pytest.mark.e2e

CONTACTS = [
    {
        "contactid": "c1",
        "statecode": 0,
        "firstname": "Zoë",
        "lastname": "D'Arcy",
        "emailaddress1": "zoe+crm@example.com",
        "telephone1": None,
        "address1_city": "Tromsø",
        "address1_postalcode": "9008",
        "birthdate": "1990-02-03",
        "gendercode": 2,
        "gendercode" + FORMATTED: "Female",
        "donotbulkemail": True,
    },
    {"contactid": "c2", "statecode": 1, "firstname": "Inactive"},
]
VEHICLES = [
    {"new_vehicleid": "v1", "_new_contactid_value": "c1", "new_name": "Ioniq", "new_vin": "X", "new_model": "5"},
    {"new_vehicleid": "v2", "_new_contactid_value": "c2", "new_name": "Parked", "new_vin": "Y", "new_model": "3"},
]
PROFILE = {
    "firstName": "Zoë",
    "lastName": "D'Arcy",
    "email": "zoe+crm@example.com",
    "phone": "",
    "location.city": "Tromsø",
    "location.zipCode": "9008",
    "birthDate": "1990-02-03",
    "gender": "female",
    "blackListEmail": True,
}
VEHICLE = {"name": "Ioniq", "vin": "X", "model": "5", "year": 0, "profile": "c1"}


def campaign(profiles: dict[str, dict[str, object]], vehicles: dict[str, dict[str, object]]) -> CampaignState:
    counts: Counter[tuple[str, str]] = Counter({("profile", k): 1 for k in profiles})
    counts.update({("cusVehicle", k): 1 for k in vehicles})
    return CampaignState(profiles, vehicles, counts)


def test_oracle_applies_filter_replacements_opt_outs_and_parks_children_of_filtered_parents() -> None:
    expected = expected_from_rows(CONTACTS, VEHICLES)
    assert sorted(expected.profiles) == ["c1"] and sorted(expected.vehicles) == ["v1"]
    assert differences(expected, campaign({"c1": PROFILE}, {"v1": VEHICLE})) == []


def test_oracle_reports_missing_extra_changed_and_duplicated_rows() -> None:
    expected = expected_from_rows(CONTACTS, VEHICLES)
    state = campaign({"c1": PROFILE | {"gender": "unknown"}, "c2": PROFILE}, {})
    state.key_counts[("profile", "c1")] = 2
    found = differences(expected, state)
    assert found == [
        "profile c1: 2 rows carry this business key",
        "profile c2: in Campaign but Dynamics implies none",
        "profile c1.gender: Campaign has 'unknown', Dynamics implies 'female'",
        "cusVehicle v1: missing in Campaign",
    ]


def test_oracle_sees_a_vehicle_linked_to_the_wrong_profile() -> None:
    found = differences(
        expected_from_rows(CONTACTS, VEHICLES), campaign({"c1": PROFILE}, {"v1": VEHICLE | {"profile": "c9"}})
    )
    assert found == ["cusVehicle v1.profile: Campaign has 'c9', Dynamics implies 'c1'"]
