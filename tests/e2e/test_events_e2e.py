"""Email events, Campaign to Dynamics, through the real CLI against both emulators (issue 8 "Done when").

The journal repeats, swaps and holds back events (duplicate, reorder and delay faults on). Every expectation
comes from ``tests/e2e/events_oracle.py``: the journal's unique events, checked against what the emulator says
it delivered, through the configuration's rules written by hand; Dynamics is read with plain OData.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.events_harness import EventsWorld
from tests.e2e.events_oracle import EnabledTypes, event_differences, read_dynamics_events
from tests.e2e.harness import Org, run_sync

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

    assert expected.unmatched >= 2 and expected.written() > 0  # the test covers what it claims to
    assert report["written"] == expected.written(), report
    assert report["tasks"] == len(expected.tasks), report
    assert report["unmatched"] == expected.unmatched, report
    assert report["failed"] == 0 and report["rejected"] == 0, report
    assert report["duplicates"] > 0, "the journal faults should have repeated some enabled events"
    problems = event_differences(expected, read_dynamics_events(world.org.dataverse))
    assert problems == [], "\n".join(problems)
