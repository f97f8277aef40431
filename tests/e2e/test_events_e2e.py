"""Email events, Campaign to Dynamics, through the real CLI against both emulators (issue 8 "Done when").

The journal repeats, swaps and holds back events (duplicate, reorder and delay faults on). Every expectation
comes from ``tests/e2e/events_oracle.py``: the journal's unique events, checked against what the emulator says
it delivered, through the configuration's rules written by hand; Dynamics is read with plain OData.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.events_harness import EventsWorld
from tests.e2e.events_oracle import ENTITY_SETS, ROLLUP_COLUMNS, EnabledTypes, event_differences, read_dynamics_events
from tests.e2e.harness import Org, run_sync
from tests.e2e.oracle import DataverseReader

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]
ALL_HARD = ("{send: true, open: true, click: true, bounce: hard}", EnabledTypes())
OPENS_AND_ALL_BOUNCES = (
    "{send: false, open: true, click: false, bounce: hard_and_soft}",
    EnabledTypes(send=False, click=False, bounce="hard_and_soft"),
)


def _deliver_to_unmatched_profiles(world: EventsWorld) -> None:
    """Two profiles Dynamics has no contact for, sent and opened for sure (each in every delivery, too)."""
    walk_in = world.campaign_profile({"email": "walk-in+acs@example.com", "lastName": "Ørsted"})  # no externalId
    stranger = world.campaign_profile({"email": "nobody@example.com", "externalId": str(uuid.uuid4())})
    world.deliver("DM189", "2026Welcome", seed=4, pkeys=[walk_in, stranger], rates={"bounce_rate": 0, "open_rate": 1})


@pytest.mark.parametrize(("types", "enabled"), [ALL_HARD, OPENS_AND_ALL_BOUNCES], ids=["all-hard", "opens-bounces"])
def test_delivery_writes_each_expected_activity_once_on_its_contact_and_counts_unmatched_events(
    make_org: MakeOrg, tmp_path: Path, types: str, enabled: EnabledTypes
) -> None:
    world = EventsWorld.create(make_org, tmp_path / "org", contacts=50, seed=31, types=types)
    _deliver_to_unmatched_profiles(world)
    world.deliver("DM190", "2026SpringCamp", seed=5)
    world.deliver("DM191", "2026SummerCamp", seed=6)
    world.publish()

    report = run_sync(world.config, "--json").report()["events"]
    expected = world.expected(enabled)

    # The test covers what it claims to: unmatched events, soft bounces (written only when enabled), hard ones.
    assert expected.unmatched >= 2 and expected.written() > 0
    assert expected.bounce_types["Soft"] > 0 and expected.bounce_types["Hard"] > 0, expected.bounce_types
    assert report["written"] == expected.written(), report
    assert report["tasks"] == len(expected.tasks), report
    assert report["unmatched"] == expected.unmatched, report
    assert report["failed"] == 0 and report["rejected"] == 0, report
    assert report["duplicates"] > 0, "the journal faults should have repeated some enabled events"
    problems = event_differences(expected, read_dynamics_events(world.org.dataverse))
    assert problems == [], "\n".join(problems)


def test_journal_replayed_from_an_older_position_or_into_a_fresh_state_duplicates_nothing_and_keeps_rollups(
    make_org: MakeOrg, tmp_path: Path
) -> None:
    types, enabled = ALL_HARD
    world = EventsWorld.create(make_org, tmp_path / "org", contacts=40, seed=47, types=types)
    # Published 3 days apart, so the journal still holds the first delivery's events when it is replayed.
    world.deliver("DM300", "2026AutumnCamp", seed=8)
    world.publish(days=3)
    run_sync(world.config, "--json")
    older = world.events_checkpoint()
    assert older is not None
    world.deliver("DM301", "2026AutumnCamp", seed=9)
    world.publish(days=3)
    run_sync(world.config, "--json")
    expected = world.expected(enabled)
    clean = read_dynamics_events(world.org.dataverse)
    problems = event_differences(expected, clean)
    assert problems == [], "\n".join(problems)

    world.rewind_events_checkpoint(older)
    replayed = run_sync(world.config, "--json").report()["events"]
    assert replayed["read"] > 0 and replayed["written"] == 0 and replayed["tasks"] == 0, replayed
    assert read_dynamics_events(world.org.dataverse) == clean  # ETags included: not even rewritten

    # A lost state file: the whole journal again, every activity and task upserted onto its own row again, and
    # the roll-ups recomputed from a new ledger.
    assert world.journal_kept_everything()
    fresh = run_sync(world.config_with_fresh_state(tmp_path / "fresh"), "--json").report()["events"]
    assert fresh["written"] == expected.written() and fresh["tasks"] == len(expected.tasks), fresh
    assert read_dynamics_events(world.org.dataverse).values() == clean.values()  # rewritten: new ETags only


# What the test configuration needs, by hand: one activity table per enabled type with the flow's columns and the
# event key as alternate key, and the roll-up columns on contact.
ACTIVITY_TABLES = {name.removesuffix("s") for name in ENTITY_SETS.values()}
ACTIVITY_TABLE_COLUMNS = {
    "cmb_occurredon",
    "cmb_campaignname",
    "cmb_deliveryname",
    "cmb_trackingurl",
    "cmb_mirrorpageurl",
    "cmb_bouncereason",
    "cmb_eventkey",
}


def _metadata(reader: DataverseReader) -> dict[str, dict[str, Any]]:
    """Every table's id, attributes (name, id, type) and alternate keys, through the metadata Web API."""
    headers = reader.headers()

    def get(path: str) -> list[dict[str, Any]]:
        answer = reader.http.get(f"/api/data/v9.2/{path}", headers=headers)
        answer.raise_for_status()
        return list(answer.json()["value"])

    tables: dict[str, dict[str, Any]] = {}
    for table in get("EntityDefinitions?$select=LogicalName,MetadataId"):
        name = table["LogicalName"]
        definition = f"EntityDefinitions(LogicalName='{name}')"
        attributes = get(f"{definition}/Attributes?$select=LogicalName,MetadataId,AttributeType")
        keys = get(f"{definition}/Keys?$select=LogicalName,KeyAttributes")
        tables[name] = {
            "id": table["MetadataId"],
            "attributes": {a["LogicalName"]: (a["MetadataId"], a["AttributeType"]) for a in attributes},
            "keys": sorted((k["LogicalName"], tuple(k["KeyAttributes"])) for k in keys),
        }
    return tables


def test_provision_run_twice_creates_every_table_column_and_key_once(make_org: MakeOrg, tmp_path: Path) -> None:
    world = EventsWorld.create(make_org, tmp_path / "org", contacts=5, seed=3, types=ALL_HARD[0], sync=False)
    before = _metadata(world.org.dataverse)
    planned = run_sync(world.config, "--dry-run", command_name="provision").stdout
    assert _metadata(world.org.dataverse) == before

    first = run_sync(world.config, command_name="provision").stdout
    after = _metadata(world.org.dataverse)
    second = run_sync(world.config, command_name="provision").stdout
    assert _metadata(world.org.dataverse) == after  # the same ids too: nothing dropped and made again
    assert "nothing to create" in second.lower(), second

    assert after.keys() - before.keys() == ACTIVITY_TABLES
    for table in ACTIVITY_TABLES:
        assert after[table]["attributes"].keys() >= ACTIVITY_TABLE_COLUMNS, table
        assert [attributes for _, attributes in after[table]["keys"]] == [("cmb_eventkey",)], table
    for table in before:
        added = after[table]["attributes"].keys() - before[table]["attributes"].keys()
        assert added == (set(ROLLUP_COLUMNS) if table == "contact" else set()), table
        assert after[table]["keys"] == before[table]["keys"], table
        assert {n: after[table]["attributes"][n] for n in before[table]["attributes"]} == before[table]["attributes"]
    for name in [*ACTIVITY_TABLES, *ROLLUP_COLUMNS]:
        assert name in first and name in planned, name
