"""profileAndServices / profileAndServicesExt profiles: writes (§4.1-4.3), lists (§3.1-3.4), filters (§3.5),
errors (§4.6), keys (§2.2) and opt-out fields (§5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.campaign import create_app
from tests.emulators.campaign.conftest import BASE, make_settings

STD = "/acme/campaign/profileAndServices/profile"
EXT = "/acme/campaign/profileAndServicesExt/profile"
RST = "RST-360011 An error has occurred - please contact your administrator."


async def create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], url: str = STD) -> Any:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.anyio
async def test_post_profile_returns_201_with_documented_defaults(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = await create(client, headers, {"email": "john.doe@mail.com"})
    assert body["PKey"].startswith("@")
    assert len(body["PKey"]) >= 60
    assert body["href"] == f"{BASE}{STD}/{body['PKey']}"
    for flag in ("blackList", "blackListEmail", "blackListMobile", "blackListPhone", "blackListPostalMail",
                 "blackListFax", "blackListPushnotification", "ccpaOptOut"):  # fmt: skip
        assert body[flag] is False
    assert (body["gender"], body["emailFormat"], body["preferredLanguage"]) == ("unknown", "unknown", "none")
    assert body["firstName"] == ""
    assert body["birthDate"] == ""
    assert body["domain"] == "mail.com"
    assert body["created"] == body["lastModified"]
    assert len(body["created"]) == len("2019-09-25 23:20:35.000Z")
    assert body["created"].endswith("Z")
    assert body["subscriptions"] == {"href": f"{BASE}{STD}/{body['PKey']}/subscriptions/"}
    assert "cusLoyaltyTier" not in body


@pytest.mark.anyio
async def test_patch_returns_pkey_and_href_and_moves_last_modified(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await create(client, headers, {"email": "a@example.com"})
    app.state.campaign.settings.clock.advance(5)
    response = await client.patch(f"{STD}/{created['PKey']}", json={"blackListEmail": True}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"PKey": created["PKey"], "href": f"{BASE}{STD}/{created['PKey']}"}
    single = (await client.get(f"{STD}/{created['PKey']}", headers=headers)).json()
    assert "href" not in single  # a single GET has no href (§2.2)
    assert single["blackListEmail"] is True
    assert single["lastModified"] > created["lastModified"]
    assert single["blackListEmailLastModified"] == single["lastModified"]
    assert single["blackListAllLastModified"] == single["lastModified"]
    assert single["blackListMobileLastModified"] == ""


@pytest.mark.anyio
async def test_flag_timestamps_can_be_switched_off_like_a_tenant_without_them(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_emulator/config", json={"flagTimestamps": False})
    body = await create(client, headers, {"email": "b@example.com", "ccpaOptOut": True})
    assert body["ccpaOptOut"] is True
    assert not [key for key in body if key.endswith("LastModified") and key != "lastModified"]


@pytest.mark.anyio
async def test_deny_list_names_are_accepted_on_input_and_emitted_as_black_list(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = await create(client, headers, {"email": "c@example.com", "denyListEmail": True})
    assert body["blackListEmail"] is True
    assert "denyListEmail" not in body


@pytest.mark.anyio
async def test_delete_profile_is_200_then_get_is_404(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    created = await create(client, headers, {"email": "d@example.com"})
    assert (await client.delete(f"{STD}/{created['PKey']}", headers=headers)).status_code == 200
    missing = await client.get(f"{STD}/{created['PKey']}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["message"].startswith(RST)


@pytest.mark.anyio
async def test_extension_fields_only_on_ext_and_custom_key_addresses_the_profile(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await create(
        client, headers, {"email": "e@example.com", "externalId": "crm-1", "cusLoyaltyTier": "gold"}, EXT
    )
    assert created["cusLoyaltyTier"] == "gold"
    std = await client.patch(f"{STD}/{created['PKey']}", json={"cusLoyaltyTier": "x"}, headers=headers)
    assert std.status_code == 500
    assert std.json()["message"] == f"{RST} 'cusLoyaltyTier' property is not valid for the 'profile' resource"
    by_key = await client.get(f"{EXT}/crm-1", headers=headers)
    assert by_key.status_code == 200
    assert by_key.json()["PKey"] == created["PKey"]
    patched = await client.patch(f"{EXT}/crm-1", json={"firstName": "Zoë"}, headers=headers)
    assert patched.json()["PKey"] == created["PKey"]
    change = await client.patch(f"{EXT}/crm-1", json={"externalId": "crm-2"}, headers=headers)
    assert change.status_code == 500
    assert (
        "RST-360012 Inconsistent operation on resource 'profile' – Cannot update key 'crm-1' to 'crm-2'."
        in (change.json()["message"])
    )
    assert (await client.get(f"{STD}/crm-1", headers=headers)).status_code == 404  # no custom keys on the std API


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"age": 3}, f"{RST} Cannot update the 'age' property that is read-only"),
        ({"cryptedId": "x"}, f"{RST} Cannot update the 'cryptedId' property that is read-only"),
        ({"zipCode": "75001"}, f"{RST} 'zipCode' property is not valid for the 'profile' resource"),
        (
            {"gender": "invalid"},
            f"{RST} The value 'invalid' is not valid for the 'nms:recipient:gender' enumeration of the '@gender' field",
        ),
        (  # the email dataPolicy: two addresses pasted into one field
            {"email": "ann@example.com; ann@work.example"},
            f"{RST} Invalid value 'ann@example.com; ann@work.example' for the 'email' property",
        ),
        ({"email": "ann.example.com"}, f"{RST} Invalid value 'ann.example.com' for the 'email' property"),
    ],
)
async def test_validation_errors_are_500_with_rst_messages(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    created = await create(client, headers, {"email": "f@example.com"})
    response = await client.patch(f"{STD}/{created['PKey']}", json=body, headers=headers)
    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": message}


@pytest.mark.anyio
async def test_undecodable_pkey_is_500_xtk_170036(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(f"{STD}/@O5iRp40EGA", headers=headers)
    assert response.status_code == 500
    assert response.json()["message"] == (
        f"{RST} 'O5iRp40EGA' attribute unknown (see definition of 'Profiles (nms:recipient)' schema). "
        "XTK-170036 Unable to parse expression '@id = @O5iRp40EGA'."
    )


@pytest.mark.anyio
async def test_duplicate_custom_key_is_500_pgs_220000(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await create(client, headers, {"email": "g@example.com", "externalId": "dup"})
    response = await client.post(STD, json={"email": "h@example.com", "externalId": "dup"}, headers=headers)
    assert response.status_code == 500
    assert f"{RST} A 'Profile' with the same key 'dup' already exists. PGS-220000" in response.json()["message"]


@pytest.mark.anyio
async def test_unknown_resource_is_404_rc_2003(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/acme/campaign/profileAndServices/cusNothing", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": f"{RST} Error rc=-2003"}


@pytest.mark.anyio
async def test_pkeys_are_stable_per_instance_and_differ_between_salts(headers: dict[str, str]) -> None:
    pkeys = []
    for salt in ("one", "one", "two"):
        app = create_app(make_settings(pkey_salt=salt, seed_profiles=3))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            from tests.emulators.campaign.conftest import CLIENT_ID, token_for

            token = await token_for(http)
            page = await http.get(STD, headers={"Authorization": f"Bearer {token}", "X-Api-Key": CLIENT_ID})
            pkeys.append([row["PKey"] for row in page.json()["content"]])
    assert pkeys[0] == pkeys[1]
    assert not set(pkeys[0]) & set(pkeys[2])


async def _walk(client: httpx.AsyncClient, headers: dict[str, str], url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while url:
        page = (await client.get(url, headers=headers)).json()
        rows += page["content"]
        url = (page.get("next") or {}).get("href", "")
    return rows


@pytest.mark.anyio
async def test_next_href_pages_through_every_row_once_with_opaque_cursors(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.post("/_emulator/seed", json={"profiles": 57})
    first = (await client.get(f"{STD}?_lineCount=10", headers=headers)).json()
    assert len(first["content"]) == 10
    assert first["serverSidePagination"] is True
    assert "_lineStart=%40" in first["next"]["href"]
    assert "_lineCount=10" in first["next"]["href"]
    rows = await _walk(client, headers, f"{BASE}{STD}?_lineCount=10")
    assert len({r["PKey"] for r in rows}) == len(rows) == 57
    default_page = (await client.get(STD, headers=headers)).json()
    assert len(default_page["content"]) == 25  # default _lineCount (§3.2)
    count = await client.get(first["count"]["href"], headers=headers)
    assert count.json() == {"count": 57}


@pytest.mark.anyio
async def test_order_last_modified_desc_walks_newest_first(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.post("/_emulator/seed", json={"profiles": 40})
    rows = await _walk(client, headers, f"{BASE}{STD}?_lineCount=7&_order=lastModified%20desc")
    stamps = [r["lastModified"] for r in rows]
    assert len(rows) == 40
    assert stamps == sorted(stamps, reverse=True)
    ascending = await _walk(client, headers, f"{BASE}{STD}?_lineCount=7&_order=email")
    assert [r["email"] for r in ascending] == sorted(r["email"] for r in rows)


@pytest.mark.anyio
async def test_big_table_needs_force_pagination_for_next(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.post("/_emulator/config", json={"bigTableThreshold": 20})
    await client.post("/_emulator/seed", json={"profiles": 30})
    plain = (await client.get(f"{STD}?_lineCount=10", headers=headers)).json()
    assert "next" not in plain
    assert plain["serverSidePagination"] is False
    forced = (await client.get(f"{STD}?_lineCount=10&_forcePagination=true", headers=headers)).json()
    assert "_forcePagination=true" in forced["next"]["href"]
    assert len(await _walk(client, headers, f"{BASE}{STD}?_lineCount=10&_forcePagination=true")) == 30


@pytest.mark.anyio
async def test_by_email_matches_a_percent_encoded_plus_address(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    wanted = await create(client, headers, {"email": "amy+news@mail.com"})
    await create(client, headers, {"email": "amy@mail.com"})
    page = (await client.get(f"{STD}/byEmail?email={quote('amy+news@mail.com', safe='')}", headers=headers)).json()
    assert [r["PKey"] for r in page["content"]] == [wanted["PKey"]]
    assert page["count"]["href"].endswith("/byEmail/_count?email=amy%2Bnews%40mail.com")


@pytest.mark.anyio
async def test_by_text_is_a_case_sensitive_prefix_search(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await create(client, headers, {"email": "x1@mail.com", "lastName": "O'Brien", "firstName": "Siobhán"})
    await create(client, headers, {"email": "obrien@mail.com", "lastName": "Smith"})
    prefix = quote("O'B")
    by_last = (await client.get(f"{STD}/byText?text={prefix}", headers=headers)).json()["content"]
    assert [r["lastName"] for r in by_last] == ["O'Brien"]
    lower = (await client.get(f"{STD}/byText?text=o", headers=headers)).json()["content"]
    assert [r["email"] for r in lower] == ["obrien@mail.com"]
    typed = await client.get(f"{STD}/byText?text={quote('Sio')}&filterType=firstName", headers=headers)
    assert [r["firstName"] for r in typed.json()["content"]] == ["Siobhán"]


@pytest.mark.anyio
async def test_custom_filter_by_external_id_exists_on_ext_only(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await create(client, headers, {"email": "k@mail.com", "externalId": "crm-9"})
    page = await client.get(f"{EXT}/byExternalId?externalId_parameter=crm-9", headers=headers)
    assert [r["PKey"] for r in page.json()["content"]] == [created["PKey"]]
    assert (await client.get(f"{STD}/byExternalId?externalId_parameter=crm-9", headers=headers)).status_code == 404


@pytest.mark.anyio
async def test_field_sub_path_lists_bare_values(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await create(client, headers, {"email": "amy.dakota@mail.com"})
    page = (await client.get(f"{STD}/email?_lineCount=10", headers=headers)).json()
    assert page["content"] == ["amy.dakota@mail.com"]
    pkeys = (await client.get(f"{STD}/PKey?_lineCount=1", headers=headers)).json()["content"]
    assert pkeys[0].startswith("@")


@pytest.mark.anyio
async def test_resource_type_metadata_lists_fields_and_filters(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    meta = (await client.get("/acme/campaign/profileAndServices/resourceType/profile", headers=headers)).json()
    assert meta["schema"] == "nms:recipient"
    assert meta["data"] == "/profileAndServices/profile/"
    assert meta["content"]["gender"]["values"]["male"]["value"] == 1
    assert "cusLoyaltyTier" not in meta["content"]
    filters = (await client.get(meta["filters"]["href"], headers=headers)).json()
    assert filters["byText"]["data"] == "/profileAndServices/profile/byText?text=$value&filterType=$value"
    ext_meta = (await client.get("/acme/campaign/profileAndServicesExt/resourceType/profile", headers=headers)).json()
    assert "cusLoyaltyTier" in ext_meta["content"]
    root = (await client.get("/acme/campaign/profileAndServicesExt/", headers=headers)).json()
    assert root["apiName"] == "resourceType"
    assert root["cusVehicle"]["type"] == "collection"


@pytest.mark.anyio
async def test_by_email_case_sensitivity_is_a_switch(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await create(client, headers, {"email": "Mixed.Case@Mail.com"})
    url = f"{STD}/byEmail?email={quote('mixed.case@mail.com', safe='')}"
    assert (await client.get(url, headers=headers)).json()["content"] == []
    await client.post("/_emulator/config", json={"emailFilterCaseSensitive": False})
    assert len((await client.get(url, headers=headers)).json()["content"]) == 1
