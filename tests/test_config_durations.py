"""Durations in crmbridge.yaml: short forms and ISO 8601, never a bare number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmbridge.config import parse_duration
from crmbridge.config.types import parse_journal_start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("PT30S", timedelta(seconds=30)),
        ("P2D", timedelta(days=2)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P1W", timedelta(weeks=1)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("pt10m", timedelta(minutes=10)),
    ],
)
def test_durations_parse_into_timedeltas(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", 30, "", "P", "PT", "P1DT", "1y", "-5m", "5 minutes", True, None, "P1M2"])
def test_malformed_durations_are_refused_with_the_accepted_forms(text: object) -> None:
    with pytest.raises(ValueError, match=r"30s, 5m, 2h, 7d"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]))
def test_short_and_iso_forms_agree(amount: int, unit: str) -> None:
    iso = {"s": f"PT{amount}S", "m": f"PT{amount}M", "h": f"PT{amount}H", "d": f"P{amount}D"}[unit]
    assert parse_duration(f"{amount}{unit}") == parse_duration(iso)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("oldest", "oldest"), ("latest", "latest"), ("48h", timedelta(hours=48)), ("-P2D", timedelta(days=2))],
)
def test_journal_start_is_oldest_latest_or_a_duration_back(text: str, expected: object) -> None:
    assert parse_journal_start(text) == expected


def test_journal_start_beyond_the_seven_day_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps events for 7 days"):
        parse_journal_start("8d")
