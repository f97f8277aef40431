"""The tables flow's own logic, against in-memory ports and a real SQLite state store.

Expected Campaign contents are written out literally in each test (not computed with crmbridge.mapping).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.table_spec import build_table_spec, mapping_order
from crmbridge.engine.tables import TablesFlow
from crmbridge.exceptions import TransientError
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeResource, FakeTable

pytestmark = pytest.mark.anyio

CONFIG = """
version: 1
dynamics: {org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}
campaign: {organization: acme, client_id: c, client_secret: s3cr3t-value}
optouts:
  mode: bidirectional
  pairs: [{dynamics: donotbulkemail, campaign: blackListEmail}]
mappings:
  - name: vehicles
    table: new_vehicle
    resource: cusVehicle
    key: {dynamics: new_vehicleid, campaign: vehicleId}
    fields:
      - {dynamics: new_name, campaign: name}
    links:
      - {lookup: new_contactid, mapping: contacts, campaign_link: profile, max_wait: 1h}
  - name: contacts
    table: contact
    resource: profileAndServicesExt
    key: {dynamics: contactid, campaign: externalId}
    deletes: propagate
    fields:
      - {dynamics: firstname, campaign: firstName}
      - {dynamics: emailaddress1, campaign: email, apply_updates: false}
      - {dynamics: address1_city, campaign: location.city}
    filters:
      conditions: [{column: statecode, op: eq, value: 0}]
      on_filtered_out: delete
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


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


def flow(
    config: CrmbridgeConfig,
    name: str,
    table: FakeTable,
    target: FakeResource,
    store: StateStore,
    clock: Clock,
    **kw: Any,
) -> TablesFlow:
    mapping = next(m for m in config.mappings if m.name == name)
    return TablesFlow(build_table_spec(config, mapping), table, target, store, clock=clock, **kw)


def contacts_table() -> FakeTable:
    table = FakeTable("contact", "contactid")
    table.put(
        "c1", firstname="Ann", emailaddress1="ann@example.com", address1_city="Oslo", statecode=0, donotbulkemail=False
    )
    table.put(
        "c2", firstname="Bo", emailaddress1="bo@example.com", address1_city="Bergen", statecode=0, donotbulkemail=True
    )
    table.put(
        "c3", firstname="Cy", emailaddress1="cy@example.com", address1_city=None, statecode=1, donotbulkemail=False
    )
    table.put(
        "c4", firstname="Di", emailaddress1="di@example.com", address1_city="Tromsø", statecode=0, donotbulkemail=False
    )
    return table


async def test_initial_sync_writes_every_passing_row_and_creates_opted_out_contacts_opted_out(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert profiles.records == {
        "c1": {
            "externalId": "c1",
            "firstName": "Ann",
            "email": "ann@example.com",
            "location": {"city": "Oslo"},
            "blackListEmail": False,
        },
        "c2": {
            "externalId": "c2",
            "firstName": "Bo",
            "email": "bo@example.com",
            "location": {"city": "Bergen"},
            "blackListEmail": True,
        },
        "c4": {
            "externalId": "c4",
            "firstName": "Di",
            "email": "di@example.com",
            "location": {"city": "Tromsø"},
            "blackListEmail": False,
        },
    }
    assert (stats.read, stats.created, stats.filtered, stats.pages) == (4, 3, 1, 2)
    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is not None
    assert checkpoint.value == "delta:4"
    assert checkpoint.in_flight is None


async def test_incremental_pass_writes_only_changes_and_respects_apply_updates(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    profiles.calls.clear()
    table.put("c1", emailaddress1="new@example.com")  # apply_updates: false → not written, hash unchanged
    table.put("c4", address1_city="Bodø")
    table.put("c2", statecode=1)  # leaves the filter → deleted (on_filtered_out: delete)
    table.delete("c3")  # never synced: nothing to delete
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert profiles.calls == [("update", "c4"), ("delete", "c2")] or sorted(profiles.calls) == [
        ("delete", "c2"),
        ("update", "c4"),
    ]
    assert profiles.records["c4"]["location"] == {"city": "Bodø"}
    assert profiles.records["c1"]["email"] == "ann@example.com"
    assert "c2" not in profiles.records
    assert (stats.kind, stats.updated, stats.deleted, stats.skipped) == ("delta", 1, 1, 2)


async def test_tombstone_of_a_synced_contact_deletes_the_profile(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.delete("c1")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert sorted(profiles.records) == ["c2", "c4"]
    assert store.links_for("contacts", ["c1"])["c1"].is_deleted


async def test_one_refused_record_becomes_one_dead_letter_and_the_rest_is_written(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", refuse={"c2"})
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert sorted(profiles.records) == ["c1", "c4"]
    assert stats.failed == 1
    letters = store.dead_letters.list()
    assert [(d.record_key, d.error_class) for d in letters] == [("c2", "RecordError")]
    assert "XTK-170036" in letters[0].reason


async def test_outage_mid_page_commits_nothing_for_that_page_and_the_next_pass_resumes(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", fail_after=1)
    with pytest.raises(TransientError):
        await flow(config, "contacts", table, profiles, store, clock).run_pass()
    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is None or checkpoint.value is None  # the first page was not acknowledged in full
    profiles.fail_after = None
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert sorted(profiles.records) == ["c1", "c2", "c4"]
    assert [c for c in profiles.calls if c[0] == "create"].count(("create", "c1")) == 1


async def test_crash_after_first_page_resumes_from_the_stored_next_link(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", fail_after=2)
    with pytest.raises(TransientError):
        await flow(config, "contacts", table, profiles, store, clock).run_pass()
    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is not None
    assert checkpoint.in_flight is not None
    assert '"next": "full:0:3:4"' in checkpoint.in_flight
    profiles.fail_after = None
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert table.reads[-1] == "full:0:3"  # resumed at the second page, not from the start
    assert sorted(profiles.records) == ["c1", "c2", "c4"]


async def test_expired_delta_link_rebaselines_and_finds_deletions_it_missed(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.delete("c4")
    table.put("c1", firstname="Annie")
    table.expired_before = table.version + 1  # every stored delta link is now refused
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert stats.kind == "rebaseline"
    assert sorted(profiles.records) == ["c1", "c2"]
    assert profiles.records["c1"]["firstName"] == "Annie"
    assert store.links_for("contacts", ["c4"])["c4"].is_deleted
    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is not None
    assert checkpoint.in_flight is None
    assert checkpoint.value == f"delta:{table.version}"


async def test_changed_mapping_replays_and_rewrites_fields_without_apply_updates(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.rows["c1"]["emailaddress1"] = "changed-silently@example.com"  # no version bump: only a replay sees it
    changed = parse_config(CONFIG.replace("value: 0}]", "value: 0}, {column: firstname, op: ne, value: Zed}]"))
    stats = await flow(changed, "contacts", table, profiles, store, clock).run_pass()
    assert stats.kind == "replay"
    assert profiles.records["c1"]["email"] == "changed-silently@example.com"


async def test_child_before_parent_is_parked_then_written_with_its_link(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    contacts, profiles = FakeTable("contact", "contactid"), FakeResource("profile")
    vehicles, cus = FakeTable("new_vehicle", "new_vehicleid"), FakeResource("cusVehicle")
    vehicles.put("v1", new_name="Model T", _new_contactid_value="c9")
    vehicles.put("v2", new_name="Beetle", _new_contactid_value=None)
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert sorted(cus.records) == ["v2"]  # v1 waits: its contact is not in Campaign yet (never an orphan)
    contacts.put("c9", firstname="Ed", statecode=0)
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert cus.records["v1"] == {"vehicleId": "v1", "name": "Model T"}
    assert cus.parents_seen["v1"]["profile"].key == "c9"
    assert store.pending_due(clock.now + timedelta(days=1)) == []


async def test_child_whose_parent_never_lands_becomes_a_dead_letter_after_max_wait(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    vehicles, cus = FakeTable("new_vehicle", "new_vehicleid"), FakeResource("cusVehicle")
    vehicles.put("v1", new_name="Model T", _new_contactid_value="c-missing")
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    clock.now += timedelta(hours=2)
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()
    assert cus.records == {}
    assert [(d.record_key, d.error_class) for d in store.dead_letters.list()] == [("v1", "MissingParent")]


async def test_dry_run_writes_nothing_and_counts_what_the_real_pass_then_does(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.put("c4", address1_city="Bodø")
    table.put("c5", firstname="Eve", statecode=0)
    before = dict(profiles.records)
    plan = await flow(config, "contacts", table, profiles, store, clock, dry_run=True).run_pass()
    assert profiles.records == before
    assert store.checkpoint(Flow.TABLES, "contacts").value == "delta:4"  # type: ignore[union-attr]
    real = await flow(config, "contacts", table, profiles, store, clock).run_pass()
    assert plan.counts() == real.counts()
    assert {s["key"]: s["diff"] for s in plan.samples}["c4"] == {"location.city": ("Tromsø", "Bodø")}


async def test_dry_run_counts_children_whose_parent_the_same_dry_run_would_write_as_the_real_pass_does(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    contacts, profiles = FakeTable("contact", "contactid"), FakeResource("profile")
    vehicles, cus = FakeTable("new_vehicle", "new_vehicleid"), FakeResource("cusVehicle")
    contacts.put("c1", firstname="Ann", statecode=0)
    vehicles.put("v1", new_name="Parked", _new_contactid_value="c9")
    await flow(config, "contacts", contacts, profiles, store, clock).run_pass()
    await flow(config, "vehicles", vehicles, cus, store, clock).run_pass()  # v1 parked: c9 is not in Campaign
    contacts.put("c9", firstname="Ed", statecode=0)  # its parent lands in the next pass
    contacts.put("c2", firstname="Bo", statecode=0)
    vehicles.put("v2", new_name="New", _new_contactid_value="c2")  # a new child of a new parent, same pass

    async def one_pass(*, dry_run: bool) -> list[dict[str, int]]:
        planned = PlannedLinks()
        return [
            (
                await flow(config, name, table, target, store, clock, dry_run=dry_run, planned=planned).run_pass()
            ).counts()
            for name, table, target in (("contacts", contacts, profiles), ("vehicles", vehicles, cus))
        ]

    plan = await one_pass(dry_run=True)
    assert sorted(cus.records) == []
    real = await one_pass(dry_run=False)
    assert plan == real
    assert sorted(cus.records) == ["v1", "v2"] and real[1]["created"] == 2 and real[1]["parked"] == 0


def test_parents_are_ordered_before_children(config: CrmbridgeConfig) -> None:
    assert [m.name for m in mapping_order(config)] == ["contacts", "vehicles"]
