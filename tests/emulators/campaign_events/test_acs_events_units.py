"""Pure pieces of the events emulator: seek durations (§A.4), journal disorder faults (§A.8), simulation seeds."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from acs_events_app import PROFILES
from hypothesis import given
from hypothesis import strategies as st

from crmbridge.emulators.campaign.events import DeliverySpec, JournalFaults, Rates
from crmbridge.emulators.campaign.events.hub import disorder
from crmbridge.emulators.campaign.events.journal_query import QueryError, parse_duration, parse_query
from crmbridge.emulators.campaign.events.payload import addressed_to
from crmbridge.emulators.campaign.events.simulation import simulate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-PT2H", timedelta(hours=-2)),
        ("-P1D", timedelta(days=-1)),
        ("-P5DT2H", timedelta(days=-5, hours=-2)),
        ("-PT30M", timedelta(minutes=-30)),
        ("-PT1.5S", timedelta(seconds=-1.5)),
        ("-P1W", timedelta(weeks=-1)),
    ],
)
def test_seek_accepts_the_documented_negative_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["PT2H", "-P", "-PT", "-P0D", "-2H", "-PT2X", ""])
def test_seek_refuses_positive_empty_or_malformed_durations(text: str) -> None:
    with pytest.raises(QueryError):
        parse_duration(text)


def test_latest_cannot_be_combined_with_since() -> None:
    with pytest.raises(QueryError, match="latest"):
        parse_query({"latest": "true", "since": "emu:j:1"}, "j")


@given(
    items=st.lists(st.integers(), max_size=60),
    duplicate_rate=st.floats(0, 1),
    reorder_rate=st.floats(0, 1),
    window=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_disorder_loses_nothing_and_only_repeats_items(
    items: list[int], duplicate_rate: float, reorder_rate: float, window: int, seed: int
) -> None:
    faults = JournalFaults(duplicate_rate=duplicate_rate, reorder_rate=reorder_rate, window=window)
    tagged = list(enumerate(items))  # unique items, so repeats are countable
    published = disorder(tagged, faults, random.Random(seed))
    assert set(published) == set(tagged)
    assert all(published.count(item) <= 2 for item in tagged)
    if duplicate_rate == 0:
        assert len(published) == len(tagged)


@given(items=st.lists(st.integers(), max_size=60), seed=st.integers(0, 2**32))
def test_disorder_without_faults_keeps_publication_order(items: list[int], seed: int) -> None:
    assert disorder(items, JournalFaults(), random.Random(seed)) == items


def test_the_same_seed_simulates_the_same_events() -> None:
    spec = DeliverySpec("C", "C", "D", "D", datetime(2026, 1, 5, tzinfo=UTC), seed=9, rates=Rates(bounce_rate=0.1))
    first = simulate(spec, PROFILES[:80])
    assert first == simulate(spec, PROFILES[:80])
    assert [e.event_id for e in first] != [e.event_id for e in simulate(spec, PROFILES[:80], first_broadlog_id=500)]


def test_share_settings_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="click_rate"):
        Rates(click_rate=2)
    with pytest.raises(ValueError, match="mirror_page_share"):
        Rates(mirror_page_share=0.7, opt_out_share=0.7)


def test_addressing_an_envelope_keeps_it_valid_json_whatever_the_client_id() -> None:
    addressed = json.loads(addressed_to('{"id": "e1", "data": {"x": "}"}}', 'odd "client" \\ id'))
    assert addressed == {
        "id": "e1",
        "data": {"x": "}"},
        "recipientclientid": 'odd "client" \\ id',
        "recipient_client_id": 'odd "client" \\ id',
    }
