"""The events flow against an in-memory journal and Dataverse, with a real SQLite state store.

Expected rows are written out literally: subjects, dates, URLs as Adobe's integration shows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crmbridge.config import EventsSettings, parse_config
from crmbridge.engine.events import EventsFlow
from crmbridge.exceptions import TransientError
from crmbridge.records import EmailEvent, EventSourceKind, EventType
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeDynamics, FakeEventFeed

pytestmark = pytest.mark.anyio

CONFIG = """
version: 1
dynamics: {org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}
campaign: {organization: acme, client_id: c, client_secret: s3cr3t-value}
events:
  source:
    journal: {url: "https://events-va6.adobe.io/events/organizations/1/integrations/2/3", ims_org_id: "X@AdobeOrg"}
  rollups: {enabled: true}
  followup_tasks: {on_click: true, on_hard_bounce: true}
"""


def settings(extra: str = "") -> EventsSettings:
    events = parse_config(CONFIG + extra).events
    assert events is not None
    return events


def event(kind: EventType, contact: str | None, broadlog: str, minute: int, **kw: Any) -> EmailEvent:
    return EmailEvent(
        event_type=kind,
        occurred_at=datetime(2026, 3, 1, 9, minute, tzinfo=UTC),
        source_kind=EventSourceKind.IO_EVENTS,
        source_event_id=f"evt-{kind.value}-{broadlog}-{minute}",
        source_position="",
        external_id=contact,
        campaign_id="2019LoyaltyCamp",
        delivery_id="DM190",
        broadlog_id=broadlog,
        **kw,
    )


DELIVERY = [
    event(EventType.SEND, "c1", "b1", 0),
    event(EventType.SEND, "c2", "b2", 0),
    event(EventType.OPEN, "c1", "b1", 5),
    event(EventType.CLICK, "c1", "b1", 6, url="https://example.com/offer"),
    event(EventType.BOUNCE, "c2", "b2", 1, bounce_type="hard", bounce_reason="User unknown"),
    event(EventType.BOUNCE, "c3", "b3", 1, bounce_type="soft", bounce_reason="Mailbox full"),
    event(EventType.OPEN, None, "b4", 7),  # a profile without externalId
    event(EventType.OPEN, "c9", "b9", 8),  # a contact that does not exist in Dynamics
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def run(feed: FakeEventFeed, dynamics: FakeDynamics, store: StateStore, events: EventsSettings | None = None) -> Any:
    flow = EventsFlow(events or settings(), feed, dynamics, store, scope="journal")
    return flow.run_pass()


async def test_delivery_becomes_one_activity_per_enabled_event_on_the_right_contact(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    stats = await run(FakeEventFeed(list(DELIVERY)), dynamics, store)
    rows = sorted(
        (a["@table"], a["cmb_occurredon"], a["regardingobjectid_contact_" + a["@table"][:-1] + "@odata.bind"])
        for a in dynamics.activities.values()
    )
    assert rows == [
        ("cmb_emailbounces", "2026-03-01T09:01:00Z", "/contacts(c2)"),
        ("cmb_emailclicks", "2026-03-01T09:06:00Z", "/contacts(c1)"),
        ("cmb_emailopens", "2026-03-01T09:05:00Z", "/contacts(c1)"),
    ]
    subjects = {a["subject"] for a in dynamics.activities.values()}
    assert subjects == {"Campaign Name: 2019LoyaltyCamp; Delivery Name: DM190"}
    click = next(a for a in dynamics.activities.values() if a["@table"] == "cmb_emailclicks")
    assert click["cmb_trackingurl"] == "https://example.com/offer"
    bounce = next(a for a in dynamics.activities.values() if a["@table"] == "cmb_emailbounces")
    assert bounce["cmb_bouncereason"] == "User unknown"
    assert (stats.written, stats.not_enabled, stats.unmatched) == (3, 3, 2)  # 2 sends + the soft bounce off
    assert stats.by_type == {"open": 1, "click": 1, "bounce": 1}


async def test_duplicated_and_reordered_events_write_each_activity_once(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    noisy = list(reversed(DELIVERY)) + DELIVERY[2:5]
    stats = await run(FakeEventFeed(noisy, batch_size=4), dynamics, store)
    assert len(dynamics.activities) == 3
    assert stats.duplicates == 3


async def test_repeats_the_source_dropped_by_event_id_count_as_duplicates(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    stats = await run(FakeEventFeed(list(DELIVERY), batch_size=4, repeats_per_batch=2), dynamics, store)
    assert stats.duplicates == 4  # two batches of 8 events, each with 2 repeats the journal consumer dropped
    assert len(dynamics.activities) == 3


async def test_replay_from_an_older_position_creates_no_duplicate_and_the_same_rollups(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    feed = FakeEventFeed(list(DELIVERY))
    await run(feed, dynamics, store)
    rollups_once = {k: dict(v) for k, v in dynamics.contact_values.items()}
    tasks_once = dict(dynamics.tasks)
    store.commit(_rewind(store))
    stats = await run(feed, dynamics, store)
    assert stats.written == 0
    assert stats.duplicates == 3
    assert len(dynamics.activities) == 3
    assert dynamics.contact_values == rollups_once
    assert dynamics.tasks == tasks_once


def _rewind(store: StateStore) -> Any:
    from crmbridge.state import Batch

    batch = Batch(Flow.EVENTS, "journal")
    batch.advance_to("0")
    return batch


async def test_rollups_and_followup_tasks_match_adobe_shapes(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    await run(FakeEventFeed(list(DELIVERY)), dynamics, store)
    assert dynamics.contact_values["c1"] == {
        "cmb_lastemailsenton": None,
        "cmb_lastemailopenedon": "2026-03-01T09:05:00Z",
        "cmb_lastemailclickedon": "2026-03-01T09:06:00Z",
        "cmb_lastemailbouncedon": None,
        "cmb_emailhardbounced": False,
        "cmb_emailsentcount": 0,
        "cmb_emailopencount": 1,
        "cmb_emailclickcount": 1,
        "cmb_emailbouncecount": 0,
    }
    assert dynamics.contact_values["c2"]["cmb_emailhardbounced"] is True
    subjects = sorted(t["subject"] for t in dynamics.tasks.values())
    assert subjects == [
        "Follow up on URL click: https://example.com/offer",
        "Reconcile the invalid email address (DM190)",
    ]


async def test_outage_commits_nothing_and_the_rerun_writes_exactly_once(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"}, fail_after=1)
    feed = FakeEventFeed(list(DELIVERY), batch_size=3)
    with pytest.raises(TransientError):
        await run(feed, dynamics, store)
    checkpoint = store.checkpoint(Flow.EVENTS, "journal")
    assert checkpoint is not None
    assert checkpoint.value == "3"  # the first batch was acknowledged; the second was not
    dynamics.fail_after = None
    await run(feed, dynamics, store)
    assert len(dynamics.activities) == 3
    assert len(dynamics.tasks) == 2


async def test_sends_and_soft_bounces_are_written_when_switched_on(store: StateStore) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    events = settings("  types: {send: true, bounce: hard_and_soft}\n")
    stats = await run(FakeEventFeed(list(DELIVERY)), dynamics, store, events)
    assert stats.by_type == {"send": 2, "open": 1, "click": 1, "bounce": 2}


async def test_expired_position_is_reported_as_a_gap_and_reading_goes_on_from_the_oldest_kept(
    store: StateStore,
) -> None:
    dynamics = FakeDynamics({"c1", "c2", "c3"})
    feed = FakeEventFeed(list(DELIVERY), batch_size=2)
    await run(feed, dynamics, store)
    store.commit(_rewind(store))
    feed.events += [event(EventType.OPEN, "c3", "b3", 30)]
    feed.oldest_kept = 4
    stats = await run(feed, dynamics, store)
    assert stats.gaps == 1
    assert len(dynamics.activities) == 4
