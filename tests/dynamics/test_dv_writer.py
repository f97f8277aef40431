"""Single writes, bulk actions and the split-until-alone rule, against literal responses from the protocol doc."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from crmbridge.dynamics.reader import TableRef
from crmbridge.dynamics.writer import DataverseWriter
from crmbridge.exceptions import ConfigError, RecordError
from crmbridge.http import MaybeAppliedError

from .fakes import API, ScriptedDataverse, error_response, json_response, session_for

CONTACTS = TableRef(logical_name="contact", entity_set="contacts", primary_id="contactid")
NEW_ID = "00000000-0000-0000-0000-000000000001"


def no_content(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(204, headers={"OData-Version": "4.0", **(headers or {})})


@pytest.mark.anyio
async def test_create_returns_the_id_from_odata_entity_id() -> None:
    fake = ScriptedDataverse()
    fake.expect("POST", API + "contacts", no_content({"OData-EntityId": f"{API}contacts({NEW_ID})"}))
    writer = DataverseWriter(session_for(fake.handle))

    row_id = await writer.create("contacts", {"firstname": "Ada", "lastname": "Lovelace"})

    assert row_id == NEW_ID
    request = fake.requests[0]
    assert json.loads(request.content) == {"firstname": "Ada", "lastname": "Lovelace"}
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.anyio
async def test_create_is_never_repeated_after_an_ambiguous_failure() -> None:
    fake = ScriptedDataverse()
    fake.expect("POST", API + "contacts", httpx.Response(502))
    writer = DataverseWriter(session_for(fake.handle))

    with pytest.raises(MaybeAppliedError):
        await writer.create("contacts", {"lastname": "Lovelace"})
    fake.assert_done()


@pytest.mark.anyio
async def test_update_sends_if_match_star_so_a_missing_row_is_not_created() -> None:
    fake = ScriptedDataverse()
    fake.expect("PATCH", API + f"contacts({NEW_ID})", no_content())
    writer = DataverseWriter(session_for(fake.handle))

    await writer.update("contacts", NEW_ID, {"donotemail": True})

    assert fake.requests[0].headers["If-Match"] == "*"
    assert "If-None-Match" not in fake.requests[0].headers


@pytest.mark.anyio
async def test_upsert_by_alternate_key_patches_the_key_url_without_if_match() -> None:
    fake = ScriptedDataverse()
    fake.expect("PATCH", API + "contacts(emailaddress1='O''Bryan%40example.com')", no_content())
    writer = DataverseWriter(session_for(fake.handle))

    await writer.upsert("contacts", {"emailaddress1": "O'Bryan@example.com"}, {"lastname": "O'Bryan"})

    assert "If-Match" not in fake.requests[0].headers


@pytest.mark.anyio
async def test_alternate_key_value_dataverse_cannot_take_in_a_url_is_refused_before_sending() -> None:
    fake = ScriptedDataverse()
    writer = DataverseWriter(session_for(fake.handle))

    with pytest.raises(RecordError, match="cannot take in a URL"):
        await writer.upsert("contacts", {"emailaddress1": "ada+news@example.com"}, {"lastname": "Lovelace"})
    assert fake.requests == []


@pytest.mark.anyio
async def test_upsert_retries_an_outage_because_it_is_idempotent() -> None:
    fake = ScriptedDataverse()
    fake.expect("PATCH", API + f"contacts({NEW_ID})", httpx.Response(503))
    fake.expect("PATCH", API + f"contacts({NEW_ID})", no_content())
    writer = DataverseWriter(session_for(fake.handle))

    await writer.upsert("contacts", NEW_ID, {"lastname": "Lovelace"})

    fake.assert_done()


@pytest.mark.anyio
async def test_deleting_a_row_that_is_already_gone_reports_false() -> None:
    fake = ScriptedDataverse()
    fake.expect("DELETE", API + f"contacts({NEW_ID})", error_response(404, "0x80040217", "Does Not Exist"))
    fake.expect("DELETE", API + f"contacts({NEW_ID})", no_content())
    writer = DataverseWriter(session_for(fake.handle))

    assert await writer.delete("contacts", NEW_ID) is False
    assert await writer.delete("contacts", NEW_ID) is True


@pytest.mark.anyio
async def test_rejected_single_write_is_a_record_error_with_the_service_details() -> None:
    fake = ScriptedDataverse()
    message = "A validation error occurred. The length of the 'lastname' attribute exceeded the maximum allowed length"
    fake.expect("PATCH", API + f"contacts({NEW_ID})", error_response(400, "0x80044331", message, {"REQ_ID": "q-9"}))
    writer = DataverseWriter(session_for(fake.handle))

    with pytest.raises(RecordError) as caught:
        await writer.upsert("contacts", NEW_ID, {"lastname": "x" * 60})

    assert caught.value.record_key == NEW_ID
    assert caught.value.details is not None
    assert (caught.value.details.code, caught.value.details.request_id) == ("0x80044331", "q-9")


@pytest.mark.anyio
async def test_wrong_bind_name_stops_with_a_config_error() -> None:
    fake = ScriptedDataverse()
    message = "An undeclared property 'parentcustomerid' which only has property annotations in the payload"
    fake.expect("POST", API + "contacts", error_response(400, "0x80048d19", message))
    writer = DataverseWriter(session_for(fake.handle))

    with pytest.raises(ConfigError, match="undeclared property"):
        await writer.create("contacts", {"parentcustomerid@odata.bind": "/accounts(1)"})


class BulkService:
    """UpsertMultiple/CreateMultiple as one transaction each: any bad target rolls back the whole call."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.written: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        targets = json.loads(request.content)["Targets"]
        self.calls.append(targets)
        if any(t.get("lastname") == "BAD" for t in targets):
            return error_response(400, "0x80044331", "A validation error occurred.")
        names = [t["firstname"] for t in targets]
        self.written.extend(names)
        if request.url.path.endswith("CreateMultiple"):
            return json_response(200, {"Ids": [f"id-{name}" for name in names]})
        return httpx.Response(204)


def _rows(count: int, bad: set[int]) -> list[dict[str, Any]]:
    return [{"firstname": f"r{i}", "lastname": "BAD" if i in bad else "ok"} for i in range(count)]


@pytest.mark.anyio
async def test_failed_bulk_call_is_split_until_each_bad_record_stands_alone() -> None:
    service = BulkService()
    writer = DataverseWriter(session_for(service.handle), bulk_size=16)
    rows = _rows(40, bad={3, 37})
    keyed = [({"emailaddress1": f"{row['firstname']}@example.com"}, row) for row in rows]
    keyed[20] = ({"emailaddress1": "r20+tag@example.com"}, rows[20])  # refused before sending: '+' in a key

    results = await writer.upsert_multiple(CONTACTS, keyed)

    assert [r.index for r in results] == list(range(40))
    assert [r.index for r in results if not r.ok] == [3, 20, 37]
    assert all(isinstance(r.error, RecordError) for r in results if not r.ok)
    assert sorted(service.written) == sorted(f"r{i}" for i in range(40) if i not in {3, 20, 37})
    assert len(service.written) == 37  # every good record written exactly once
    first_target = service.calls[0][0]
    assert first_target["@odata.type"] == "Microsoft.Dynamics.CRM.contact"
    assert first_target["@odata.id"].startswith("contacts(emailaddress1='r")


@pytest.mark.anyio
async def test_create_multiple_maps_returned_ids_to_inputs_in_order() -> None:
    service = BulkService()
    writer = DataverseWriter(session_for(service.handle), bulk_size=3)

    results = await writer.create_multiple(CONTACTS, _rows(7, bad={5}))

    assert [(r.index, r.id) for r in results if r.ok] == [(i, f"id-r{i}") for i in range(7) if i != 5]
    assert results[5].error is not None


@pytest.mark.anyio
async def test_update_multiple_needs_the_primary_id_on_every_row() -> None:
    writer = DataverseWriter(session_for(BulkService().handle))

    with pytest.raises(ValueError, match="contactid"):
        await writer.update_multiple(CONTACTS, [{"firstname": "a"}])


@pytest.mark.anyio
async def test_bulk_calls_in_progress_never_exceed_the_sessions_parallelism() -> None:
    in_flight, peak = 0, 0

    async def slow_service(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(204)

    session = session_for(slow_service)  # MockTransport also takes async handlers
    session.max_parallel = 2
    writer = DataverseWriter(session, bulk_size=1)

    results = await writer.update_multiple(CONTACTS, [{"contactid": str(i)} for i in range(6)])

    assert all(r.ok for r in results)
    assert peak == 2
