"""Wire codecs: query encoding of the characters ACS breaks on, datetimes, resource paths, list envelopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmbridge.campaign.wire import build_query, format_acs_datetime, list_page, parse_acs_datetime, resource_path
from crmbridge.exceptions import ProtocolError


def test_plus_at_and_quotes_are_percent_encoded_in_query_values() -> None:
    query = build_query({"email": "o'brien+news@example.com", "name": 'say "hi"', "externalId_parameter": "a b"})
    assert query == "email=o%27brien%2Bnews%40example.com&name=say%20%22hi%22&externalId_parameter=a%20b"


def test_order_desc_is_sent_with_an_encoded_space_and_booleans_lowercase() -> None:
    assert build_query([("_order", "lastModified desc"), ("_forcePagination", True)]) == (
        "_order=lastModified%20desc&_forcePagination=true"
    )


def test_acs_datetimes_round_trip_with_milliseconds_in_utc() -> None:
    moment = datetime(2019, 9, 25, 23, 20, 35, 123000, tzinfo=UTC)
    assert format_acs_datetime(moment) == "2019-09-25 23:20:35.123Z"
    assert parse_acs_datetime("2019-09-25 23:20:35.123Z") == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-09-25 23:20:35.000Z", datetime(2019, 9, 25, 23, 20, 35, tzinfo=UTC)),
        ("2019-09-25T23:20:35Z", datetime(2019, 9, 25, 23, 20, 35, tzinfo=UTC)),
        ("2019-09-25 23:20:35", datetime(2019, 9, 25, 23, 20, 35, tzinfo=UTC)),
        ("2019-09-26T01:20:35+02:00", datetime(2019, 9, 25, 23, 20, 35, tzinfo=UTC)),
        ("", None),
    ],
)
def test_acs_datetimes_are_parsed_defensively(text: str, expected: datetime | None) -> None:
    assert parse_acs_datetime(text) == expected


def test_naive_datetimes_are_refused_when_writing() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_acs_datetime(datetime(2020, 1, 1))
    assert format_acs_datetime(datetime(2020, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "2020-01-01 00:00:00.000Z"
    )


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("profile", "profileAndServicesExt/profile"),
        ("cusVehicle", "profileAndServicesExt/cusVehicle"),
        ("customResources/cusShop", "customResources/cusShop"),
        ("profileAndServices/profile", "profileAndServices/profile"),
    ],
)
def test_resource_names_resolve_to_their_api(resource: str, expected: str) -> None:
    assert resource_path(resource) == expected


def test_unknown_api_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Campaign resource"):
        resource_path("workflow/execution")


def test_list_page_reads_content_and_next_and_treats_a_missing_next_as_the_end() -> None:
    rows, href = list_page({"content": [{"PKey": "@a"}], "next": {"href": "https://x/p?_lineStart=@b"}}, "u")
    assert rows == [{"PKey": "@a"}]
    assert href == "https://x/p?_lineStart=@b"
    assert list_page({"content": [], "serverSidePagination": True}, "u") == ([], None)
    with pytest.raises(ProtocolError):
        list_page({"PKey": "@a"}, "u")


@given(st.dictionaries(st.text(alphabet="abcXYZ_", min_size=1, max_size=8), st.text(max_size=30), max_size=5))
def test_any_query_value_survives_encoding_unchanged(params: dict[str, str]) -> None:
    query = build_query(params)
    assert "+" not in query
    assert "@" not in query
    assert "'" not in query
    assert dict(parse_qsl(query, keep_blank_values=True)) == params
