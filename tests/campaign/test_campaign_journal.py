"""The I/O Events journal consumer against the events emulator behind the core's IMS (events doc §A)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from acs_env import BASE, IMS_ORG, JOURNAL_PATH, Emulator, credentials, fast_retry, in_process_http, make_emulator

from crmbridge.campaign.auth import ImsTokenProvider
from crmbridge.campaign.journal import JournalConsumer, JournalCursor, JournalGap, JournalStart
from crmbridge.campaign.payload import PayloadMapping
from crmbridge.emulators.campaign.events import DeliverySpec, JournalFaults
from crmbridge.records import EmailEvent, EventType

# The emulator's (inferred) payload, mapped field by field; event types come from the code's last segment.
EMULATOR_MAPPING = PayloadMapping(
    {
        "event_type": "type",
        "occurred_at": "data.timestamp",
        "source_event_id": "eventid",
        "external_id": "data.profile.externalId",
        "email": "data.profile.email",
        "campaign_id": "data.campaignID",
        "campaign_label": "data.campaignLabel",
        "delivery_id": "data.deliveryID",
        "delivery_label": "data.deliveryLabel",
        "broadlog_id": "data.broadlogID",
        "tracking_log_id": "data.trackinglogID",
        "url": "data.url",
        "url_label": "data.urlLabel",
        "url_type": "data.urlType",
        "bounce_type": "data.bounceType",
        "bounce_reason": "data.bounceReason",
        "mirror_page_url": "data.mirrorPageUrl",
    }
)


def consumer(
    http: httpx.AsyncClient, env: Emulator, *, start: JournalStart = "oldest", limit: int = 17
) -> JournalConsumer:
    return JournalConsumer(
        http,
        ImsTokenProvider(http, credentials()),
        journal_url=BASE + JOURNAL_PATH,
        ims_org_id=IMS_ORG,
        mapping=EMULATOR_MAPPING,
        start=start,
        limit=limit,
        retry=fast_retry("io-events"),
        clock=env.settings.clock.now,
    )


async def deliver(http: httpx.AsyncClient, env: Emulator, *, profiles: int = 60, seed: int = 7) -> None:
    # Called on the hub directly: the events operator routes carry their own /_emulator prefix and the core
    # mounts them under /_emulator again (reported for the integrator).
    spec = DeliverySpec(
        "2019LoyaltyCamp", "Loyalty 2019", f"DM{seed}", "March newsletter", env.settings.clock.now(), seed
    )
    env.hub.simulate_delivery(spec, env.context.storage.delivery_targets(count=profiles, seed=seed))
    env.settings.clock.advance(4 * 86400)  # every open, click and async bounce has happened
    env.hub.release_due()


def published_event_ids(env: Emulator) -> list[str]:
    """Distinct event ids in publication order, read from the emulator's store (the oracle)."""
    ids: list[str] = []
    for row in env.hub.store.read_after(0, 1_000_000):
        event_id = json.loads(row.envelope_json)["eventid"]
        if event_id not in ids:
            ids.append(event_id)
    return ids


async def read_until_caught_up(
    journal: JournalConsumer, cursor: JournalCursor | None, *, stop_after: int | None = None
) -> tuple[list[EmailEvent], JournalCursor | None, int]:
    events: list[EmailEvent] = []
    duplicates = 0
    batches = 0
    async for batch in journal.batches(cursor):
        assert not batch.rejected
        events += batch.events
        duplicates += batch.duplicates
        cursor = batch.cursor  # what the engine commits with the batch
        batches += 1
        if stop_after is not None and batches >= stop_after:
            break
    return events, cursor, duplicates


@pytest.mark.parametrize(
    "faults",
    [JournalFaults(), JournalFaults(duplicate_rate=0.25, reorder_rate=0.4, delay_rate=0.2, seed=5)],
    ids=["clean", "duplicates-and-reorder"],
)
@pytest.mark.anyio
async def test_restart_from_a_stored_position_neither_skips_nor_repeats_an_event(faults: JournalFaults) -> None:
    env = make_emulator(seed_profiles=200, journal_faults=faults)
    async with in_process_http(env.app) as http:
        await deliver(http, env)
        first_run, cursor, dupes_1 = await read_until_caught_up(consumer(http, env), None, stop_after=3)
        assert cursor is not None
        stored = cursor.to_json()  # the crash happens here; only the stored text survives
        second_run, _, dupes_2 = await read_until_caught_up(consumer(http, env), JournalCursor.from_json(stored))
        expected = published_event_ids(env)  # after reading: delayed events are published by later reads
    yielded = [event.source_event_id for event in first_run + second_run]
    assert len(yielded) == len(set(yielded))
    assert set(yielded) == set(expected)
    assert len(expected) > 60  # one send per profile, plus opens, clicks and bounces
    if faults.duplicate_rate:
        assert dupes_1 + dupes_2 > 0
    else:
        assert yielded == expected  # without faults, publication order
    env.hub.close()


@pytest.mark.anyio
async def test_events_are_mapped_to_email_events_with_delivery_and_profile() -> None:
    env = make_emulator(seed_profiles=50)
    async with in_process_http(env.app) as http:
        await deliver(http, env, profiles=40)
        events, _, _ = await read_until_caught_up(consumer(http, env, limit=500), None)
    kinds = {event.event_type for event in events}
    assert EventType.SEND in kinds
    assert EventType.OPEN in kinds
    for event in events:
        assert event.delivery_id == "DM7"
        assert event.campaign_id == "2019LoyaltyCamp"
        assert event.broadlog_id
        assert event.source_position.startswith("emu:")
    clicks = [event for event in events if event.event_type is EventType.CLICK]
    assert clicks
    assert all(event.url and event.url.startswith("http") for event in clicks if event.url_type == "Email click")
    bounces = [event for event in events if event.event_type is EventType.BOUNCE]
    assert {event.bounce_type for event in bounces} <= {"hard", "soft"}, [event.raw for event in bounces][:1]
    env.hub.close()


@pytest.mark.anyio
async def test_caught_up_journal_answers_204_with_retry_after_and_the_cursor_stays_put() -> None:
    env = make_emulator(seed_profiles=20)
    async with in_process_http(env.app) as http:
        await deliver(http, env, profiles=10)
        journal = consumer(http, env, limit=1000)
        _, cursor, _ = await read_until_caught_up(journal, None)
        assert cursor is not None
        empty = await journal.read_batch(cursor)
        assert empty.caught_up
        assert empty.retry_after == 10
        assert empty.events == []
        assert empty.lag is not None
        assert empty.lag.behind == timedelta(0)
        await deliver(http, env, profiles=10, seed=8)  # new events after the stored position are found
        later, _, _ = await read_until_caught_up(journal, empty.cursor)
        assert later
        assert {event.delivery_id for event in later} == {"DM8"}
    env.hub.close()


@pytest.mark.anyio
async def test_expired_position_raises_a_gap_the_engine_can_catch() -> None:
    env = make_emulator(seed_profiles=20)
    async with in_process_http(env.app) as http:
        await deliver(http, env, profiles=10)
        journal = consumer(http, env, limit=5)
        first = await journal.read_batch(None)
        env.hub.expire_journal()  # the retention ran out while the consumer was away
        with pytest.raises(JournalGap) as caught:
            await journal.read_batch(first.cursor)
        assert "since=" in caught.value.position_url
        assert "410" in str(caught.value)
    env.hub.close()


@pytest.mark.anyio
async def test_first_start_latest_skips_history_and_seek_goes_back_a_duration() -> None:
    env = make_emulator(seed_profiles=20)
    async with in_process_http(env.app) as http:
        await deliver(http, env, profiles=10)
        latest = await consumer(http, env, start="latest").read_batch(None)
        assert latest.caught_up
        assert latest.events == []
        await deliver(http, env, profiles=10, seed=8)  # published four days after the first delivery
        recent = consumer(http, env, start=timedelta(hours=1), limit=1000)
        assert "seek=-PT1H" in recent.first_cursor().next_url
        events, _, _ = await read_until_caught_up(recent, None)
        assert events
        assert {event.delivery_id for event in events} == {"DM8"}  # DM7 was published four days earlier
    env.hub.close()


@pytest.mark.anyio
async def test_lag_is_reported_against_the_seven_day_retention() -> None:
    env = make_emulator(seed_profiles=20)
    async with in_process_http(env.app) as http:
        await deliver(http, env, profiles=10)
        batch = await consumer(http, env, limit=3).read_batch(None)
    assert batch.lag is not None
    assert batch.lag.behind > timedelta(days=3)  # the first sends are four days old
    assert batch.lag.alarming
    assert batch.lag.remaining < timedelta(days=4)
    env.hub.close()


def mock_journal(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE)


@pytest.mark.anyio
async def test_refused_token_is_renewed_once_then_the_consumer_stops() -> None:
    from crmbridge.exceptions import AuthenticationError

    calls = {"ims": 0, "journal": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            calls["ims"] += 1
            return httpx.Response(200, json={"access_token": f"t{calls['ims']}", "expires_in": 86399})
        calls["journal"] += 1
        return httpx.Response(401, json={"error_code": "401013", "message": "Oauth token is not valid"})

    async with mock_journal(handler) as http:
        journal = JournalConsumer(
            http,
            ImsTokenProvider(http, credentials()),
            journal_url=BASE + JOURNAL_PATH,
            ims_org_id=IMS_ORG,
            mapping=EMULATOR_MAPPING,
            retry=fast_retry("io-events"),
        )
        with pytest.raises(AuthenticationError):
            await journal.read_batch(None)
    assert calls == {"ims": 2, "journal": 2}


@pytest.mark.anyio
async def test_unknown_event_types_are_reported_with_their_position_not_dropped() -> None:
    body = {
        "events": [
            {
                "position": "p:1",
                "event": {"type": "com.example.unknown", "data": {"timestamp": "2026-03-01T10:00:00Z"}},
            },
            {"position": "p:2", "event": {"type": "x.email.open", "eventid": "e2", "data": {"timestamp": "nope"}}},
        ],
        "_page": {"last": "p:2", "count": 2},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 86399})
        return httpx.Response(200, json=body, headers={"Link": f'<{JOURNAL_PATH}?since=p:2>; rel="next"'})

    async with mock_journal(handler) as http:
        journal = JournalConsumer(
            http,
            ImsTokenProvider(http, credentials()),
            journal_url=BASE + JOURNAL_PATH,
            ims_org_id=IMS_ORG,
            mapping=EMULATOR_MAPPING,
            retry=fast_retry("io-events"),
        )
        batch = await journal.read_batch(None)
    assert [(r.position, r.reason.split(" ")[0]) for r in batch.rejected] == [("p:1", "unknown"), ("p:2", "no")]
    assert batch.cursor.next_url == BASE + JOURNAL_PATH + "?since=p:2"


@pytest.mark.anyio
async def test_following_the_journal_waits_the_retry_after_of_each_empty_answer() -> None:
    env = make_emulator(seed_profiles=20)
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            await deliver(http, env, profiles=5, seed=9)  # events arrive while the consumer waits

    async with in_process_http(env.app) as http:
        journal = consumer(http, env, limit=1000)
        shapes = []
        async for batch in journal.batches(None, follow=True, sleep=record_wait):
            shapes.append("empty" if batch.caught_up else "events")
            if len(waits) == 2:
                break
    assert waits == [10.0, 10.0]
    assert shapes[0] == "empty"
    assert "events" in shapes
    env.hub.close()


@pytest.mark.anyio
async def test_consumer_restarted_every_round_while_events_trickle_in_with_all_faults_yields_each_once() -> None:
    faults = JournalFaults(duplicate_rate=0.2, reorder_rate=0.3, delay_rate=0.2, seed=13)
    env = make_emulator(seed_profiles=120, journal_faults=faults)
    spec = DeliverySpec("Camp", "Camp", "DM5", "Delivery", env.settings.clock.now(), seed=5)
    env.hub.simulate_delivery(spec, env.context.storage.delivery_targets(count=80, seed=5))
    yielded: list[str] = []
    stored: str | None = None
    async with in_process_http(env.app) as http:
        for _ in range(16):  # publication rounds 8 hours apart; the last ones flush delayed events
            env.settings.clock.advance(8 * 3600)
            env.hub.release_due()
            cursor = JournalCursor.from_json(stored) if stored else None
            events, last, _ = await read_until_caught_up(consumer(http, env, limit=11), cursor)  # a fresh process
            yielded += [event.source_event_id for event in events]
            assert last is not None
            stored = last.to_json()
    expected = published_event_ids(env)
    assert env.hub.store.pending_count() == 0
    assert len(yielded) == len(set(yielded))
    assert set(yielded) == set(expected)
    env.hub.close()


@pytest.mark.anyio
async def test_several_links_in_one_header_and_relative_targets_are_resolved() -> None:
    links = (
        f'<{JOURNAL_PATH}/validate?since=p:9>; rel="validate", '
        f'</events-fast/organizations/1/integrations/2/3?since=p:9&limit=5>; rel="next"'
    )
    body = {"events": [], "_page": {"last": "p:9", "count": 0}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 86399})
        return httpx.Response(200, json=body, headers={"Link": links})

    async with mock_journal(handler) as http:
        journal = JournalConsumer(
            http,
            ImsTokenProvider(http, credentials()),
            journal_url=BASE + JOURNAL_PATH,
            ims_org_id=IMS_ORG,
            mapping=EMULATOR_MAPPING,
            retry=fast_retry("io-events"),
        )
        batch = await journal.read_batch(None)
    assert batch.cursor.next_url == BASE + "/events-fast/organizations/1/integrations/2/3?since=p:9&limit=5"
