"""Fuzzing the Dataverse wire codecs: ``$batch`` bodies, error bodies, key segments, paging and delta tokens.

Property: any input gives a result or the codec's documented error (``BatchFormatError`` for ``$batch``, a
``ValueError`` for tokens and keys, ``None`` for a body that is not an error body) — never another exception.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crmbridge.dynamics.errors import RequestKind, api_error_details, classifier_for
from crmbridge.dynamics.odata import (
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    batch_content_type,
    decode_delta_token,
    decode_skiptoken,
    encode_batch_request,
    encode_batch_response,
    parse_batch_request,
    parse_batch_response,
    parse_error_body,
    parse_key,
)

from .fuzzing import DEEP, QUICK, TEXT, json_trees

BOUNDARY = "batch_AAA123"
CONTENT_TYPES = st.one_of(
    st.just(batch_content_type(BOUNDARY)),
    st.just(f"multipart/mixed; boundary={BOUNDARY}"),
    st.sampled_from(
        ["application/json", "multipart/mixed", "multipart/mixed; boundary=", 'multipart/mixed; boundary=""']
    ),
    st.text(max_size=40),
)
HEADER_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
REQUESTS = st.builds(
    BatchRequest,
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    url=st.sampled_from(["/api/data/v9.2/contacts", "contacts(00000000-0000-0000-0000-000000000001)", "$1"]),
    headers=st.lists(st.tuples(st.sampled_from(["Content-Type", "If-Match", "Prefer"]), HEADER_TEXT), max_size=3),
    body=st.binary(max_size=40),
    content_id=st.one_of(st.none(), st.integers(1, 9).map(str)),
)
RESPONSES = st.builds(
    BatchResponse,
    status=st.sampled_from([200, 201, 204, 400, 404, 412, 429, 500]),
    headers=st.lists(st.tuples(st.sampled_from(["Content-Type", "OData-EntityId"]), HEADER_TEXT), max_size=3),
    body=st.binary(max_size=40),
    content_id=st.one_of(st.none(), st.integers(1, 9).map(str)),
)


def _valid_request_body(parts: list[BatchRequest], in_changeset: bool) -> bytes:
    chosen: list[BatchRequest | ChangeSet] = [ChangeSet(parts, "changeset_X")] if in_changeset else list(parts)
    return encode_batch_request(chosen, BOUNDARY)


def _valid_response_body(parts: list[BatchResponse], in_changeset: bool) -> bytes:
    chosen: list[BatchResponse | ChangeSetResponse] = (
        [ChangeSetResponse(parts, "changesetresponse_X")] if in_changeset else list(parts)
    )
    return encode_batch_response(chosen, BOUNDARY)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid body cut, spliced or with random bytes inserted: the shapes a broken proxy or a bug produces."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "delete", "replace"]))
        if action == "cut":
            del data[position:]
        elif action == "insert":
            data[position:position] = draw(
                st.one_of(st.binary(max_size=8), st.sampled_from([b"\r\n", b"--", b"\xff\xfe", "²".encode(), b":"]))
            )
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 12))]
        else:
            data[position : position + 1] = draw(st.binary(min_size=1, max_size=1))
    return bytes(data)


@st.composite
def request_bodies(draw: st.DrawFn) -> bytes:
    valid = _valid_request_body(draw(st.lists(REQUESTS, min_size=1, max_size=3)), draw(st.booleans()))
    return draw(st.one_of(mutated(valid), st.binary(max_size=200)))


@st.composite
def response_bodies(draw: st.DrawFn) -> bytes:
    valid = _valid_response_body(draw(st.lists(RESPONSES, min_size=1, max_size=3)), draw(st.booleans()))
    return draw(st.one_of(mutated(valid), st.binary(max_size=200)))


def parse_request_or_format_error(content_type: str, body: bytes) -> None:
    try:
        parts = parse_batch_request(content_type, body)
    except BatchFormatError:
        return
    assert all(isinstance(part, BatchRequest | ChangeSet) for part in parts)


def parse_response_or_format_error(content_type: str, body: bytes) -> None:
    try:
        parts = parse_batch_response(content_type, body)
    except BatchFormatError:
        return
    for part in parts:
        responses = part.responses if isinstance(part, ChangeSetResponse) else [part]
        assert all(isinstance(r.status, int) for r in responses)


# Regressions: a non-UTF-8 header block and a Unicode digit in the status code escaped as other errors.
@example(batch_content_type(BOUNDARY), b"--batch_AAA123\r\n\xff\r\n\r\nGET x HTTP/1.1\r\n--batch_AAA123--\r\n")
@example(
    batch_content_type(BOUNDARY),
    b"--batch_AAA123\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 \xc2\xb2 OK\r\n\r\n\r\n--batch_AAA123--\r\n",
)
@given(content_type=CONTENT_TYPES, body=request_bodies())
@QUICK
def test_any_batch_request_body_parses_or_raises_batch_format_error(content_type: str, body: bytes) -> None:
    parse_request_or_format_error(content_type, body)


@example(
    batch_content_type(BOUNDARY),
    b"--batch_AAA123\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 \xc2\xb2 OK\r\n\r\n\r\n--batch_AAA123--\r\n",
)
@example(batch_content_type(BOUNDARY), b"--batch_AAA123\r\n\xff: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n--batch_AAA123--\r\n")
@given(content_type=CONTENT_TYPES, body=response_bodies())
@QUICK
def test_any_batch_response_body_parses_or_raises_batch_format_error(content_type: str, body: bytes) -> None:
    parse_response_or_format_error(content_type, body)


@given(body=response_bodies())
@QUICK
def test_batch_responses_that_were_not_mutated_round_trip(body: bytes) -> None:
    parse_response_or_format_error(batch_content_type(BOUNDARY), body)


@pytest.mark.slow
@given(content_type=CONTENT_TYPES, request_body=request_bodies(), response_body=response_bodies())
@DEEP
def test_batch_parsers_hold_under_a_long_fuzz(content_type: str, request_body: bytes, response_body: bytes) -> None:
    parse_request_or_format_error(content_type, request_body)
    parse_response_or_format_error(content_type, response_body)


@given(payload=json_trees(st.sampled_from(["error", "code", "message", "innererror", "x"])))
@QUICK
def test_any_json_gives_an_error_pair_or_none(payload: Any) -> None:
    parsed = parse_error_body(payload)
    assert parsed is None or (isinstance(parsed[0], str) and isinstance(parsed[1], str))


@given(
    status=st.integers(100, 599),
    body=st.one_of(
        st.binary(max_size=120), json_trees(st.sampled_from(["error", "code", "message"])).map(repr).map(str.encode)
    ),
    kind=st.sampled_from(list(RequestKind)),
)
@QUICK
def test_any_error_response_is_classified_and_described(status: int, body: bytes, kind: RequestKind) -> None:
    request = httpx.Request("PATCH", "https://org.example/api/data/v9.2/contacts(1)")
    response = httpx.Response(status, content=body, request=request)
    classifier_for(kind)(response)
    details = api_error_details(response)
    assert details.status == status


@given(segment=st.one_of(TEXT, st.text(alphabet="abc='%,0123456789-", max_size=40)))
@QUICK
def test_any_key_segment_parses_or_raises_value_error(segment: str) -> None:
    with contextlib.suppress(ValueError):
        parse_key(segment)


@given(token=st.one_of(TEXT, st.text(alphabet='<>"= cookiepagnumbrstk%3c!/0123456789', max_size=80)))
@QUICK
def test_any_paging_or_delta_token_decodes_or_raises_value_error(token: str) -> None:
    for decode in (decode_skiptoken, decode_delta_token):
        with contextlib.suppress(ValueError):
            decode(token)
