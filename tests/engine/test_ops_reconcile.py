"""``reconcile`` and ``replay`` against both emulators in-process: differences are planted directly in the emulators.

Expected values are read from the emulators' APIs or written out literally, never through crmbridge's mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from crmbridge.engine.ops_commands import run_reconcile
from crmbridge.engine.reconcile import compare_values, reconcile, replay
from crmbridge.engine.runner import Runner
from crmbridge.engine.tables import PassStats
from crmbridge.state import Flow
from tests.engine.ops_env import Emulators, load, make_emulators


async def _synced(tmp_path: Path) -> Emulators:
    emulators = make_emulators()
    await emulators.seed(12)
    async with emulators.services(load(tmp_path / "state.db")) as services:
        await Runner(services).tables_pass()
    return emulators


@pytest.fixture
async def synced(tmp_path: Path) -> Emulators:
    return await _synced(tmp_path)


async def _profiles(emulators: Emulators, tmp_path: Path) -> dict[str, dict[str, object]]:
    async with emulators.services(load(tmp_path / "state.db")) as services:
        return {str(row["externalId"]): row async for row in services.campaign.iter_records("profile")}


@pytest.mark.anyio
async def test_reconcile_after_a_clean_sync_finds_nothing(synced: Emulators, tmp_path: Path) -> None:
    async with synced.services(load(tmp_path / "state.db")) as services:
        contacts = await reconcile(Runner(services), "contacts")
        vehicles = await reconcile(Runner(services), "vehicles")
    assert (contacts.dynamics_rows, contacts.campaign_rows, contacts.diffs) == (12, 12, [])
    assert vehicles.in_sync and vehicles.dynamics_rows == vehicles.campaign_rows > 0


@pytest.mark.anyio
async def test_reconcile_finds_every_planted_difference_and_repair_fixes_them(
    synced: Emulators, tmp_path: Path
) -> None:
    config = load(tmp_path / "state.db")
    async with synced.services(config) as services:
        campaign, dataverse = services.campaign, services.dataverse
        profiles = [row async for row in campaign.iter_records("profile")]
        edited, removed = profiles[0], profiles[1]
        await campaign.update("profile", edited, {"firstName": "Planted"})
        await campaign.delete("profile", removed)
        await campaign.create("profile", {"externalId": "not-from-dynamics", "email": "stray@example.com"})
        changed_id, gone_id = str(profiles[2]["externalId"]), str(profiles[3]["externalId"])
        await dataverse.update("contacts", changed_id, {"lastname": "Changed-In-Dynamics"})
        await dataverse.delete("contacts", gone_id)
        source = await dataverse.get("contacts", str(edited["externalId"]), select=["firstname"])
        assert source is not None

        report = await reconcile(Runner(services), "contacts")
        missing = {d.key for d in report.of_kind("missing")}
        extra = {d.key: d.owned for d in report.of_kind("extra")}
        different = {d.key: dict(d.fields) for d in report.of_kind("different")}
        assert missing == {str(removed["externalId"])}
        assert extra == {"not-from-dynamics": False, gone_id: True}
        assert different == {
            str(edited["externalId"]): {"firstName": ("Planted", source["firstname"])},
            changed_id: {"lastName": (profiles[2]["lastName"], "Changed-In-Dynamics")},
        }

        repaired = await reconcile(Runner(services), "contacts", repair=True)
        assert repaired.repaired == {"created": 1, "updated": 2, "deleted": 1, "parked": 0, "failed": 0}

        after = await reconcile(Runner(services), "contacts")
        assert [(d.kind, d.key, d.owned) for d in after.diffs] == [("extra", "not-from-dynamics", False)]
    held = await _profiles(synced, tmp_path)
    assert held[str(edited["externalId"])]["firstName"] == source["firstname"]
    assert held[changed_id]["lastName"] == "Changed-In-Dynamics"
    assert str(removed["externalId"]) in held and gone_id not in held
    assert held["not-from-dynamics"]["email"] == "stray@example.com"  # not crmbridge's: never deleted


@pytest.mark.anyio
async def test_repair_of_a_missing_profile_writes_its_create_only_fields(synced: Emulators, tmp_path: Path) -> None:
    config = load(tmp_path / "state.db")
    async with synced.services(config) as services:
        rows = [row async for row in services.campaign.iter_records("profile")]
        victim = next(row for row in rows if row.get("birthDate"))
        await services.campaign.delete("profile", victim)
        await reconcile(Runner(services), "contacts", repair=True)
    held = await _profiles(synced, tmp_path)
    assert held[str(victim["externalId"])]["birthDate"] == victim["birthDate"]


def test_reconcile_command_prints_the_diffs_and_exits_1_until_repaired(tmp_path: Path) -> None:
    synced = anyio.run(_synced, tmp_path)
    config = load(tmp_path / "state.db")

    async def drift() -> None:
        async with synced.services(config) as services:
            rows = [row async for row in services.campaign.iter_records("profile")]
            first = rows[0]
            await services.campaign.update("profile", first, {"lastName": "Drifted"})

    anyio.run(drift)
    console = Console(record=True, width=200)
    assert run_reconcile(config, console, "contacts", repair=False, open_services=synced.opener()) == 1
    text = console.export_text()
    assert "1 different" in text and "lastName: 'Drifted' → " in text
    assert run_reconcile(config, console, "contacts", repair=True, open_services=synced.opener()) == 0
    assert "repaired: created 0, updated 1, deleted 0, parked 0, failed 0" in console.export_text()
    assert run_reconcile(config, console, "contacts", repair=False, open_services=synced.opener()) == 0


@pytest.mark.anyio
async def test_replay_rewrites_every_row_of_one_mapping_only(synced: Emulators, tmp_path: Path) -> None:
    config = load(tmp_path / "state.db")
    async with synced.services(config) as services:
        before = services.store.checkpoint(Flow.TABLES, "vehicles")
        stats = await replay(Runner(services), "contacts")
        after = services.store.checkpoint(Flow.TABLES, "vehicles")
    assert (stats.kind, stats.read, stats.updated, stats.created) == ("replay", 12, 12, 0)
    assert before == after


@pytest.mark.anyio
async def test_repair_recreates_a_child_with_its_link_to_the_parent_profile(synced: Emulators, tmp_path: Path) -> None:
    config = load(tmp_path / "state.db")
    async with synced.services(config) as services:
        campaign = services.campaign
        vehicles = [row async for row in campaign.iter_records("cusVehicle")]
        removed, edited = vehicles[0], vehicles[1]
        await campaign.delete("cusVehicle", removed)
        await campaign.update("cusVehicle", edited, {"model": "Planted"})
        report = await reconcile(Runner(services), "vehicles", repair=True)
        source = await services.dataverse.get(
            "new_vehicles", str(removed["vehicleId"]), select=["_new_contactid_value"]
        )
        assert source is not None
        owners = await campaign.find_by_key("profile", "externalId", str(source["_new_contactid_value"]))
        recreated = await campaign.find_by_key("cusVehicle", "vehicleId", str(removed["vehicleId"]))
        after = await reconcile(Runner(services), "vehicles")
    assert [(d.kind, d.key) for d in report.diffs] == [
        ("different", str(edited["vehicleId"])),
        ("missing", str(removed["vehicleId"])),
    ]
    assert (report.repaired["created"], report.repaired["updated"]) == (1, 1)
    assert after.in_sync
    assert [row["profile"]["PKey"] for row in recreated] == [owners[0]["PKey"]]


class _Interrupted(Exception):
    pass


@pytest.mark.anyio
async def test_an_interrupted_replay_resumes_from_its_last_committed_page(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(12)
    loaded = load(tmp_path / "state.db")
    config = loaded.model_copy(update={"dynamics": loaded.dynamics.model_copy(update={"page_size": 5})})
    async with emulators.services(config) as services:
        runner = Runner(services)
        await runner.tables_pass()

        def stop_after_first_page(name: str) -> Callable[[PassStats], None]:
            def update(stats: PassStats) -> None:
                raise _Interrupted(name)

            return update

        with pytest.raises(_Interrupted):
            await replay(runner, "contacts", progress=stop_after_first_page)
        resumed = await replay(Runner(services), "contacts")
        again = await replay(Runner(services), "contacts")
    assert (resumed.kind, resumed.read, resumed.updated) == ("replay", 7, 7)
    assert (again.kind, again.read) == ("replay", 12)


def test_compare_values_treats_empty_text_as_null_and_numbers_as_text() -> None:
    held = {"firstName": "", "location": {"city": "Lyon"}, "year": "2020", "blackList": False}
    expected = {"firstName": None, "location.city": "Paris", "year": 2020, "blackList": True}
    assert compare_values(held, expected) == {"location.city": ("Lyon", "Paris"), "blackList": (False, True)}
