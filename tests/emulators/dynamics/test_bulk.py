"""§5.4 Bulk actions bound to a table: CreateMultiple, UpdateMultiple, UpsertMultiple (one transaction each)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import BASE

CONTACT = "Microsoft.Dynamics.CRM.contact"


@pytest.mark.anyio
async def test_create_multiple_returns_the_new_ids(api: httpx.AsyncClient) -> None:
    targets = [{"@odata.type": CONTACT, "lastname": f"Bulk {i}"} for i in range(3)]
    response = await api.post(f"{BASE}contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})
    assert response.status_code == 200
    ids = response.json()["Ids"]
    assert len(ids) == 3
    rows = (await api.get(f"{BASE}contacts?$select=lastname&$orderby=lastname")).json()["value"]
    assert sorted(r["contactid"] for r in rows) == sorted(ids)


@pytest.mark.anyio
async def test_update_multiple_answers_204(api: httpx.AsyncClient) -> None:
    targets = [{"@odata.type": CONTACT, "lastname": "A"}, {"@odata.type": CONTACT, "lastname": "B"}]
    ids = (await api.post(f"{BASE}contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})).json()[
        "Ids"
    ]
    updates = [{"@odata.type": CONTACT, "contactid": i, "donotbulkemail": True} for i in ids]
    response = await api.post(f"{BASE}contacts/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": updates})
    assert response.status_code == 204
    rows = (await api.get(f"{BASE}contacts?$select=donotbulkemail")).json()["value"]
    assert [r["donotbulkemail"] for r in rows] == [True, True]


@pytest.mark.anyio
async def test_upsert_multiple_by_alternate_key_creates_and_updates(api: httpx.AsyncClient) -> None:
    vehicle = "Microsoft.Dynamics.CRM.new_vehicle"
    first = [{"@odata.type": vehicle, "@odata.id": "new_vehicles(new_vin='VIN1')", "new_model": "Clio"}]
    created = await api.post(f"{BASE}new_vehicles/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": first})
    assert created.status_code == 200
    assert [r["RecordCreated"] for r in created.json()["Results"]] == [True]
    both = [
        {"@odata.type": vehicle, "@odata.id": "new_vehicles(new_vin='VIN1')", "new_model": "Clio RS"},
        {"@odata.type": vehicle, "@odata.id": "new_vehicles(new_vin='VIN2')", "new_model": "Zoe"},
    ]
    again = await api.post(f"{BASE}new_vehicles/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": both})
    assert [r["RecordCreated"] for r in again.json()["Results"]] == [False, True]
    rows = (await api.get(f"{BASE}new_vehicles?$select=new_vin,new_model&$orderby=new_vin")).json()["value"]
    assert [(r["new_vin"], r["new_model"]) for r in rows] == [("VIN1", "Clio RS"), ("VIN2", "Zoe")]


@pytest.mark.anyio
async def test_one_bad_target_rolls_back_the_whole_call(api: httpx.AsyncClient) -> None:
    targets = [{"@odata.type": CONTACT, "lastname": "Fine"}, {"@odata.type": CONTACT, "lastname": "x" * 80}]
    response = await api.post(f"{BASE}contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80044331"
    assert (await api.get(f"{BASE}contacts?$select=lastname")).json()["value"] == []


@pytest.mark.anyio
async def test_targets_without_odata_type_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{BASE}contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [{"lastname": "X"}]}
    )
    assert response.status_code == 400
