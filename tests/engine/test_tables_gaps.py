"""Tables flow gaps: a fixed record closes its dead letter; children of a deleted parent do not linger in Campaign.

Expected Campaign contents and letters are written out literally (not computed with crmbridge.mapping).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.engine.plan import PlannedLinks
from crmbridge.state import DeadLetterStatus, StateStore
from tests.engine.fakes import FakeResource, FakeTable
from tests.engine.test_tables_flow import CONFIG, Clock, contacts_table, flow

pytestmark = pytest.mark.anyio


@pytest.fixture
def config() -> CrmbridgeConfig:
    return parse_config(CONFIG)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_record_fixed_in_dynamics_closes_its_dead_letter_in_the_pass_that_writes_it(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", refuse={"c2"})
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    (letter,) = store.dead_letters.list()
    assert letter.id is not None

    profiles.refuse.clear()
    table.put("c2", firstname="Bob")  # the user fixed the record in Dynamics
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()

    assert stats.created == 1
    assert profiles.records["c2"]["firstName"] == "Bob"
    assert store.dead_letters.list() == []
    closed = store.dead_letters.get(letter.id)
    assert closed is not None
    assert closed.status is DeadLetterStatus.RESOLVED
    assert closed.close_reason == "written by a later pass or retry"
    assert closed.closed_at is not None and closed.closed_at > letter.failed_at


async def test_a_record_still_refused_keeps_its_letter_open_with_one_more_attempt(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", refuse={"c2"})
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.put("c2", firstname="Bob")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()

    (letter,) = store.dead_letters.list()
    assert (letter.record_key, letter.attempts, letter.closed_at) == ("c2", 2, None)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[StateStore, Clock]]:
    """A store on the flows' clock: which parents were deleted since the last pass compares both clocks' times."""
    clock = Clock()
    with StateStore.open(f"sqlite:///{tmp_path / 'shared.db'}", clock=clock) as opened:
        yield opened, clock


async def _family(config: CrmbridgeConfig, store: StateStore, clock: Clock) -> tuple[Any, ...]:
    contacts, profiles = contacts_table(), FakeResource("profile")
    vehicles, cus = FakeTable("new_vehicle", "new_vehicleid"), FakeResource("cusVehicle")
    vehicles.put("v1", new_name="Model T", _new_contactid_value="c1")
    vehicles.put("v2", new_name="Beetle", _new_contactid_value="c2")
    vehicles.put("v4", new_name="Mini", _new_contactid_value=None)
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert sorted(cus.records) == ["v1", "v2", "v4"]
    return contacts, profiles, vehicles, cus


async def test_children_of_a_parent_deleted_or_filtered_out_are_deleted_from_campaign_too(
    config: CrmbridgeConfig, shared: tuple[StateStore, Clock]
) -> None:
    store, clock = shared
    contacts, profiles, vehicles, cus = await _family(config, store, clock)
    contacts.delete("c1")  # deleted in Dynamics (deletes: propagate)
    contacts.put("c2", statecode=1)  # left the contacts filter (on_filtered_out: delete)
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()
    assert sorted(profiles.records) == ["c4"]

    stats = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()

    assert sorted(cus.records) == ["v4"]
    assert (stats.orphaned, stats.deleted) == (2, 2)
    links = store.links_for("vehicles", ["v1", "v2", "v4"])
    assert (links["v1"].is_deleted, links["v2"].is_deleted, links["v4"].is_deleted) == (True, True, False)
    again = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert (again.orphaned, again.deleted) == (0, 0)


async def test_a_dry_run_counts_the_children_it_would_delete_and_deletes_nothing(
    config: CrmbridgeConfig, shared: tuple[StateStore, Clock]
) -> None:
    store, clock = shared
    contacts, profiles, vehicles, cus = await _family(config, store, clock)
    contacts.delete("c1")
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()

    plan = await flow(config, "vehicles", vehicles, cus, store, clock, dry_run=True).run_pass()
    assert sorted(cus.records) == ["v1", "v2", "v4"]
    real = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert (plan.orphaned, plan.deleted) == (1, 1)
    assert plan.counts() == real.counts()
    assert sorted(cus.records) == ["v2", "v4"]


async def test_keep_leaves_the_children_and_reports_them_once(shared: tuple[StateStore, Clock]) -> None:
    store, clock = shared
    config = parse_config(CONFIG.replace("max_wait: 1h}", "max_wait: 1h, on_parent_deleted: keep}"))
    contacts, profiles, vehicles, cus = await _family(config, store, clock)
    contacts.delete("c1")
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()

    stats = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    again = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()

    assert sorted(cus.records) == ["v1", "v2", "v4"]
    assert (stats.orphaned, stats.deleted, again.orphaned) == (1, 0, 0)
    assert stats.counts()["orphaned"] == 1


async def test_children_stay_when_the_parent_mapping_never_deletes_in_campaign(
    shared: tuple[StateStore, Clock],
) -> None:
    store, clock = shared
    keeping = CONFIG.replace("    deletes: propagate\n", "").replace("on_filtered_out: delete", "on_filtered_out: keep")
    config = parse_config(keeping)
    contacts, profiles, vehicles, cus = await _family(config, store, clock)
    contacts.delete("c1")
    contacts.expired_before = contacts.version + 1  # a re-baseline marks c1's link deleted: gone from Dynamics
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()
    assert store.links_for("contacts", ["c1"])["c1"].is_deleted
    assert "c1" in profiles.records  # ...while the profile stays in Campaign

    stats = await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()

    assert sorted(cus.records) == ["v1", "v2", "v4"]
    assert stats.orphaned == 0


async def test_a_dry_run_of_parent_and_child_counts_the_children_the_parent_deletes_would_take(
    config: CrmbridgeConfig, shared: tuple[StateStore, Clock]
) -> None:
    store, clock = shared
    contacts, profiles, vehicles, cus = await _family(config, store, clock)
    contacts.delete("c1")
    planned = PlannedLinks()

    await flow(config, "contacts", contacts, profiles, store, clock, dry_run=True, planned=planned).run_pass()
    plan = await flow(config, "vehicles", vehicles, cus, store, clock, dry_run=True, planned=planned).run_pass()

    assert (plan.orphaned, plan.deleted) == (1, 1)
    assert sorted(profiles.records) == ["c1", "c2", "c4"] and sorted(cus.records) == ["v1", "v2", "v4"]
