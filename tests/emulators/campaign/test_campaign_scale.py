"""Keyset paging at scale (campaign-standard-api.md §3.2-3.4): slow, run with `pytest -m slow`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crmbridge.emulators.campaign import create_app
from tests.emulators.campaign.conftest import BASE, CLIENT_ID, make_settings, token_for

STD = "/acme/campaign/profileAndServices/profile"


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_hundred_thousand_profiles_walk_newest_first_without_gaps_or_repeats(tmp_path: Path) -> None:
    app = create_app(make_settings(db_path=str(tmp_path / "big.db"), seed_profiles=200_000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as http:
        headers = {"Authorization": f"Bearer {await token_for(http)}", "X-Api-Key": CLIENT_ID}
        first = (await http.get(f"{STD}?_lineCount=1000", headers=headers)).json()
        assert "next" not in first  # above the 100,000-row threshold (§3.2)
        seen: set[str] = set()
        previous = "9999"
        url: str | None = f"{STD}?_lineCount=1000&_order=lastModified%20desc&_forcePagination=true"
        while url:
            page = (await http.get(url, headers=headers)).json()
            for row in page["content"]:
                assert row["lastModified"] <= previous
                previous = row["lastModified"]
                seen.add(row["PKey"])
            url = (page.get("next") or {}).get("href")
        assert len(seen) == 200_000
