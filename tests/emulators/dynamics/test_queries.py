"""§3 Querying: $select, $filter, $orderby, $top, $count, $expand, annotations, paging cookies (§3.5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from .conftest import BASE, create_contact

MAXPAGE = "odata.maxpagesize={}"


async def seed_people(api: httpx.AsyncClient) -> dict[str, str]:
    account = await api.post(f"{BASE}accounts", json={"name": "Contoso Ltd"})
    account_id = account.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    ids = {
        "obryan": await create_contact(
            api,
            firstname="Seán",
            lastname="O'Bryan",
            emailaddress1="sean+news@example.com",
            gendercode=1,
            birthdate="1980-05-04",
            **{"parentcustomerid_account@odata.bind": f"/accounts({account_id})"},
        ),
        "muller": await create_contact(api, firstname="Jürgen", lastname="Müller", emailaddress1="jm@example.org"),
        "ada": await create_contact(api, firstname="Ada", lastname="Lovelace", donotbulkemail=True),
    }
    ids["account"] = account_id
    return ids


async def names(api: httpx.AsyncClient, query: str) -> list[str]:
    response = await api.get(f"{BASE}contacts?$select=lastname&{query}")
    assert response.status_code == 200, response.text
    return [row["lastname"] for row in response.json()["value"]]


@pytest.mark.anyio
async def test_select_returns_columns_etag_and_primary_key(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    body = (await api.get(f"{BASE}contacts?$select=fullname,emailaddress1&$filter=lastname eq 'O''Bryan'")).json()
    assert body["@odata.context"] == f"{BASE}$metadata#contacts(fullname,emailaddress1)"
    (row,) = body["value"]
    assert set(row) == {"@odata.etag", "fullname", "emailaddress1", "contactid"}
    assert row["fullname"] == "Seán O'Bryan"
    assert row["contactid"] == ids["obryan"]
    assert row["@odata.etag"].startswith('W/"')


@pytest.mark.anyio
async def test_unknown_select_name_is_a_400_with_the_documented_message(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{BASE}contacts?$select=LastName")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x0",
        "message": "Could not find a property named 'LastName' on type 'Microsoft.Dynamics.CRM.contact'.",
    }


@pytest.mark.anyio
async def test_entity_set_names_are_case_sensitive(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{BASE}Contacts")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x8006088a"
    assert response.json()["error"]["message"] == "Resource not found for the segment 'Contacts'."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("$filter=lastname eq 'o''bryan'", ["O'Bryan"]),  # doubled quote, case-insensitive
        ("$filter=contains(emailaddress1,'%2Bnews')", ["O'Bryan"]),
        ("$filter=startswith(lastname,'mü')", ["Müller"]),
        ("$filter=endswith(lastname,'lace')", ["Lovelace"]),
        ("$filter=emailaddress1 eq null", ["Lovelace"]),
        ("$filter=emailaddress1 ne null and not contains(lastname,'bryan')", ["Müller"]),
        ("$filter=donotbulkemail eq true or gendercode eq 1&$orderby=lastname", ["Lovelace", "O'Bryan"]),
        ("$filter=birthdate lt 1990-01-01", ["O'Bryan"]),
        ("$filter=createdon ge 2000-01-01T00:00:00Z&$orderby=lastname desc", ["O'Bryan", "Müller", "Lovelace"]),
        (
            '$filter=Microsoft.Dynamics.CRM.In(PropertyName=\'lastname\',PropertyValues=["Lovelace","Müller"])'
            "&$orderby=lastname",
            ["Lovelace", "Müller"],
        ),
    ],
)
async def test_filter_expressions(api: httpx.AsyncClient, query: str, expected: list[str]) -> None:
    await seed_people(api)
    assert await names(api, query) == expected


@pytest.mark.anyio
async def test_filter_on_lookup_value_accepts_quoted_and_unquoted_guids(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    assert await names(api, f"$filter=_parentcustomerid_value eq {ids['account']}") == ["O'Bryan"]
    assert await names(api, f"$filter=_parentcustomerid_value eq '{ids['account']}'") == ["O'Bryan"]


@pytest.mark.anyio
@pytest.mark.parametrize("option", ["$skip=1", "$search=ada"])
async def test_unsupported_query_options_are_refused(api: httpx.AsyncClient, option: str) -> None:
    response = await api.get(f"{BASE}contacts?$select=lastname&{option}")
    assert response.status_code == 400
    assert "is not supported" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_top_limits_rows_without_a_next_link(api: httpx.AsyncClient) -> None:
    await seed_people(api)
    body = (await api.get(f"{BASE}contacts?$select=lastname&$orderby=lastname&$top=2")).json()
    assert [r["lastname"] for r in body["value"]] == ["Lovelace", "Müller"]
    assert "@odata.nextLink" not in body


@pytest.mark.anyio
async def test_formatted_values_for_choices_booleans_and_lookups(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    formatted = "OData.Community.Display.V1.FormattedValue"
    headers = {"Prefer": f'odata.include-annotations="{formatted}"'}
    url = f"{BASE}contacts({ids['obryan']})?$select=gendercode,donotbulkemail,statecode,_parentcustomerid_value"
    response = await api.get(url, headers=headers)
    row = response.json()
    assert row[f"gendercode@{formatted}"] == "Male"
    assert row[f"donotbulkemail@{formatted}"] == "Allow"
    assert row[f"statecode@{formatted}"] == "Active"
    assert row[f"_parentcustomerid_value@{formatted}"] == "Contoso Ltd"
    assert response.headers["Preference-Applied"] == f'odata.include-annotations="{formatted}"'


@pytest.mark.anyio
async def test_expand_of_a_single_valued_lookup(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    url = f"{BASE}contacts?$select=lastname&$expand=parentcustomerid_account($select=name)&$orderby=lastname"
    rows = (await api.get(url)).json()["value"]
    expanded = {r["lastname"]: r["parentcustomerid_account"] for r in rows}
    assert expanded["Lovelace"] is None
    assert expanded["O'Bryan"]["name"] == "Contoso Ltd"
    assert expanded["O'Bryan"]["accountid"] == ids["account"]


@pytest.mark.anyio
async def test_single_row_property_and_conditional_get(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    row = await api.get(f"{BASE}contacts({ids['ada']})?$select=lastname")
    assert row.json()["@odata.context"] == f"{BASE}$metadata#contacts(lastname)/$entity"
    unchanged = await api.get(
        f"{BASE}contacts({ids['ada']})?$select=lastname", headers={"If-None-Match": row.headers["ETag"]}
    )
    assert unchanged.status_code == 304
    value = (await api.get(f"{BASE}contacts({ids['ada']})/lastname")).json()
    assert value["value"] == "Lovelace"
    missing = await api.get(f"{BASE}contacts(00000000-0000-0000-0000-0000000000ff)")
    assert missing.status_code == 404


@pytest.mark.anyio
async def test_alternate_key_must_be_declared(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{BASE}contacts(emailaddress1='jm@example.org')")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("The key in the request URI is not valid for resource")


async def read_all(api: httpx.AsyncClient, url: str, page: int) -> tuple[list[dict[str, Any]], list[str]]:
    headers = {"Prefer": MAXPAGE.format(page)}
    rows: list[dict[str, Any]] = []
    links: list[str] = []
    while url:
        response = await api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == MAXPAGE.format(page)
        body = response.json()
        rows += body["value"]
        url = body.get("@odata.nextLink", "")
        links += [url] if url else []
    return rows, links


@pytest.mark.anyio
async def test_paging_with_next_links_returns_every_row_once_in_order(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 230, "seed": 3})
    rows, links = await read_all(api, f"{BASE}contacts?$select=lastname,firstname&$orderby=lastname,firstname desc", 50)
    assert len(rows) == 230
    assert len({r["contactid"] for r in rows}) == 230
    unpaged = (await api.get(f"{BASE}contacts?$select=lastname,firstname&$orderby=lastname,firstname desc")).json()
    assert [r["contactid"] for r in rows] == [r["contactid"] for r in unpaged["value"]]
    assert len(links) == 4
    assert links[0].startswith(
        f"{BASE}contacts?$select=lastname,firstname&$orderby=lastname,firstname%20desc&$skiptoken="
    )
    token = links[0].split("$skiptoken=", 1)[1]
    assert token.startswith("%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22")
    assert token.endswith("%22%20istracking=%22False%22%20/%3E")
    assert "%253ccookie%2520page%253d%25221%2522%253e" in token
    assert 'pagenumber="5"' in unquote(links[-1])


@pytest.mark.anyio
async def test_count_is_capped_at_5000(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 5003, "accounts": 1, "vehicles_share": 0})
    limit_exceeded = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
    headers = {"Prefer": f'odata.maxpagesize=10,odata.include-annotations="{limit_exceeded}"'}
    body = (await api.get(f"{BASE}contacts?$select=lastname&$count=true", headers=headers)).json()
    assert body["@odata.count"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True
    plain = await api.get(f"{BASE}contacts/$count")
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert plain.content.decode("utf-8-sig") == "5000"


@pytest.mark.anyio
async def test_two_prefer_lines_count_as_one_list(api: httpx.AsyncClient) -> None:
    await seed_people(api)
    headers = [("Prefer", "odata.maxpagesize=2"), ("Prefer", 'odata.include-annotations="*"')]
    response = await api.get(f"{BASE}contacts?$select=lastname", headers=headers)
    assert response.headers["Preference-Applied"] == 'odata.maxpagesize=2,odata.include-annotations="*"'
    assert len(response.json()["value"]) == 2
    assert "@odata.nextLink" in response.json()


@pytest.mark.anyio
async def test_percent_encoded_key_segments_address_the_same_row(api: httpx.AsyncClient) -> None:
    ids = await seed_people(api)
    plain = (await api.get(f"{BASE}contacts({ids['ada']})?$select=lastname")).json()
    encoded = (await api.get(f"{BASE}contacts%28{ids['ada']}%29?$select=lastname")).json()
    assert encoded["lastname"] == plain["lastname"] == "Lovelace"
