"""Simulated deliveries (/_emulator/deliveries): counts follow the configured rates, events carry what §B and §D
say a consumer needs (campaign and delivery ids, URLs, bounce type and reason of §C.2), and a seed replays."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from acs_events_app import HEADERS, JOURNAL_PATH, simulate

from crmbridge.emulators.campaign.events import ManualClock

pytestmark = pytest.mark.anyio

# 200 messages; worked out by hand from the rates below (round(share * population) at each step)
RATES = {
    "bounce_rate": 0.1,  # 20 bounces
    "hard_bounce_share": 0.5,  # 10 hard, 10 soft
    "async_bounce_share": 0.3,  # 6 bounce after a send, 14 never sent
    "open_rate": 0.2,  # of 180 delivered: 36 opened
    "repeat_open_rate": 0.25,  # 9 opened twice: 45 opens
    "click_rate": 0.25,  # 9 of the 36 openers click
    "mirror_page_share": 0.1,  # 1 mirror-page click
    "opt_out_share": 0.1,  # 1 opt-out click, 7 email clicks
}
# §C.2, email reasons and their failure types
REASON_TYPES = {
    "User unknown": {"Hard"},
    "Quarantined address": {"Hard"},
    "Address empty": {"Hard"},
    "Address on denylist": {"Hard"},
    "Unreachable": {"Soft", "Hard"},
    "Refused": {"Soft", "Hard"},
    "Account disabled": {"Soft", "Hard"},
    "Mailbox full": {"Soft"},
    "Invalid domain": {"Soft"},
    "Not defined": {"Soft"},
}


async def journal_data(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    url = f"{JOURNAL_PATH}?limit=500"
    while (response := await http.get(url, headers=HEADERS)).status_code == 200:
        data.extend(entry["event"]["data"] for entry in response.json()["events"])
        (url,) = [link.split(">")[0][1:] for link in response.headers.get_list("link") if 'rel="next"' in link]
    return data


async def test_counts_follow_the_configured_rates(http: httpx.AsyncClient, clock: ManualClock) -> None:
    report = await simulate(http, target={"count": 200}, rates=RATES, seed=5)
    assert report["messages"] == 200
    assert report["counts"] == {"send": 186, "open": 45, "click": 9, "bounce": 20}
    assert report["bouncesByType"] == {"Hard": 10, "Soft": 10}
    assert report["clicksByUrlType"] == {"Email click": 7, "Mirror page": 1, "Opt-out": 1}
    clock.advance(timedelta(days=6))  # every reaction has happened, nothing expired yet
    published = Counter(event["eventType"] for event in await journal_data(http))
    assert published == {"send": 186, "open": 45, "click": 9, "bounce": 20}


async def test_every_event_carries_delivery_campaign_and_profile(http: httpx.AsyncClient, clock: ManualClock) -> None:
    await simulate(http, target={"count": 100}, rates=RATES)
    clock.advance(timedelta(days=6))  # every reaction has happened, nothing expired yet
    events = await journal_data(http)
    assert events
    for event in events:
        assert (event["campaignID"], event["campaignLabel"]) == ("2019LoyaltyCamp", "Loyalty 2019")
        assert (event["deliveryID"], event["deliveryLabel"]) == ("DM190", "March newsletter")
        assert event["broadlogID"]
        assert event["profile"]["PKey"].startswith("@pk")
        assert "@" in event["profile"]["email"]
        assert event["mirrorPageUrl"].startswith("https://")
    assert any(event["profile"]["externalId"] is None for event in events)  # profiles without externalId exist


async def test_clicks_carry_urls_and_link_types(http: httpx.AsyncClient, clock: ManualClock) -> None:
    links = [{"label": "Spring sale", "url": "https://shop.example.com/sale?c=1&d=2"}]
    await simulate(http, target={"count": 200}, rates=RATES, links=links)
    clock.advance(timedelta(days=6))  # every reaction has happened, nothing expired yet
    clicks = [event for event in await journal_data(http) if event["eventType"] == "click"]
    assert len(clicks) == 9
    for click in clicks:
        assert click["trackinglogID"]
        if click["urlType"] == "Email click":
            assert (click["url"], click["urlLabel"]) == ("https://shop.example.com/sale?c=1&d=2", "Spring sale")
        elif click["urlType"] == "Mirror page":
            assert click["url"] == click["mirrorPageUrl"]
        else:
            assert click["urlType"] == "Opt-out"
            assert "unsubscribe" in click["url"]


async def test_bounces_have_documented_reasons_and_the_hard_soft_split(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await simulate(http, target={"count": 400}, rates={**RATES, "bounce_rate": 0.25})
    clock.advance(timedelta(days=6))  # every reaction has happened, nothing expired yet
    bounces = [event for event in await journal_data(http) if event["eventType"] == "bounce"]
    assert Counter(bounce["bounceType"] for bounce in bounces) == {"Hard": 50, "Soft": 50}
    for bounce in bounces:
        assert bounce["bounceType"] in REASON_TYPES[bounce["bounceReason"]]


async def test_reactions_follow_their_send_and_async_bounces_come_within_a_week(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await simulate(http, target={"count": 200}, rates=RATES)
    clock.advance(timedelta(days=6))  # every reaction has happened, nothing expired yet
    by_message: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    for event in await journal_data(http):
        when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        by_message[event["broadlogID"]][event["eventType"]].append(when)
    assert len(by_message) == 200
    for kinds in by_message.values():
        sent = kinds.get("send", [])
        assert len(sent) <= 1
        for reaction in kinds.get("open", []) + kinds.get("click", []):
            assert sent
            assert reaction >= sent[0]
        if "bounce" in kinds:
            assert not kinds.get("open")
            if sent:
                assert sent[0] <= kinds["bounce"][0] <= sent[0] + timedelta(days=7)
    assert sum(1 for kinds in by_message.values() if "bounce" in kinds and "send" in kinds) == 6


async def test_a_seed_replays_the_same_delivery_and_another_seed_does_not(http: httpx.AsyncClient) -> None:
    reports = [await simulate(http, target={"count": 50}, rates=RATES, seed=seed) for seed in (1, 1, 2)]
    deliveries = (await http.get("/_emulator/deliveries")).json()["deliveries"]
    assert deliveries == reports
    assert reports[0] == reports[1]
    assert reports[0]["firstEventAt"] == reports[2]["firstEventAt"]  # the same start
    assert reports[0]["lastEventAt"] != reports[2]["lastEventAt"]  # other picks and delays


async def test_a_delivery_can_target_named_profiles(http: httpx.AsyncClient, clock: ManualClock) -> None:
    no_reactions = {"bounce_rate": 0, "open_rate": 0}
    report = await simulate(http, target={"pkeys": ["@pk0003", "@pk0010"]}, rates=no_reactions)
    assert report["messages"] == 2
    clock.advance(timedelta(hours=1))
    assert sorted(e["profile"]["PKey"] for e in await journal_data(http)) == ["@pk0003", "@pk0010"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": {"pkeys": ["@nobody"]}}, "@nobody"),
        ({"target": {}}, "exactly one of"),
        ({"target": {"count": -1}}, "non-negative"),
        ({"rates": {"open_rate": 1.5}}, "open_rate"),
        ({"rates": {"opens": 0.2}}, "opens"),
        ({"campaign": {"label": "no id"}}, "id"),
    ],
)
async def test_bad_delivery_requests_get_400_saying_what_is_wrong(
    http: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    body = {"campaign": {"id": "C1"}, "delivery": {"id": "D1"}, "target": {"count": 3}, **change}
    response = await http.post("/_emulator/deliveries", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_deliveries_simulated_with_the_same_seed_never_share_an_event_id(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    for delivery in ("DM1", "DM2"):
        await simulate(http, target={"count": 40}, rates=RATES, seed=3, delivery={"id": delivery})
    clock.advance(timedelta(days=6))
    ids: list[str] = []
    url = JOURNAL_PATH
    while (response := await http.get(url, headers=HEADERS)).status_code == 200:
        ids.extend(entry["event"]["eventid"] for entry in response.json()["events"])
        (url,) = [link.split(">")[0][1:] for link in response.headers.get_list("link") if 'rel="next"' in link]
    assert len(ids) == len(set(ids)) > 80
