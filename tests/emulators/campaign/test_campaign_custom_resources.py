"""Custom resources (campaign-standard-api.md §2.5, §2.3, §8): cusVehicle, link cardinalities, ignored links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmbridge.emulators.campaign import create_app
from crmbridge.emulators.campaign.schema import load_schema
from tests.emulators.campaign.conftest import BASE, CLIENT_ID, make_settings, token_for

EXT = "/acme/campaign/profileAndServicesExt"


async def post(client: httpx.AsyncClient, headers: dict[str, str], url: str, body: dict[str, Any]) -> Any:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.anyio
async def test_vehicle_linked_to_profile_is_crud_able_by_pkey_and_vehicle_id(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    owner = await post(client, headers, f"{EXT}/profile", {"email": "owner@mail.com"})
    body = {"vehicleId": "V-1", "name": "Family car", "vin": "1HGCM82633A004352", "model": "Civic", "year": 2019,
            "profile": {"PKey": owner["PKey"]}}  # fmt: skip
    car = await post(client, headers, f"{EXT}/cusVehicle", body)
    assert car["profile"]["PKey"] == owner["PKey"]
    assert car["profile"]["href"] == f"{BASE}{EXT}/profile/{owner['PKey']}"
    assert (await client.get(f"{EXT}/cusVehicle/V-1", headers=headers)).json()["PKey"] == car["PKey"]
    patched = await client.patch(f"{EXT}/cusVehicle/{car['PKey']}", json={"year": 2020}, headers=headers)
    assert patched.json() == {"PKey": car["PKey"], "href": f"{BASE}{EXT}/cusVehicle/{car['PKey']}"}
    found = await client.get(f"{EXT}/cusVehicle/byVehicleId?vehicleId_parameter=V-1", headers=headers)
    assert [row["year"] for row in found.json()["content"]] == [2020]
    assert (await client.delete(f"{EXT}/cusVehicle/V-1", headers=headers)).status_code == 200
    assert (await client.get(f"{EXT}/cusVehicle/V-1", headers=headers)).status_code == 404


@pytest.mark.anyio
async def test_custom_resource_is_not_on_the_standard_api(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/acme/campaign/profileAndServices/cusVehicle", headers=headers)
    assert response.status_code == 404


@pytest.mark.anyio
async def test_link_object_without_pkey_is_ignored_and_mandatory_link_hides_the_child(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    orphan = await post(client, headers, f"{EXT}/cusVehicle", {"vehicleId": "V-2", "profile": {"email": "x@y.com"}})
    assert orphan["profile"] == {}
    assert (await client.get(f"{EXT}/cusVehicle", headers=headers)).json()["content"] == []
    assert (await client.get(f"{EXT}/cusVehicle/V-2", headers=headers)).status_code == 404
    owner = await post(client, headers, f"{EXT}/profile", {"email": "late@mail.com"})
    repaired = await client.patch(
        f"{EXT}/cusVehicle/{orphan['PKey']}", json={"profile": {"PKey": owner["PKey"]}}, headers=headers
    )
    assert repaired.status_code == 200
    listed = (await client.get(f"{EXT}/cusVehicle", headers=headers)).json()["content"]
    assert [row["vehicleId"] for row in listed] == ["V-2"]


@pytest.mark.anyio
async def test_child_disappears_when_its_mandatory_parent_is_deleted(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    owner = await post(client, headers, f"{EXT}/profile", {"email": "gone@mail.com"})
    await post(client, headers, f"{EXT}/cusVehicle", {"vehicleId": "V-3", "profile": {"PKey": owner["PKey"]}})
    await client.delete(f"{EXT}/profile/{owner['PKey']}", headers=headers)
    assert (await client.get(f"{EXT}/cusVehicle/_count", headers=headers)).json() == {"count": 0}


@pytest.mark.anyio
async def test_link_to_an_undecodable_pkey_is_500(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(
        f"{EXT}/cusVehicle", json={"vehicleId": "V-4", "profile": {"PKey": "@gibberish"}}, headers=headers
    )
    assert response.status_code == 500
    assert "XTK-170036" in response.json()["message"]


@pytest.mark.anyio
async def test_schema_file_links_custom_resources_to_each_other_with_both_cardinalities(
    tmp_path: Path,
) -> None:
    raw = json.loads((Path(load_schema.__code__.co_filename).parent / "default_schema.json").read_text())
    raw["resources"]["cusDealer"] = {"customKey": "dealerCode", "fields": [{"name": "dealerCode", "type": "string"}]}
    raw["resources"]["cusVisit"] = {
        "customKey": "visitId",
        "fields": [
            {"name": "visitId", "type": "string"},
            {"name": "profile", "type": "link", "target": "profile", "cardinality": "0..1"},
        ],
    }
    raw["resources"]["cusRepair"] = {
        "customKey": "repairId",
        "fields": [
            {"name": "repairId", "type": "string"},
            {"name": "vehicle", "type": "link", "target": "cusVehicle", "cardinality": "1"},
        ],
    }
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(raw))
    app = create_app(make_settings(schema_path=schema_file))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        headers = {"Authorization": f"Bearer {await token_for(http)}", "X-Api-Key": CLIENT_ID}
        await post(http, headers, f"{EXT}/cusVisit", {"visitId": "visit-1"})
        assert [r["visitId"] for r in (await http.get(f"{EXT}/cusVisit", headers=headers)).json()["content"]] == [
            "visit-1"
        ]
        assert (await http.get(f"{EXT}/cusDealer", headers=headers)).status_code == 404
        owner = await post(http, headers, f"{EXT}/profile", {"email": "o@mail.com"})
        car = await post(http, headers, f"{EXT}/cusVehicle", {"vehicleId": "V9", "profile": {"PKey": owner["PKey"]}})
        repair = await post(http, headers, f"{EXT}/cusRepair", {"repairId": "R1", "vehicle": {"PKey": car["PKey"]}})
        assert repair["vehicle"]["PKey"] == car["PKey"]
        assert (await http.get(f"{EXT}/cusRepair/R1", headers=headers)).status_code == 200
        await http.delete(f"{EXT}/cusVehicle/V9", headers=headers)
        assert (await http.get(f"{EXT}/cusRepair/R1", headers=headers)).status_code == 404
        dealers = "/acme/campaign/customResources/cusDealer"
        await post(http, headers, dealers, {"dealerCode": "D1"})
        assert (await http.get(f"{dealers}/D1", headers=headers)).status_code == 200


def test_schema_file_rejects_a_custom_resource_without_the_cus_prefix(tmp_path: Path) -> None:
    raw = json.loads((Path(load_schema.__code__.co_filename).parent / "default_schema.json").read_text())
    raw["resources"]["vehicle"] = {"fields": []}
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="must start with 'cus'"):
        load_schema(schema_file)
