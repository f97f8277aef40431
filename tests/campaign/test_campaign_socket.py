"""The hard cases again, over a real socket (uvicorn on 127.0.0.1): dropped connections are real aborts here."""

from __future__ import annotations

import httpx
import pytest
from acs_env import IMS_ORG, JOURNAL_PATH, campaign_client, credentials, fast_retry, make_emulator, served
from test_campaign_journal import EMULATOR_MAPPING, deliver, published_event_ids, read_until_caught_up
from test_campaign_resilience import external_ids_in_storage

from crmbridge.campaign.auth import ImsTokenProvider
from crmbridge.campaign.journal import JournalConsumer, JournalCursor
from crmbridge.emulators.campaign.events import JournalFaults


@pytest.mark.anyio
async def test_upsert_over_a_socket_with_connections_dropped_after_the_write_leaves_one_row_per_key() -> None:
    env = make_emulator()
    keys = [f"contact-{index:02d}" for index in range(25)]
    with served(env.app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            campaign = campaign_client(http, base=base)
            await campaign.find_by_key("profile", "externalId", "warm-up")
            faults = env.context.faults
            assert faults is not None
            faults.update(drop_after_rate=0.3, seed=4)
            for key in keys:
                await campaign.upsert_by_key("profile", "externalId", key, {"email": f"{key}@example.com"})
            faults.update(drop_after_rate=0.0)
    assert faults.injected.get("drop_after", 0) > 5
    assert campaign.stats.recovered_after_lost_response > 0
    assert external_ids_in_storage(env) == keys
    env.hub.close()


@pytest.mark.anyio
async def test_journal_restart_over_a_socket_with_duplicates_and_reordering_yields_each_event_once() -> None:
    env = make_emulator(
        seed_profiles=100, journal_faults=JournalFaults(duplicate_rate=0.25, reorder_rate=0.4, delay_rate=0.2, seed=9)
    )
    with served(env.app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await deliver(http, env, profiles=50)

            def consumer() -> JournalConsumer:
                return JournalConsumer(
                    http,
                    ImsTokenProvider(http, credentials(base), retry=fast_retry("ims")),
                    journal_url=base + JOURNAL_PATH,
                    ims_org_id=IMS_ORG,
                    mapping=EMULATOR_MAPPING,
                    start="oldest",
                    limit=13,
                    retry=fast_retry("io-events"),
                    clock=env.settings.clock.now,
                )

            first, cursor, _ = await read_until_caught_up(consumer(), None, stop_after=2)
            assert cursor is not None
            second, _, _ = await read_until_caught_up(consumer(), JournalCursor.from_json(cursor.to_json()))
            expected = published_event_ids(env)
    yielded = [event.source_event_id for event in first + second]
    assert len(yielded) == len(set(yielded))
    assert set(yielded) == set(expected)
    env.hub.close()
