"""Paging and change tracking against literal responses shaped like shared/protocols/dataverse-web-api.md §3.5/§4."""

from __future__ import annotations

import gc
import weakref

import httpx
import pytest

from crmbridge.dynamics.auth import StaticTokenProvider
from crmbridge.dynamics.errors import RequestKind
from crmbridge.dynamics.reader import ChangePage, DataverseReader, TableRef, formatted_value
from crmbridge.exceptions import CheckpointExpired, ConfigError, ProtocolError
from crmbridge.records import SourceChange, Tombstone

from .fakes import API, ScriptedDataverse, error_response, json_response, session_for

ACCOUNTS = TableRef(logical_name="account", entity_set="accounts", primary_id="accountid")
# Literal nextLink from §3.5: must be requested byte for byte, never re-encoded.
NEXT_LINK = (
    API + "contacts?$select=fullname&$skiptoken=%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520"
    "page%253d%25221%2522%253e%253ccontactid%2520last%253d%2522%257b2%257d%2522%2520first%253d%2522%257b1%257d"
    "%2522%2520%252f%253e%253c%252fcookie%253e%22%20istracking=%22False%22%20/%3E"
)
DELTA_LINK = API + "accounts?$select=name,telephone1,fax&$deltatoken=919058%2108%2f22%2f2017%2008%3a21%3a20"


@pytest.mark.anyio
async def test_pages_follow_the_next_link_verbatim_with_the_same_page_size() -> None:
    fake = ScriptedDataverse()
    fake.expect(
        "GET",
        API + "contacts?$select=fullname",
        json_response(200, {"value": [{"fullname": "A", "contactid": "1"}], "@odata.nextLink": NEXT_LINK}),
    )
    fake.expect("GET", NEXT_LINK, json_response(200, {"value": [{"fullname": "B", "contactid": "2"}]}))
    reader = DataverseReader(session_for(fake.handle), page_size=1)

    rows = [row async for row in reader.iter_rows("contacts", select=["fullname"])]

    assert [row["contactid"] for row in rows] == ["1", "2"]
    assert [r.headers["Prefer"] for r in fake.requests] == ["odata.maxpagesize=1", "odata.maxpagesize=1"]
    first = fake.requests[0].headers
    assert (first["OData-Version"], first["OData-MaxVersion"], first["Accept"]) == ("4.0", "4.0", "application/json")
    assert first["If-None-Match"] == "null"
    assert first["Authorization"] == "Bearer static-test-token"
    fake.assert_done()


@pytest.mark.anyio
async def test_a_next_link_served_twice_is_reported_as_a_paging_loop() -> None:
    fake = ScriptedDataverse()
    page = json_response(200, {"value": [{"contactid": "1"}], "@odata.nextLink": NEXT_LINK})
    fake.expect("GET", API + "contacts?$select=contactid", page)
    fake.expect("GET", NEXT_LINK, json_response(200, {"value": [{"contactid": "2"}], "@odata.nextLink": NEXT_LINK}))
    reader = DataverseReader(session_for(fake.handle))

    with pytest.raises(ProtocolError, match="paging loop"):
        async for _ in reader.iter_pages("contacts", select=["contactid"]):
            pass


@pytest.mark.anyio
async def test_query_options_are_sent_in_dataverse_spelling() -> None:
    fake = ScriptedDataverse()
    fake.expect(
        "GET",
        API + "contacts?$select=fullname,emailaddress1&$filter=lastname%20eq%20'O''Bryan'&$orderby=contactid",
        json_response(200, {"value": []}),
    )
    reader = DataverseReader(session_for(fake.handle))

    pages = [
        page
        async for page in reader.iter_pages(
            "contacts", select=["fullname", "emailaddress1"], filter="lastname eq 'O''Bryan'", orderby="contactid"
        )
    ]

    assert pages[0].rows == []
    assert pages[0].next_link is None
    fake.assert_done()


@pytest.mark.anyio
async def test_initial_change_read_exposes_each_next_link_and_the_delta_link_at_the_end() -> None:
    second_page = API + "accounts?$select=name&$skiptoken=%3Ccookie%20pagenumber=%222%22%20istracking=%22True%22%20/%3E"
    fake = ScriptedDataverse()
    fake.expect(
        "GET",
        API + "accounts?$select=name",
        json_response(200, {"value": [{"name": "A", "accountid": "a1"}], "@odata.nextLink": second_page}),
    )
    fake.expect(
        "GET",
        second_page,
        json_response(200, {"value": [{"name": "B", "accountid": "a2"}], "@odata.deltaLink": DELTA_LINK}),
    )
    reader = DataverseReader(session_for(fake.handle), page_size=1)

    pages = [page async for page in reader.iter_changes(ACCOUNTS, ["name"])]

    assert [p.next_link for p in pages] == [second_page, None]
    assert [p.delta_link for p in pages] == [None, DELTA_LINK]
    assert [c.id for p in pages for c in p.changes] == ["a1", "a2"]
    assert fake.requests[0].headers["Prefer"] == "odata.track-changes,odata.maxpagesize=1"
    assert fake.requests[1].headers["Prefer"] == "odata.track-changes,odata.maxpagesize=1"


@pytest.mark.anyio
async def test_delta_read_yields_changed_rows_and_tombstones() -> None:
    # The §4.3 example response, verbatim.
    body = {
        "@odata.context": API + "$metadata#accounts(name,telephone1,fax)/$delta",
        "@odata.deltaLink": API + "accounts?$select=name&$deltatoken=919059%2108%2f22%2f2017%2008%3a30%3a00",
        "value": [
            {
                "@odata.etag": 'W/"915244"',
                "name": "Monte Orton",
                "telephone1": "555000",
                "fax": "10101",
                "accountid": "60c4e274-0d87-e711-80e5-00155db19e6d",
            },
            {
                "@odata.context": API + "$metadata#accounts/$deletedEntity",
                "id": "2e451703-c686-e711-80e5-00155db19e6d",
                "reason": "deleted",
            },
        ],
    }
    fake = ScriptedDataverse()
    fake.expect("GET", DELTA_LINK, json_response(200, body))
    reader = DataverseReader(session_for(fake.handle))

    pages = [page async for page in reader.iter_changes(ACCOUNTS, ["name"], delta_link=DELTA_LINK)]

    assert pages == [
        ChangePage(
            changes=[
                SourceChange("account", "60c4e274-0d87-e711-80e5-00155db19e6d", body["value"][0]),
                Tombstone("account", "2e451703-c686-e711-80e5-00155db19e6d"),
            ],
            next_link=None,
            delta_link=body["@odata.deltaLink"],
        )
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 404, 410])
async def test_refused_stored_delta_link_raises_checkpoint_expired(status: int) -> None:
    fake = ScriptedDataverse()
    message = "Version stamp associated with the client has expired. Please perform a full sync."
    fake.expect("GET", DELTA_LINK, error_response(status, "0x80044352", message))
    reader = DataverseReader(session_for(fake.handle))

    with pytest.raises(CheckpointExpired, match="Version stamp"):
        async for _ in reader.iter_changes(ACCOUNTS, ["name"], delta_link=DELTA_LINK):
            pass


@pytest.mark.anyio
async def test_refused_query_we_built_is_a_config_error_not_a_rebaseline() -> None:
    fake = ScriptedDataverse()
    message = "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."
    fake.expect("GET", API + "accounts?$select=Name", error_response(400, "0x0", message))
    reader = DataverseReader(session_for(fake.handle))

    with pytest.raises(ConfigError, match="Could not find a property"):
        async for _ in reader.iter_changes(ACCOUNTS, ["Name"]):
            pass


@pytest.mark.anyio
async def test_expired_token_on_a_stored_link_reauthenticates_instead_of_rebaselining() -> None:
    fake = ScriptedDataverse()
    fake.expect("GET", DELTA_LINK, error_response(401, "", "ExpiredAuthTicket"))
    fake.expect("GET", DELTA_LINK, json_response(200, {"value": [], "@odata.deltaLink": DELTA_LINK}))
    tokens = StaticTokenProvider()
    reader = DataverseReader(session_for(fake.handle, tokens=tokens))

    pages = [page async for page in reader.iter_changes(ACCOUNTS, ["name"], delta_link=DELTA_LINK)]

    assert pages[0].delta_link == DELTA_LINK
    assert tokens.invalidations == 1


@pytest.mark.anyio
async def test_throttled_page_is_retried_after_the_pause() -> None:
    fake = ScriptedDataverse()
    throttled = error_response(429, "0x80072322", "Number of requests exceeded the limit", {"Retry-After": "2"})
    fake.expect("GET", DELTA_LINK, throttled)
    fake.expect("GET", DELTA_LINK, json_response(200, {"value": [], "@odata.deltaLink": DELTA_LINK}))
    session = session_for(fake.handle)
    reader = DataverseReader(session)

    pages = [page async for page in reader.iter_changes(ACCOUNTS, ["name"], delta_link=DELTA_LINK)]

    assert len(pages) == 1
    assert session.stats.throttled == 1


@pytest.mark.anyio
async def test_resumed_read_starts_at_the_stored_next_link() -> None:
    fake = ScriptedDataverse()
    fake.expect("GET", NEXT_LINK, json_response(200, {"value": [], "@odata.deltaLink": DELTA_LINK}))
    reader = DataverseReader(session_for(fake.handle))

    pages = [page async for page in reader.iter_changes(ACCOUNTS, ["name"], resume_next_link=NEXT_LINK)]

    assert pages[-1].delta_link == DELTA_LINK
    fake.assert_done()


@pytest.mark.anyio
async def test_formatted_values_are_requested_and_readable() -> None:
    row = {
        "@odata.etag": 'W/"112430907"',
        "name": "A. Datum",
        "statecode@OData.Community.Display.V1.FormattedValue": "Active",
        "statecode": 0,
        "accountid": "4b757ff7-9c85-ee11-8179-000d3a9933c9",
    }
    fake = ScriptedDataverse()
    fake.expect("GET", API + "accounts?$select=name,statecode", json_response(200, {"value": [row]}))
    reader = DataverseReader(session_for(fake.handle))

    pages = [p async for p in reader.iter_changes(ACCOUNTS, ["name", "statecode"], formatted_values=True)]

    change = pages[0].changes[0]
    assert isinstance(change, SourceChange)
    assert formatted_value(change.values, "statecode") == "Active"
    assert formatted_value(change.values, "name") is None
    prefer = fake.requests[0].headers["Prefer"]
    assert 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"' in prefer


@pytest.mark.anyio
async def test_get_by_alternate_key_returns_none_when_the_row_does_not_exist() -> None:
    fake = ScriptedDataverse()
    fake.expect(
        "GET",
        API + "accounts(accountnumber='A-1')?$select=name",
        error_response(404, "0x80040217", "account With Ids = A-1 Do Not Exist"),
    )
    reader = DataverseReader(session_for(fake.handle))

    assert await reader.get("accounts", {"accountnumber": "A-1"}, select=["name"]) is None


def test_page_size_above_the_service_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        DataverseReader(session_for(lambda r: httpx.Response(500)), page_size=5001)


@pytest.mark.anyio
async def test_page_bodies_are_freed_without_waiting_for_a_full_garbage_collection() -> None:
    fake = ScriptedDataverse()
    fake.expect("GET", API + "contacts?$select=contactid", json_response(200, {"value": [{"contactid": "1"}]}))
    session = session_for(fake.handle)
    gc.disable()  # only reference counting may free the response (CPython's full collections are rare)
    try:
        response = await session.send("GET", "contacts?$select=contactid", kind=RequestKind.READ, idempotent=True)
        assert response.json() == {"value": [{"contactid": "1"}]}
        alive = weakref.ref(response)
        del response
        assert alive() is None
    finally:
        gc.enable()
