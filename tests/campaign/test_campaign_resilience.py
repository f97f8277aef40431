"""The issue's hard cases: lost responses on upsert, PKeys that change between instances, changes during a poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from acs_env import Emulator, client_for, make_emulator

from crmbridge.campaign.client import CampaignClient
from crmbridge.campaign.links import LinkTo
from crmbridge.campaign.wire import parse_acs_datetime
from crmbridge.emulators.campaign.storage import table_name
from crmbridge.exceptions import RecordError

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def external_ids_in_storage(emulator: Emulator) -> list[str]:
    sql = f'SELECT "externalId" FROM {table_name("profile")} ORDER BY "externalId"'  # noqa: S608 - fixed name
    return [str(row[0]) for row in emulator.context.storage.db.execute(sql)]


@pytest.mark.anyio
async def test_upsert_with_responses_lost_after_the_write_leaves_exactly_one_row_per_key(
    client: CampaignClient, emulator: Emulator
) -> None:
    await client.find_by_key("profile", "externalId", "warm-up")  # the IMS token is fetched before the faults
    faults = emulator.context.faults
    assert faults is not None
    faults.update(drop_after_rate=0.3, seed=11)
    keys = [f"contact-{index:02d}" for index in range(40)]
    for key in keys:
        await client.upsert_by_key("profile", "externalId", key, {"email": f"{key}@example.com"})
    for key in keys[:10]:  # a second pass changes a field: PATCHes lost after applying are simply repeated
        await client.upsert_by_key("profile", "externalId", key, {"email": f"{key}@example.com", "firstName": "B"})
    faults.update(drop_after_rate=0.0)
    assert faults.injected.get("drop_after", 0) > 10
    assert client.stats.recovered_after_lost_response > 0  # some creates were applied and their answer lost
    assert external_ids_in_storage(emulator) == keys  # exactly one row per key, none missing
    assert client.stats.inserts == len(keys)  # a create whose answer was lost still counts once
    for key in keys[:10]:
        row = await client.get("profile", key)
        assert row is not None
        assert row["firstName"] == "B"


@pytest.mark.anyio
async def test_links_survive_the_emulator_being_recreated_with_a_new_pkey_salt(tmp_path: Path) -> None:
    db = str(tmp_path / "acs.db")
    owner = LinkTo("profile", "externalId", "contact-1")
    first = make_emulator(db_path=db, salt="instance-one")
    async with client_for(first) as campaign:
        old_owner = await campaign.create("profile", {"email": "owner@example.com", "externalId": "contact-1"})
        await campaign.upsert_by_key("cusVehicle", "vehicleId", "V-1", {"name": "Red", "profile": owner})
        stale = campaign.link_resolver()  # a PKey cache that outlives its instance: what must never be kept
        await stale.pkey_of(owner)
    first.hub.close()

    second = make_emulator(db_path=db, salt="instance-two")
    async with client_for(second) as campaign:
        [new_owner] = await campaign.find_by_key("profile", "externalId", "contact-1")
        assert new_owner["PKey"] != old_owner["PKey"]
        await campaign.upsert_by_key("cusVehicle", "vehicleId", "V-2", {"name": "Blue", "profile": owner})
        renamed = await campaign.upsert_by_key("cusVehicle", "vehicleId", "V-1", {"name": "Dark red", "profile": owner})
        assert renamed.outcome.value == "updated"
        for key in ("V-1", "V-2"):
            vehicle = await campaign.get("cusVehicle", key)
            assert vehicle is not None
            assert vehicle["profile"]["PKey"] == new_owner["PKey"]
        with pytest.raises(RecordError):  # the old instance's PKey means nothing here
            await campaign.upsert_by_key("cusVehicle", "vehicleId", "V-3", {"profile": owner}, resolver=stale)
    second.hub.close()


async def poll(
    campaign: CampaignClient, watermark: datetime, during: list[str] | None = None
) -> tuple[set[str], datetime]:
    """One poll; with ``during``, those profiles are changed after the first row arrived (while the scan runs)."""
    seen: set[str] = set()
    newest = watermark
    async for row in campaign.iter_modified_since("profile", watermark, timedelta(seconds=1)):
        if during:
            for key in during:
                await campaign.update("profile", key, {"firstName": "changed while polling"})
            during = None
        seen.add(str(row["externalId"]))
        modified = parse_acs_datetime(str(row["lastModified"]))
        assert modified is not None
        newest = max(newest, modified)
    return seen, newest


@pytest.mark.anyio
async def test_last_modified_poller_sees_every_change_between_polls_and_during_a_poll(
    emulator: Emulator, client: CampaignClient
) -> None:
    client.page_size = 4
    keys = [f"c-{index:02d}" for index in range(30)]
    for key in keys:
        await client.create("profile", {"email": f"{key}@example.com", "externalId": key})
        emulator.settings.clock.advance(5)  # rows further apart than the overlap window
    first, watermark = await poll(client, EPOCH)
    assert first == set(keys)

    emulator.settings.clock.advance(120)
    between = ["c-03", "c-17", "c-29"]
    for key in between:
        await client.update("profile", key, {"blackListEmail": True})
    emulator.settings.clock.advance(120)
    during = ["c-05", "c-17", "c-21"]  # c-17 was already changed; c-05 and c-21 are not in the scan's window yet
    second, watermark2 = await poll(client, watermark, during=list(during))
    assert set(between) <= second
    assert not second & (set(keys) - set(between) - set(during))  # nothing older than the overlap comes back

    third, _ = await poll(client, watermark2)
    assert set(during) <= second | third
    assert set(during) <= third  # their new lastModified is after everything the second poll returned


@pytest.mark.anyio
async def test_upsert_under_throttling_outages_and_drops_still_leaves_exactly_one_row_per_key(
    client: CampaignClient, emulator: Emulator
) -> None:
    await client.find_by_key("profile", "externalId", "warm-up")
    faults = emulator.context.faults
    assert faults is not None
    faults.update(throttle_rate=0.1, error_rate=0.1, drop_before_rate=0.1, drop_after_rate=0.1, seed=23)
    keys = [f"k-{index:02d}" for index in range(30)]
    for key in keys:
        await client.upsert_by_key("profile", "externalId", key, {"email": f"{key}@example.com"})
    faults.update(throttle_rate=0.0, error_rate=0.0, drop_before_rate=0.0, drop_after_rate=0.0)
    injected = faults.injected
    assert all(injected.get(kind, 0) > 0 for kind in ("throttle", "error", "drop_before", "drop_after")), injected
    assert external_ids_in_storage(emulator) == keys
    assert client.stats.http.throttled > 0
