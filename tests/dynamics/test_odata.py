"""The shared OData codecs against the literal examples of dataverse-web-api.md (§3.3, §3.5, §4.2, §6.2, §6.3, §7.3).

Fixtures are copied from the document, so client and emulator cannot agree on the same bug.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmbridge.dynamics.odata import (
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    PagingCookie,
    decode_delta_token,
    decode_skiptoken,
    encode_batch_request,
    encode_batch_response,
    encode_delta_token,
    encode_skiptoken,
    error_body,
    format_key,
    format_literal,
    format_string_literal,
    parse_batch_request,
    parse_batch_response,
    parse_error_body,
    parse_key,
    parse_string_literal,
)

# §6.2 request body, verbatim ("every line ends with CRLF").
DOC_BATCH_REQUEST = """--batch_AAA123
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)?$select=fullname HTTP/1.1


--batch_AAA123
Content-Type: multipart/mixed; boundary="changeset_BBB456"

--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json; type=entry

{"firstname":"A","lastname":"B"}
--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{"subject":"Follow up","regardingobjectid_contact_task@odata.bind":"$1"}
--changeset_BBB456--
--batch_AAA123--
""".replace("\n", "\r\n").encode()
DOC_BATCH_CONTENT_TYPE = 'multipart/mixed; boundary="batch_AAA123"'

# §6.3 response shape (Microsoft's example layout: unquoted boundaries, nested change set, Content-ID echoed).
DOC_BATCH_RESPONSE = """--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f
Content-Type: multipart/mixed; boundary=changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc

--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: https://org.crm.dynamics.com/api/data/v9.2/tasks(a59c24e4-0000-0000-0000-000000000001)
OData-EntityId: https://org.crm.dynamics.com/api/data/v9.2/tasks(a59c24e4-0000-0000-0000-000000000001)


--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc--
--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json; odata.metadata=minimal; odata.streaming=true
OData-Version: 4.0

{"value":[]}
--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--
""".replace("\n", "\r\n").encode()
DOC_BATCH_RESPONSE_TYPE = "multipart/mixed; boundary=batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f"


def doc_batch_parts() -> list[BatchRequest | ChangeSet]:
    entry = [("Content-Type", "application/json; type=entry")]
    return [
        BatchRequest("GET", "/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)?$select=fullname"),
        ChangeSet(
            [
                BatchRequest("POST", "/api/data/v9.2/contacts", entry, b'{"firstname":"A","lastname":"B"}', "1"),
                BatchRequest(
                    "POST",
                    "/api/data/v9.2/tasks",
                    entry,
                    b'{"subject":"Follow up","regardingobjectid_contact_task@odata.bind":"$1"}',
                    "2",
                ),
            ],
            "changeset_BBB456",
        ),
    ]


def test_batch_request_encoder_reproduces_the_documented_body_byte_for_byte() -> None:
    assert encode_batch_request(doc_batch_parts(), "batch_AAA123") == DOC_BATCH_REQUEST


def test_batch_request_parser_reads_the_documented_body() -> None:
    assert parse_batch_request(DOC_BATCH_CONTENT_TYPE, DOC_BATCH_REQUEST) == doc_batch_parts()


def test_batch_parser_refuses_lf_only_bodies_like_dataverse() -> None:
    with pytest.raises(BatchFormatError, match="Stream was not readable"):
        parse_batch_request(DOC_BATCH_CONTENT_TYPE, DOC_BATCH_REQUEST.replace(b"\r\n", b"\n"))


def test_batch_response_parser_reads_change_set_and_plain_parts() -> None:
    parts = parse_batch_response(DOC_BATCH_RESPONSE_TYPE, DOC_BATCH_RESPONSE)
    change_set, plain = parts
    assert isinstance(change_set, ChangeSetResponse)
    assert isinstance(plain, BatchResponse)
    created = change_set.responses[0]
    assert (created.status, created.content_id, created.body) == (204, "1", b"")
    assert created.header("odata-entityid") == (
        "https://org.crm.dynamics.com/api/data/v9.2/tasks(a59c24e4-0000-0000-0000-000000000001)"
    )
    assert (plain.status, plain.body) == (200, b'{"value":[]}')


def test_batch_response_encoder_reproduces_the_documented_layout() -> None:
    parts = parse_batch_response(DOC_BATCH_RESPONSE_TYPE, DOC_BATCH_RESPONSE)
    encoded = encode_batch_response(parts, "batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f")
    assert encoded == DOC_BATCH_RESPONSE


def test_string_literals_double_their_quotes() -> None:
    assert format_string_literal("O'Bryan") == "'O''Bryan'"
    assert parse_string_literal("'O''Bryan'") == "O'Bryan"


@given(st.text())
def test_string_literals_round_trip(value: str) -> None:
    assert parse_string_literal(format_string_literal(value)) == value


def test_literals_leave_guids_and_datetimes_unquoted() -> None:
    guid = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert format_literal(guid) == "00000000-0000-0000-0000-000000000001"
    assert format_literal(datetime(2026, 2, 18, tzinfo=UTC)) == "2026-02-18T00:00:00Z"
    assert format_literal(True) == "true"
    assert format_literal(None) == "null"


def test_alternate_key_values_are_quoted_then_url_encoded() -> None:
    assert format_key({"emailaddress1": "a+b@x.org"}) == "(emailaddress1='a%2Bb%40x.org')"
    assert parse_key("emailaddress1='a%2Bb%40x.org'") == {"emailaddress1": "a+b@x.org"}
    assert parse_key("firstname='Joe',emailaddress1='O''Neil@example.com'") == {
        "firstname": "Joe",
        "emailaddress1": "O'Neil@example.com",
    }
    assert parse_key("00000000-0000-0000-0000-000000000001") == "00000000-0000-0000-0000-000000000001"


def test_paging_cookie_decodes_to_the_documented_shape() -> None:
    first, last = "{11111111-0000-0000-0000-000000000001}", "{22222222-0000-0000-0000-000000000002}"
    token = encode_skiptoken(PagingCookie(2, (("contactid", last, first),)))
    outer_start = '<cookie pagenumber="2" pagingcookie="'
    outer_end = '" istracking="False" />'
    assert token.startswith(outer_start)
    assert token.endswith(outer_end)
    inner = unquote(token[len(outer_start) : -len(outer_end)])
    # §3.5 decoded form: pagingcookie="<cookie page="1"><contactid last="{GUID}" first="{GUID}" /></cookie>"
    assert inner == f'<cookie page="1"><contactid last="{last}" first="{first}" /></cookie>'
    assert decode_skiptoken(token) == PagingCookie(2, (("contactid", last, first),))


def test_paging_cookie_keeps_quotes_ampersands_and_nulls() -> None:
    cookie = PagingCookie(7, (("lastname", 'O\'Brien & "Sons"', None), ("contactid", "{X}", "{Y}")), True)
    assert decode_skiptoken(encode_skiptoken(cookie)) == cookie


def test_delta_token_matches_the_documented_example() -> None:
    # §4.2: $deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44 decodes to 919042!08/22/2017 08:10:44
    assert encode_delta_token(919042, datetime(2017, 8, 22, 8, 10, 44, tzinfo=UTC)) == "919042!08/22/2017 08:10:44"
    assert decode_delta_token(unquote("919042%2108%2f22%2f2017%2008%3a10%3a44")) == (
        919042,
        datetime(2017, 8, 22, 8, 10, 44, tzinfo=UTC),
    )


def test_error_body_has_the_documented_shape() -> None:
    assert error_body("0x80040265", "Example Error Message.") == {
        "error": {"code": "0x80040265", "message": "Example Error Message."}
    }
    assert parse_error_body({"error": {"code": "0x80040265", "message": "Example Error Message."}}) == (
        "0x80040265",
        "Example Error Message.",
    )
    assert parse_error_body({"value": []}) is None
