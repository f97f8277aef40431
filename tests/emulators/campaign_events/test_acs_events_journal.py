"""Journaling API behaviour (shared/protocols/adobe-io-events-and-exports.md §A), driven by plain HTTP requests.

Requests are written from the documentation: the journal URL of §A.2, the headers of §A.3, the query parameters
of §A.4, and the consumer loop of §A.10 (follow ``Link: rel="next"``, stop on 204).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from acs_events_app import HEADERS, JOURNAL_PATH, client_for, simulate

from crmbridge.emulators.campaign.events import EventsHub, ExportSettings, ManualClock

pytestmark = pytest.mark.anyio
LINK = re.compile(r'<([^>]*)>;\s*rel="([^"]+)"')


def links(response: httpx.Response) -> dict[str, str]:
    """Every Link header, one relation each (§A.6: parse all of them)."""
    found: dict[str, str] = {}
    for value in response.headers.get_list("link"):
        for target, rel in LINK.findall(value):
            found[rel] = target
    return found


async def consume(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, object]], str]:
    """Follow next links until the journal answers 204; returns the events and the URL to poll next."""
    events: list[dict[str, object]] = []
    while True:
        response = await client.get(url, headers=HEADERS)
        if response.status_code == 204:
            return events, links(response)["next"]
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["_page"]["count"] == len(body["events"])
        assert body["_page"]["last"] == body["events"][-1]["position"]
        events.extend(body["events"])
        url = links(response)["next"]


def event_ids(entries: list[dict[str, object]]) -> list[str]:
    return [entry["event"]["eventid"] for entry in entries]  # type: ignore[index]


async def test_reading_from_the_oldest_event_pages_through_everything_once_in_order(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.4 (no parameters: the oldest event), §A.5, §A.6 (follow next)."""
    report = await simulate(http, target={"count": 120})
    clock.advance(timedelta(days=4))
    events, _ = await consume(http, f"{JOURNAL_PATH}?limit=17")
    total = sum(report["counts"].values())  # type: ignore[attr-defined]
    assert len(events) == total > 120
    ids = event_ids(events)
    assert len(set(ids)) == len(ids)  # faults off: each event exactly once
    times = [entry["event"]["time"] for entry in events]  # type: ignore[index]
    assert times == sorted(times)  # published in occurrence order
    positions = [entry["position"] for entry in events]
    assert len(set(positions)) == len(positions)


async def test_since_is_exclusive_and_any_position_delivers_every_later_event(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.4: since is exclusive."""
    await simulate(http, target={"count": 60})
    clock.advance(timedelta(days=4))
    everything, _ = await consume(http, JOURNAL_PATH)
    for index in (0, 1, 29, len(everything) - 2):
        position = everything[index]["position"]
        rest, _ = await consume(http, f"{JOURNAL_PATH}?since={position}&limit=9")
        assert event_ids(rest) == event_ids(everything[index + 1 :])


async def test_consumer_resumes_after_emulator_restart_without_gaps(clock: ManualClock, tmp_path: Path) -> None:
    """§A.10 step 1: a persisted next URL resumes the read."""
    first_hub = EventsHub(tmp_path / "journal.db", clock=clock)
    async with client_for(first_hub) as client:
        await simulate(client, target={"count": 80})
        clock.advance(timedelta(days=4))
        response = await client.get(f"{JOURNAL_PATH}?limit=25", headers=HEADERS)
        first_page = response.json()["events"]
        stored_cursor = links(response)["next"]
    first_hub.close()

    second_hub = EventsHub(tmp_path / "journal.db", clock=clock)
    async with client_for(second_hub) as client:
        rest, _ = await consume(client, stored_cursor)
        everything, _ = await consume(client, JOURNAL_PATH)
    second_hub.close()
    assert event_ids(first_page) + event_ids(rest) == event_ids(everything)


async def test_end_of_journal_answers_204_with_retry_after_and_next_link_equal_to_the_request(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.6, §A.7: 204, retry-after, next = the request."""
    await simulate(http, target={"count": 10})
    clock.advance(timedelta(days=4))
    events, next_url = await consume(http, f"{JOURNAL_PATH}?limit=5")
    response = await http.get(next_url, headers=HEADERS)
    assert response.status_code == 204
    assert response.headers["retry-after"] == "10"
    assert links(response)["next"] == next_url
    assert links(response)["validate"].startswith(JOURNAL_PATH + "/validate?since=")
    assert response.content == b""
    assert f"since={events[-1]['position']}" in next_url
    assert "limit=5" in next_url


async def test_empty_journal_read_without_parameters_answers_204(http: httpx.AsyncClient) -> None:
    """§A.7: an empty journal called without parameters answers 204."""
    response = await http.get(JOURNAL_PATH, headers=HEADERS)
    assert response.status_code == 204
    assert links(response)["next"] == JOURNAL_PATH
    assert response.headers["retry-after"] == "10"


async def test_new_events_appear_at_the_next_link_after_a_204(http: httpx.AsyncClient, clock: ManualClock) -> None:
    """§A.10 step 4: after a 204, poll the same next link."""
    await simulate(http, target={"count": 5}, rates={"open_rate": 0, "bounce_rate": 0})
    clock.advance(timedelta(hours=1))
    first, next_url = await consume(http, JOURNAL_PATH)
    await simulate(http, target={"count": 5}, rates={"open_rate": 0, "bounce_rate": 0}, delivery={"id": "DM191"})
    clock.advance(timedelta(hours=1))
    second, _ = await consume(http, next_url)
    assert len(first) == 5
    assert len(second) == 5
    assert {entry["event"]["data"]["deliveryID"] for entry in second} == {"DM191"}  # type: ignore[index]


async def test_latest_skips_existing_events_and_its_next_link_brings_only_newer_ones(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.4: latest=true jumps to the end; then follow next."""
    await simulate(http, target={"count": 20}, rates={"bounce_rate": 0})
    clock.advance(timedelta(days=4))
    response = await http.get(f"{JOURNAL_PATH}?latest=true", headers=HEADERS)
    assert response.status_code == 204
    next_url = links(response)["next"]
    assert "latest" not in next_url
    assert "since=" in next_url
    await simulate(http, target={"count": 3}, rates={"open_rate": 0, "bounce_rate": 0}, delivery={"id": "DM200"})
    clock.advance(timedelta(hours=1))
    newer, _ = await consume(http, next_url)
    assert [entry["event"]["data"]["deliveryID"] for entry in newer] == ["DM200"] * 3  # type: ignore[index]


async def test_seek_starts_at_events_published_within_the_duration(http: httpx.AsyncClient, clock: ManualClock) -> None:
    """§A.4: seek=<negative ISO 8601 duration>."""
    quiet = {"open_rate": 0, "bounce_rate": 0}
    await simulate(http, target={"count": 4}, rates=quiet, delivery={"id": "OLD"})
    clock.advance(timedelta(hours=1))
    await http.post("/_emulator/journal/release")  # all OLD sends are published by now
    clock.advance(timedelta(hours=3))
    await simulate(http, target={"count": 6}, rates={**quiet, "send_window_s": 0}, delivery={"id": "NEW"})
    recent, _ = await consume(http, f"{JOURNAL_PATH}?seek=-PT2H")
    day, _ = await consume(http, f"{JOURNAL_PATH}?seek=-P1D&limit=3")
    delivery_of = lambda entries: [e["event"]["data"]["deliveryID"] for e in entries]  # type: ignore[index]  # noqa: E731
    assert delivery_of(recent) == ["NEW"] * 6
    assert delivery_of(day) == ["OLD"] * 4 + ["NEW"] * 6


async def test_seek_past_the_end_answers_204_with_a_since_next_link(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.4, §A.7: seek beyond the newest event."""
    await simulate(http, target={"count": 4}, rates={"open_rate": 0, "bounce_rate": 0})
    clock.advance(timedelta(hours=1))
    await http.post("/_emulator/journal/release")
    clock.advance(timedelta(hours=5))
    response = await http.get(f"{JOURNAL_PATH}?seek=-PT1H", headers=HEADERS)
    assert response.status_code == 204
    assert "since=" in links(response)["next"]


async def test_positions_older_than_the_seven_day_retention_get_410(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.7, §A.8: 7-day retention, 410 with a plain-text body."""
    await simulate(http, target={"count": 10}, rates={"open_rate": 0, "bounce_rate": 0})
    clock.advance(timedelta(hours=1))
    old, _ = await consume(http, JOURNAL_PATH)
    clock.advance(timedelta(days=6, hours=22))
    still_there = await http.get(f"{JOURNAL_PATH}?since={old[0]['position']}", headers=HEADERS)
    assert still_there.status_code == 200
    clock.advance(timedelta(hours=2))
    response = await http.get(f"{JOURNAL_PATH}?since={old[0]['position']}", headers=HEADERS)
    assert response.status_code == 410
    assert response.text == f"Events at position {old[0]['position']} have expired."
    clock.advance(timedelta(hours=1))
    assert (await http.get(JOURNAL_PATH, headers=HEADERS)).status_code == 204  # everything has expired


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("since=emu:x:1&seek=-PT1H", "seek cannot be combined with since"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("since=moose:e7ba778b:2159b72c", "position"),
        ("seek=PT1H", "negative"),
        ("seek=yesterday", "duration"),
        ("latest=maybe", "latest"),
    ],
)
async def test_malformed_parameters_get_400(http: httpx.AsyncClient, query: str, why: str) -> None:
    """§A.4 rules; §A.7: 400 is inferred for bad parameters."""
    response = await http.get(f"{JOURNAL_PATH}?{query}", headers=HEADERS)
    assert response.status_code == 400
    assert why in response.text


async def test_position_of_another_journal_gets_400(http: httpx.AsyncClient, clock: ManualClock) -> None:
    """§A.4: positions are opaque; a foreign one is refused (inferred 400)."""
    await simulate(http, target={"count": 2})
    clock.advance(timedelta(days=4))
    events, _ = await consume(http, JOURNAL_PATH)
    foreign = str(events[0]["position"]).replace(":", ":0", 1)
    assert (await http.get(f"{JOURNAL_PATH}?since={foreign}", headers=HEADERS)).status_code == 400


async def test_a_page_carries_next_and_the_other_documented_link_relations(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.6: the Link relations; §A.2: the validate sibling."""
    await simulate(http, target={"count": 3})
    clock.advance(timedelta(days=4))
    response = await http.get(f"{JOURNAL_PATH}?limit=2", headers=HEADERS)
    relations = links(response)
    assert set(relations) == {"events", "next", "latest", "page", "seek", "validate"}
    assert relations["events"] == JOURNAL_PATH
    assert relations["next"] == f"{JOURNAL_PATH}?since={response.json()['_page']['last']}&limit=2"
    assert relations["latest"] == f"{JOURNAL_PATH}?latest=true"
    validated = await http.get(relations["validate"], headers=HEADERS)
    assert validated.status_code in (200, 204)
    assert (await http.get(JOURNAL_PATH + "/validate", headers=HEADERS)).status_code == 400


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"x-api-key": "emu-client", "x-ims-org-id": "4CC7D9704674CFB2138A2C54@AdobeOrg"}, 403, "403010"),
        ({**HEADERS, "Authorization": "Bearer expired"}, 401, "401013"),
        ({"Authorization": "Bearer good-token", "x-ims-org-id": "4CC7D9704674CFB2138A2C54@AdobeOrg"}, 403, "403000"),
        ({**HEADERS, "x-api-key": "someone-else"}, 403, "403003"),
        ({**HEADERS, "x-api-key": "clé-à-moi".encode()}, 403, "403003"),  # non-ASCII bytes on the wire
        ({**HEADERS, "x-ims-org-id": "OTHER@AdobeOrg"}, 403, None),
    ],
)
async def test_journal_refuses_callers_without_valid_credentials(
    http: httpx.AsyncClient, headers: dict[str, str | bytes], status: int, code: str | None
) -> None:
    """§A.3 headers; gateway codes of campaign-standard-api.md §1.5."""
    response = await http.get(JOURNAL_PATH, headers=headers)
    assert response.status_code == status
    if code:
        assert response.json()["error_code"] == code


async def test_another_registrations_journal_url_answers_404(http: httpx.AsyncClient) -> None:
    """§A.7: 404 for a wrong journal URL (inferred)."""
    response = await http.get(JOURNAL_PATH.replace("54108", "99999"), headers=HEADERS)
    assert response.status_code == 404


async def test_duplicate_and_reorder_faults_repeat_and_shuffle_but_lose_nothing(
    http: httpx.AsyncClient, hub: EventsHub, clock: ManualClock
) -> None:
    """§A.8: at least once, duplicates, no ordering guarantee."""
    faults = {"duplicate_rate": 0.2, "reorder_rate": 0.3, "seed": 11}
    assert (await http.put("/_emulator/journal/faults", json=faults)).status_code == 200
    report = await simulate(http, target={"count": 150})
    clock.advance(timedelta(days=4))
    events, _ = await consume(http, f"{JOURNAL_PATH}?limit=40")
    ids = event_ids(events)
    assert len(set(ids)) == sum(report["counts"].values())  # type: ignore[attr-defined]
    assert len(ids) > len(set(ids))  # some were published twice
    times = [entry["event"]["time"] for entry in events]  # type: ignore[index]
    assert times != sorted(times)  # some came out of order
    positions = [entry["position"] for entry in events]
    assert len(set(positions)) == len(positions)  # duplicates still get their own positions


async def test_faults_replay_identically_for_the_same_seed(clock: ManualClock, tmp_path: Path) -> None:
    """§A.8 faults are seeded, so a failing run replays."""
    orders: list[list[tuple[str, str, str | None]]] = []
    for name in ("a", "b"):
        hub = EventsHub(tmp_path / f"{name}.db", clock=ManualClock(clock()), exports=ExportSettings())
        async with client_for(hub) as client:
            await client.put("/_emulator/journal/faults", json={"duplicate_rate": 0.1, "reorder_rate": 0.2, "seed": 3})
            await simulate(client, target={"count": 50})
            hub.clock.advance(timedelta(days=4))  # type: ignore[attr-defined]
            events, _ = await consume(client, JOURNAL_PATH)
            # event ids differ between emulator instances, so compare what each event is about
            data = [entry["event"]["data"] for entry in events]  # type: ignore[index]
            orders.append([(d["broadlogID"], d["eventType"], d.get("trackinglogID")) for d in data])
        hub.close()
    assert orders[0] == orders[1]


async def test_events_are_cloudevents_with_adobe_ids(http: httpx.AsyncClient, clock: ManualClock) -> None:
    """§A.9: CloudEvents 1.0 envelope with eventid / recipientclientid."""
    await simulate(http, target={"count": 30})
    clock.advance(timedelta(days=4))
    events, _ = await consume(http, JOURNAL_PATH)
    for entry in events:
        event = entry["event"]
        assert event["specversion"] == "1.0"  # type: ignore[index]
        assert event["eventid"] == event["event_id"] == event["id"]  # type: ignore[index]
        assert event["recipientclientid"] == event["recipient_client_id"] == "emu-client"  # type: ignore[index]
        assert event["datacontenttype"] == "application/json"  # type: ignore[index]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])  # type: ignore[index,arg-type]


async def test_delay_fault_reorders_events_across_small_publication_rounds(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """§A.8: order is not guaranteed, even when polling often."""
    assert (await http.put("/_emulator/journal/faults", json={"delay_rate": 0.3, "seed": 4})).status_code == 200
    report = await simulate(http, target={"count": 60}, rates={"bounce_rate": 0, "open_rate": 0})
    received: list[dict[str, object]] = []
    url = JOURNAL_PATH
    for _ in range(80):  # a consumer polling every 10 s while the sends trickle out over 600 s
        clock.advance(timedelta(seconds=10))
        batch, url = await consume(http, url)
        received += batch
    assert report["counts"]["send"] == 60  # type: ignore[index]
    ids = event_ids(received)
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 60
    times = [entry["event"]["time"] for entry in received]  # type: ignore[index]
    assert times != sorted(times)
