"""What both emulators hold, read through their public APIs with plain httpx (never crmbridge's own clients).

Used as the oracle of the fault matrix (in-process apps) and the shutdown test (emulators as child processes).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

DATAVERSE_API = "/api/data/v9.2"


async def dataverse_token(http: httpx.AsyncClient, tenant: str, client_id: str, secret: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": f"{str(http.base_url).rstrip('/')}/.default",
    }
    response = await http.post(f"/{tenant}/oauth2/v2.0/token", data=form)
    response.raise_for_status()
    return str(response.json()["access_token"])


async def dataverse_rows(http: httpx.AsyncClient, token: str, entity_set: str, select: str) -> list[dict[str, Any]]:
    """Every row of an entity set, following ``@odata.nextLink``."""
    headers = {"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=5000", "Accept": "application/json"}
    url: str | None = f"{DATAVERSE_API}/{entity_set}?$select={select}"
    rows: list[dict[str, Any]] = []
    while url is not None:
        response = await http.get(url, headers=headers)
        response.raise_for_status()
        body = response.json()
        rows += body["value"]
        url = body.get("@odata.nextLink")
    return rows


async def campaign_token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": "AdobeID,openid,campaign_sdk",
    }
    response = await http.post("/ims/token/v3", data=form)
    response.raise_for_status()
    return str(response.json()["access_token"])


async def campaign_rows(
    http: httpx.AsyncClient, token: str, client_id: str, resource: str, organization: str = "acme"
) -> list[dict[str, Any]]:
    """Every row of an ACS resource, following ``next.href`` (campaign-standard-api.md §3.1)."""
    headers = {"Authorization": f"Bearer {token}", "X-Api-Key": client_id}
    url: str | None = f"/{organization}/campaign/profileAndServicesExt/{resource}?_lineCount=500"
    rows: list[dict[str, Any]] = []
    while url is not None:
        response = await http.get(url, headers=headers)
        response.raise_for_status()
        body = response.json()
        rows += body["content"]
        url = (body.get("next") or {}).get("href")
    return rows


def duplicates(values: list[str]) -> dict[str, int]:
    """Values seen more than once, with their count."""
    return {value: count for value, count in Counter(values).items() if count > 1}
