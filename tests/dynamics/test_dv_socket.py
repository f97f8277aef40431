"""The Dataverse client built exactly as in production (settings -> MSAL -> httpx) against the emulator served by
uvicorn over HTTPS with a locally generated CA: authentication, paging, delta, expiry and throttling on a real socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from crmbridge.dynamics.auth import MsalTokenProvider
from crmbridge.dynamics.client import DataverseClient
from crmbridge.dynamics.reader import TableRef
from crmbridge.exceptions import CheckpointExpired
from crmbridge.records import SourceChange, Tombstone

from .emulator_support import ServedEmulator, make_emulator, operator_over_https, served_over_https

CONTACTS = TableRef("contact", "contacts", "contactid")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedEmulator]:
    with served_over_https(make_emulator(seed_contacts=300, seed=11), tmp_path) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def served_big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with served_over_https(make_emulator(seed_contacts=12_000, seed=5), tmp_path_factory.mktemp("tls")) as emulator:
        yield emulator


def _contact_count(served: ServedEmulator) -> int:
    return int(served.app.state.emulator.org.storage.counts()["contact"])


@pytest.mark.anyio
async def test_msal_token_is_acquired_once_and_used_for_every_request(served: ServedEmulator) -> None:
    async with DataverseClient.from_settings(served.settings(page_size=100)) as client:
        me = await client.who_am_i()
        ids = [
            row["contactid"] async for page in client.iter_pages("contacts", select=["fullname"]) for row in page.rows
        ]
        tokens = client.session.tokens

    assert me.user_id
    assert len(ids) == len(set(ids)) == _contact_count(served) == 300
    assert isinstance(tokens, MsalTokenProvider)
    assert tokens.acquisitions == 1


@pytest.mark.anyio
async def test_delta_over_https_returns_exactly_the_changes_then_expires(served: ServedEmulator) -> None:
    async with DataverseClient.from_settings(served.settings(page_size=100)) as client:
        delta_link = None
        async for page in client.iter_changes(CONTACTS, ["lastname"]):
            delta_link = page.delta_link or delta_link
        assert delta_link is not None
        change = {"table": "contact", "updates": 3, "deletes": 2, "seed": 4}
        mutated = await operator_over_https(served, "POST", "mutate", change)

        changes = [
            c async for page in client.iter_changes(CONTACTS, ["lastname"], delta_link=delta_link) for c in page.changes
        ]

        await operator_over_https(served, "POST", "clock", {"advance_days": 8})
        with pytest.raises(CheckpointExpired):
            async for _ in client.iter_changes(CONTACTS, ["lastname"], delta_link=delta_link):
                pass

    assert {c.id for c in changes if isinstance(c, SourceChange)} == set(mutated["updated"])
    assert {c.id for c in changes if isinstance(c, Tombstone)} == set(mutated["deleted"])


@pytest.mark.anyio
async def test_throttling_storm_over_https_completes_with_zero_failed_operations(served: ServedEmulator) -> None:
    await operator_over_https(served, "PUT", "limits", {"max_requests": 20, "window_s": 1, "max_concurrent": 3})
    async with DataverseClient.from_settings(served.settings(max_concurrency=8)) as client:
        ids = [row["contactid"] async for row in client.reader.iter_rows("contacts", select=["contactid"])][:60]
        failures: list[BaseException] = []

        async def touch(contact_id: str) -> None:
            try:
                await client.update("contacts", contact_id, {"jobtitle": "Storm chaser"})
            except Exception as error:  # collected, so one failure does not hide the others
                failures.append(error)

        async with anyio.create_task_group() as group:
            for contact_id in ids:
                group.start_soon(touch, contact_id)
        limiter = client.session.limiter

    assert failures == []
    stats = (await operator_over_https(served, "GET", "stats"))["limits"]
    assert sum(stats["throttled"].values()) > 0
    assert limiter is not None
    assert limiter.peak_in_flight <= 8


@pytest.mark.slow
@pytest.mark.anyio
async def test_paging_through_12000_rows_over_https_returns_each_row_exactly_once(served_big: ServedEmulator) -> None:
    async with DataverseClient.from_settings(served_big.settings(page_size=5000)) as client:
        ids = [
            row["contactid"] async for page in client.iter_pages("contacts", select=["fullname"]) for row in page.rows
        ]

    assert len(ids) == len(set(ids)) == 12_000
