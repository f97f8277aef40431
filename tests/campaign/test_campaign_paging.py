"""Paging through a big table: every profile exactly once, with `_forcePagination` asked for when ACS hides `next`."""

from __future__ import annotations

import httpx
import pytest
from acs_env import campaign_client, in_process_http, make_emulator, served

from crmbridge.campaign.client import CampaignClient
from crmbridge.emulators.campaign.storage import table_name


def all_pkeys_in_storage(app: object) -> set[str]:
    context = app.state.campaign  # type: ignore[attr-defined]
    ids = [int(row[0]) for row in context.storage.db.execute(f"SELECT id FROM {table_name('profile')}")]  # noqa: S608
    return {context.pkeys.encode("profile", row_id) for row_id in ids}


async def page_everything(campaign: CampaignClient) -> list[str]:
    return [row["PKey"] async for row in campaign.iter_records("profile")]


@pytest.mark.parametrize(
    ("profiles", "threshold", "page"),
    [pytest.param(30_000, 1_000, 1_000, marks=pytest.mark.slow, id="30000"), pytest.param(3_000, 200, 250, id="3000")],
)
@pytest.mark.anyio
async def test_every_profile_is_returned_once_above_the_big_table_threshold(
    profiles: int, threshold: int, page: int
) -> None:
    env = make_emulator(big_table_threshold=threshold, seed_profiles=profiles)
    expected = all_pkeys_in_storage(env.app)
    assert len(expected) == profiles
    requests: list[str] = []

    async def record(request: httpx.Request) -> None:
        requests.append(str(request.url))

    async with in_process_http(env.app) as http:
        http.event_hooks["request"].append(record)
        pkeys = await page_everything(campaign_client(http, page_size=page))
    assert len(pkeys) == profiles
    assert set(pkeys) == expected
    # The first page came without `next` (big table): the client asked again with _forcePagination=true.
    listing = [url for url in requests if "/profileAndServicesExt/profile?" in url]
    assert "_forcePagination" not in listing[0]
    assert all("_forcePagination=true" in url for url in listing[1:])
    env.hub.close()


@pytest.mark.anyio
async def test_small_tables_page_without_forcing(client: CampaignClient) -> None:
    for index in range(5):
        await client.create("profile", {"email": f"s{index}@example.com"})
    client.page_size = 2
    assert len(set(await page_everything(client))) == 5


@pytest.mark.slow
@pytest.mark.anyio
async def test_30000_profiles_page_exactly_once_over_a_real_socket() -> None:
    env = make_emulator(big_table_threshold=1_000, seed_profiles=30_000)
    expected = all_pkeys_in_storage(env.app)
    with served(env.app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            pkeys = await page_everything(campaign_client(http, base=base, page_size=1_000))
    assert len(pkeys) == 30_000
    assert set(pkeys) == expected
    env.hub.close()


@pytest.mark.anyio
async def test_3000_profiles_page_exactly_once_over_a_real_socket() -> None:
    env = make_emulator(big_table_threshold=500, seed_profiles=3_000)
    expected = all_pkeys_in_storage(env.app)
    with served(env.app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            pkeys = await page_everything(campaign_client(http, base=base, page_size=250))
    assert sorted(pkeys) == sorted(expected)
    env.hub.close()
