"""Fuzzing the Campaign side's parsers: list envelopes, response bodies, error bodies, datetimes, journal events,
export files.

Property: any input gives a result or a typed crmbridge error (``ProtocolError`` for a broken envelope), or for
datetimes the documented ``ValueError`` — never another exception, never a hang.
"""

from __future__ import annotations

import contextlib
import gzip
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crmbridge.campaign.errors import classify_campaign_response, error_details
from crmbridge.campaign.export_rows import ExportLayout, parse_export_datetime, row_to_event
from crmbridge.campaign.exports import ExportFile, ExportReader
from crmbridge.campaign.payload import PayloadMapping, UnmappedEvent, map_event
from crmbridge.campaign.wire import list_page, object_of, parse_acs_datetime, same_value
from crmbridge.config.events import DEFAULT_EVENT_CODES, DEFAULT_PAYLOAD_MAPPING
from crmbridge.exceptions import ProtocolError
from crmbridge.records import EmailEvent

from .fuzzing import DEEP, QUICK, SCALARS, TEXT, json_trees

ENVELOPE_KEYS = st.sampled_from(["content", "next", "href", "count", "value", "PKey", "error", "message", "code"])


@given(body=json_trees(ENVELOPE_KEYS))
@example(body={"next": {"href": True}, "content": []})  # found by this test: a href that is not text
@QUICK
def test_any_list_body_gives_rows_and_next_or_protocol_error(body: Any) -> None:
    try:
        rows, next_href = list_page(body, "https://mc.adobe.io/acme/campaign/profileAndServicesExt/profile")
    except ProtocolError:
        return
    assert isinstance(rows, list)
    assert next_href is None or isinstance(next_href, str)


@given(
    status=st.integers(100, 599),
    body=st.one_of(st.binary(max_size=80), json_trees(ENVELOPE_KEYS).map(repr).map(str.encode)),
)
@QUICK
def test_any_response_body_gives_an_object_or_protocol_error(status: int, body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        assert isinstance(object_of(httpx.Response(status, content=body)), dict)


@example(status=500, body='{"code": "²", "message": "RST-360011 bad"}'.encode())  # regression: a Unicode digit
@given(
    status=st.integers(400, 599),
    body=st.one_of(
        st.binary(max_size=80),
        json_trees(st.sampled_from(["error", "error_code", "code", "message", "error_description"])).map(
            lambda tree: __import__("json").dumps(tree).encode()
        ),
        st.sampled_from([b'"RST-360011 An error has occurred"', b'{"code": "500", "message": "XTK-170006 bad"}']),
    ),
)
@QUICK
def test_any_error_response_is_classified_and_described(status: int, body: bytes) -> None:
    request = httpx.Request("POST", "https://mc.adobe.io/acme/campaign/profileAndServicesExt/profile")
    response = httpx.Response(status, content=body, request=request)
    classify_campaign_response(response)
    assert error_details(response).status == status


@example("0001-01-01 00:00:00+05:00")  # regression: OverflowError converting to UTC
@given(text=TEXT)
@QUICK
def test_any_acs_datetime_parses_or_raises_value_error(text: str) -> None:
    try:
        parsed = parse_acs_datetime(text)
    except ValueError:
        return
    assert parsed is None or parsed.tzinfo is not None


@given(current=json_trees(), wanted=json_trees())
@QUICK
def test_same_value_answers_for_any_pair(current: Any, wanted: Any) -> None:
    assert isinstance(same_value(current, wanted), bool)


# --- journal payload mapping --------------------------------------------------------------------------------

MAPPING = PayloadMapping(dict(DEFAULT_PAYLOAD_MAPPING), dict(DEFAULT_EVENT_CODES))
EVENT_KEYS = st.sampled_from(
    ["type", "time", "eventid", "id", "data", "profile", "externalId", "email", "broadlogID", "url", "bounceType", "x"]
)


@st.composite
def journal_events(draw: st.DrawFn) -> Any:
    tree = draw(json_trees(EVENT_KEYS))
    if draw(st.booleans()) and isinstance(tree, dict):
        tree["type"] = draw(st.one_of(st.sampled_from(sorted(DEFAULT_EVENT_CODES)), TEXT))
        tree["time"] = draw(st.one_of(TEXT, st.datetimes().map(datetime.isoformat)))
    return tree


@example({"type": "com.adobe.campaign.standard.email.open", "time": "0001-01-01T00:00:00+05:00"})
@example({"type": "com.adobe.campaign.standard.email.open", "time": "9999-12-31T23:59:59-05:00"})
@given(event=journal_events())
@QUICK
def test_any_journal_event_maps_to_an_event_or_an_unmapped_report(event: Any) -> None:
    outcome = map_event(event, "pos-1", MAPPING)
    assert isinstance(outcome, EmailEvent | UnmappedEvent)
    if isinstance(outcome, EmailEvent):
        assert outcome.natural_key


# --- export files ---------------------------------------------------------------------------------------------

DELIVERY_HEADER = "broadlog_id;event_date;status;failure_type;failure_reason;profile_external_id;delivery_id"
TRACKING_HEADER = "tracking_log_id;event_date;url_type;url_source;broadlog_id;profile_external_id;delivery_id"
CELLS = st.one_of(
    TEXT,
    st.sampled_from(["Sent", "Failed", "Ignored", "Open", "Email click", "Mirror page", "2025-03-01T09:15:02.000Z"]),
    st.sampled_from(
        ["2025/03/01 09:15:02", "0001-01-01T00:00:00+05:00", "0001/01/01 00:00:00 +0100", "9999-12-31T23:59:59-0500"]
    ),
)


@st.composite
def export_texts(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from([DELIVERY_HEADER, TRACKING_HEADER, "a,b", ""]))
    lines = [header]
    for _ in range(draw(st.integers(0, 6))):
        cells = draw(st.lists(CELLS, min_size=0, max_size=8))
        lines.append(";".join(cells))
    text = "\r\n".join(lines) if draw(st.booleans()) else "\n".join(lines)
    data = (text + "\n").encode()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=6))
    return data


class MemorySource:
    """Export files held in memory: the reader's only I/O seam."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def list_files(self) -> list[ExportFile]:
        return [ExportFile(name, len(data), 0.0) for name, data in self.files.items()]

    async def read(self, name: str) -> bytes:
        return self.files[name]


async def read_all(files: dict[str, bytes]) -> int:
    reader = ExportReader(MemorySource(files), batch_size=3, clock=lambda: 10_000.0)
    seen = 0
    async for batch in reader.batches():
        seen += len(batch.events) + len(batch.malformed) + batch.skipped
        assert all(event.natural_key for event in batch.events)
    return seen


@example(data=DELIVERY_HEADER.encode() + b"\n1;0001-01-01T00:00:00+05:00;Sent;;;c1;d1\n", gz=False)
@given(data=export_texts(), gz=st.booleans())
@QUICK
@pytest.mark.anyio
async def test_any_export_file_gives_events_and_malformed_rows(data: bytes, gz: bool) -> None:
    name = "deliveries_20250301.txt" + (".gz" if gz else "")
    await read_all({name: gzip.compress(data) if gz and data else data})


@given(
    row=st.dictionaries(st.sampled_from([*DELIVERY_HEADER.split(";"), "url_type", "tracking_log_id"]), CELLS),
    layout=st.sampled_from(list(ExportLayout)),
)
@QUICK
def test_any_export_row_gives_exactly_one_outcome(row: dict[str, str], layout: ExportLayout) -> None:
    outcome = row_to_event(layout, row, "f#L2")
    assert [outcome.event, outcome.malformed, outcome.skipped].count(None) == 2


@example("0001-01-01T00:00:00+05:00")
@given(text=st.one_of(CELLS, SCALARS.map(str)))
@QUICK
def test_any_export_datetime_parses_or_is_none(text: str) -> None:
    parsed = parse_export_datetime(text)
    assert parsed is None or parsed.tzinfo is not None


@pytest.mark.slow
@given(data=export_texts(), event=journal_events())
@DEEP
@pytest.mark.anyio
async def test_campaign_parsers_hold_under_a_long_fuzz(data: bytes, event: Any) -> None:
    await read_all({"tracking_1.txt": data})
    map_event(event, "p", MAPPING)
