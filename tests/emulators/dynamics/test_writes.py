"""§5 Writes: create, update, upsert (by id and alternate key), conditional operations, delete, @odata.bind."""

from __future__ import annotations

import httpx
import pytest

from .conftest import BASE, create_contact

MISSING = "00000000-0000-0000-0000-0000000000aa"


@pytest.mark.anyio
async def test_create_answers_204_with_the_entity_id(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{BASE}contacts", json={"firstname": "Ada", "lastname": "Lovelace"})
    assert response.status_code == 204
    assert response.headers["OData-EntityId"].startswith(f"{BASE}contacts(")
    assert response.content == b""


@pytest.mark.anyio
async def test_create_with_return_representation_answers_201_with_the_row(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{BASE}contacts?$select=fullname,statecode,statuscode,donotemail",
        json={"firstname": "Ada", "lastname": "Lovelace"},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=representation"
    body = response.json()
    assert body["@odata.context"] == f"{BASE}$metadata#contacts(fullname,statecode,statuscode,donotemail)/$entity"
    assert (body["fullname"], body["statecode"], body["statuscode"], body["donotemail"]) == (
        "Ada Lovelace",
        0,
        1,
        False,
    )
    assert "OData-EntityId" not in response.headers


@pytest.mark.anyio
async def test_update_maintains_modifiedon_versionnumber_and_etag(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Before")
    before = (await api.get(f"{BASE}contacts({contact})?$select=lastname,createdon,modifiedon,versionnumber")).json()
    await api.post("/_emulator/clock", json={"advance_seconds": 5})
    updated = await api.patch(f"{BASE}contacts({contact})", json={"lastname": "After"}, headers={"If-Match": "*"})
    assert updated.status_code == 204
    after = (await api.get(f"{BASE}contacts({contact})?$select=lastname,createdon,modifiedon,versionnumber")).json()
    assert after["lastname"] == "After"
    assert after["createdon"] == before["createdon"]
    assert after["modifiedon"] > before["modifiedon"]
    assert after["versionnumber"] > before["versionnumber"]
    assert after["@odata.etag"] == f'W/"{after["versionnumber"]}"'


@pytest.mark.anyio
async def test_update_with_if_match_star_on_a_missing_row_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch(f"{BASE}contacts({MISSING})", json={"lastname": "X"}, headers={"If-Match": "*"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"contact With Id = {MISSING} Does Not Exist"


@pytest.mark.anyio
async def test_stale_etag_gives_412(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="V1")
    etag = (await api.get(f"{BASE}contacts({contact})?$select=lastname")).json()["@odata.etag"]
    assert (
        await api.patch(f"{BASE}contacts({contact})", json={"lastname": "V2"}, headers={"If-Match": etag})
    ).status_code == 204
    stale = await api.patch(f"{BASE}contacts({contact})", json={"lastname": "V3"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["error"] == {
        "code": "",
        "message": "The version of the existing record doesn't match the RowVersion property provided.",
    }
    assert (await api.delete(f"{BASE}contacts({contact})", headers={"If-Match": etag})).status_code == 412


@pytest.mark.anyio
async def test_patch_without_if_match_upserts_by_id(api: httpx.AsyncClient) -> None:
    created = await api.patch(
        f"{BASE}contacts({MISSING})", json={"lastname": "Upserted"}, headers={"Prefer": "return=representation"}
    )
    assert created.status_code == 201
    assert created.json()["contactid"] == MISSING
    updated = await api.patch(
        f"{BASE}contacts({MISSING})", json={"lastname": "Again"}, headers={"Prefer": "return=representation"}
    )
    assert updated.status_code == 200
    plain = await api.patch(f"{BASE}contacts({MISSING})", json={"lastname": "Plain"})
    assert plain.status_code == 204
    assert plain.headers["OData-EntityId"] == f"{BASE}contacts({MISSING})"


@pytest.mark.anyio
async def test_if_none_match_star_refuses_to_update_an_existing_row(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Exists")
    response = await api.patch(f"{BASE}contacts({contact})", json={"lastname": "X"}, headers={"If-None-Match": "*"})
    assert response.status_code == 412
    assert response.json()["error"]["message"] == "A record with matching key values already exists."
    # The literal "null" sent on every request is not a wildcard (§5.4).
    assert (
        await api.patch(f"{BASE}contacts({contact})", json={"lastname": "Y"}, headers={"If-None-Match": "null"})
    ).status_code == 204


@pytest.mark.anyio
async def test_upsert_by_alternate_key_creates_then_updates_without_changing_the_key(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Owner")
    url = f"{BASE}new_vehicles(new_vin='WVWZZZ1JZXW000001')"
    body = {"new_model": "Golf", "new_contactid@odata.bind": f"/contacts({contact})"}
    first = await api.patch(url, json=body)
    assert first.status_code == 204
    assert first.headers["OData-EntityId"] == url
    second = await api.patch(
        url, json={"new_model": "Golf GTI", "new_vin": "IGNORED"}, headers={"Prefer": "return=representation"}
    )
    assert second.status_code == 200
    row = second.json()
    assert (row["new_vin"], row["new_model"], row["_new_contactid_value"]) == ("WVWZZZ1JZXW000001", "Golf GTI", contact)
    assert len((await api.get(f"{BASE}new_vehicles?$select=new_vin")).json()["value"]) == 1
    plus = await api.get(f"{BASE}new_vehicles(new_vin='A%2BB')")
    assert plus.status_code == 400


@pytest.mark.anyio
async def test_delete_answers_204_then_404(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Doomed")
    assert (await api.delete(f"{BASE}contacts({contact})")).status_code == 204
    assert (await api.delete(f"{BASE}contacts({contact})")).status_code == 404


@pytest.mark.anyio
async def test_lookup_binding_with_declared_navigation_properties(api: httpx.AsyncClient) -> None:
    account = (await api.post(f"{BASE}accounts", json={"name": "Fabrikam"})).headers["OData-EntityId"]
    contact = await create_contact(api, lastname="Bound", **{"parentcustomerid_account@odata.bind": account})
    row = (await api.get(f"{BASE}contacts({contact})?$select=_parentcustomerid_value")).json()
    assert account.endswith(f"({row['_parentcustomerid_value']})")
    cleared = await api.patch(
        f"{BASE}contacts({contact})", json={"parentcustomerid_account@odata.bind": None}, headers={"If-Match": "*"}
    )
    assert cleared.status_code == 204
    assert (await api.get(f"{BASE}contacts({contact})?$select=_parentcustomerid_value")).json()[
        "_parentcustomerid_value"
    ] is None
    wrong = await api.post(f"{BASE}contacts", json={"lastname": "X", "parentcustomerid@odata.bind": account})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "0x80048d19"
    assert "undeclared property 'parentcustomerid'" in wrong.json()["error"]["message"]


@pytest.mark.anyio
async def test_task_regarding_a_contact_shows_up_for_that_contact(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Customer")
    task = {"subject": "Call back", "regardingobjectid_contact_task@odata.bind": f"/contacts({contact})"}
    created = await api.post(f"{BASE}tasks", json=task, headers={"Prefer": "return=representation"})
    assert created.status_code == 201
    assert "activityid" in created.json()
    assert created.json()["activitytypecode"] == "task"
    rows = (await api.get(f"{BASE}tasks?$select=subject&$filter=_regardingobjectid_value eq {contact}")).json()["value"]
    assert [r["subject"] for r in rows] == ["Call back"]
    completed = await api.patch(
        f"{BASE}tasks({rows[0]['activityid']})", json={"statecode": 1, "statuscode": 5}, headers={"If-Match": "*"}
    )
    assert completed.status_code == 204
    mismatch = await api.patch(
        f"{BASE}tasks({rows[0]['activityid']})", json={"statecode": 0, "statuscode": 5}, headers={"If-Match": "*"}
    )
    assert mismatch.status_code == 400


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"LastName": "X"}, "0x0", "Invalid property 'LastName' was found in entity 'Microsoft.Dynamics.CRM.contact'."),
        ({"lastname": "x" * 51}, "0x80044331", "exceeded the maximum allowed length of '50'"),
        ({"lastname": "X", "gendercode": 9}, "0x8004431a", "is outside the valid range"),
        (
            {"lastname": "X", "donotemail": "yes"},
            "0x0",
            "Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'.",
        ),
    ],
)
async def test_invalid_payloads_are_refused_with_documented_errors(
    api: httpx.AsyncClient, body: dict[str, object], code: str, message: str
) -> None:
    response = await api.post(f"{BASE}contacts", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_single_property_put_and_delete(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, lastname="Prop", jobtitle="Engineer")
    assert (await api.put(f"{BASE}contacts({contact})/jobtitle", json={"value": "CTO"})).status_code == 204
    assert (await api.get(f"{BASE}contacts({contact})/jobtitle")).json()["value"] == "CTO"
    assert (await api.delete(f"{BASE}contacts({contact})/jobtitle")).status_code == 204
    assert (await api.get(f"{BASE}contacts({contact})/jobtitle")).status_code == 204


@pytest.mark.anyio
async def test_single_valued_navigation_ref_set_and_removed(api: httpx.AsyncClient) -> None:
    """§5.5: PUT <set>(<id>)/<nav>/$ref with @odata.id sets a lookup; DELETE .../$ref clears it."""
    account = (await api.post(f"{BASE}accounts", json={"name": "Northwind"})).headers["OData-EntityId"]
    contact = await create_contact(api, lastname="Ref")
    put = await api.put(f"{BASE}contacts({contact})/parentcustomerid_account/$ref", json={"@odata.id": account})
    assert put.status_code == 204
    assert put.headers["x-ms-service-request-id"]
    row = (await api.get(f"{BASE}contacts({contact})?$select=_parentcustomerid_value")).json()
    assert account.endswith(f"({row['_parentcustomerid_value']})")
    assert (await api.delete(f"{BASE}contacts({contact})/parentcustomerid_account/$ref")).status_code == 204
    row = (await api.get(f"{BASE}contacts({contact})?$select=_parentcustomerid_value")).json()
    assert row["_parentcustomerid_value"] is None
    missing = await api.put(
        f"{BASE}contacts({contact})/parentcustomerid_account/$ref", json={"@odata.id": f"{BASE}accounts({MISSING})"}
    )
    assert missing.status_code == 404
