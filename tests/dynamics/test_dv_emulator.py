"""The Dataverse client against the emulator in-process (ASGI transport): paging, delta, expiry, $batch semantics,
bulk writes, metadata provisioning, permissions and a throttling storm.

Expected values come from the emulator's operator routes (what it seeded, mutated, counts), never from the client.
"""

from __future__ import annotations

import uuid

import anyio
import pytest
from starlette.applications import Starlette

from crmbridge.dynamics.batch import BatchOperation
from crmbridge.dynamics.client import DataverseClient
from crmbridge.dynamics.metadata import ActivityTableSpec, ColumnSpec
from crmbridge.dynamics.reader import TableRef
from crmbridge.emulators.dynamics import DEFAULT_CLIENT
from crmbridge.emulators.dynamics.auth import ClientApp
from crmbridge.exceptions import CheckpointExpired, PermissionDenied
from crmbridge.records import SourceChange, Tombstone

from .emulator_support import in_process_client, make_emulator, operator

CONTACTS = TableRef("contact", "contacts", "contactid")
TASKS = TableRef("task", "tasks", "activityid")


@pytest.fixture(scope="module")
def big_org() -> Starlette:
    """12,000 contacts, seeded once for the module and never modified by its tests."""
    return make_emulator(seed_contacts=12_000, seed=7)


@pytest.fixture
def small_org() -> Starlette:
    return make_emulator(seed_contacts=60, seed=3)


async def _contact_ids(app: Starlette) -> set[str]:
    emulator = app.state.emulator
    table = emulator.org.storage.schema.tables["contact"].sql_name
    rows = emulator.org.storage.query(f"SELECT contactid AS id FROM {table}", [])  # noqa: S608 - fixed names
    return {str(row["id"]) for row in rows}


@pytest.mark.anyio
async def test_paging_through_12000_rows_returns_each_row_exactly_once(big_org: Starlette) -> None:
    async with in_process_client(big_org, page_size=1000) as client:
        seen: list[str] = []
        pages = 0
        async for page in client.iter_pages("contacts", select=["fullname"]):
            pages += 1
            seen.extend(row["contactid"] for row in page.rows)

    assert pages == 12
    assert len(seen) == 12_000
    assert set(seen) == await _contact_ids(big_org)


async def _baseline(client: DataverseClient) -> tuple[set[str], str]:
    ids: set[str] = set()
    delta_link = None
    async for page in client.reader.iter_changes(CONTACTS, ["lastname", "telephone1"], page_size=25):
        ids.update(change.id for change in page.changes)
        if page.delta_link:
            delta_link = page.delta_link
        else:
            assert page.next_link is not None  # resumable after every page but the last
    assert delta_link is not None
    return ids, delta_link


@pytest.mark.anyio
async def test_delta_after_updates_and_deletes_returns_exactly_those(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        ids, delta_link = await _baseline(client)
        assert len(ids) == 60
        change = {"table": "contact", "updates": 4, "deletes": 3, "seed": 1}
        mutated = await operator(small_org, "POST", "mutate", change)
        pages = [page async for page in client.iter_changes(CONTACTS, ["lastname"], delta_link=delta_link)]

    changes = [c for page in pages for c in page.changes]

    assert {c.id for c in changes if isinstance(c, SourceChange)} == set(mutated["updated"])
    assert {c.id for c in changes if isinstance(c, Tombstone)} == set(mutated["deleted"])
    assert len(changes) == 7


@pytest.mark.anyio
async def test_expired_delta_token_raises_checkpoint_expired(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        _, delta_link = await _baseline(client)
        await operator(small_org, "POST", "clock", {"advance_days": 8})  # retention is 7 days
        with pytest.raises(CheckpointExpired):
            async for _ in client.iter_changes(CONTACTS, ["lastname"], delta_link=delta_link):
                pass
        # The access token expired with the clock too: the client re-authenticated instead of stopping.
        assert client.session.tokens.fetched == 2  # type: ignore[attr-defined]


def _task_operations(count: int, bad: int) -> list[BatchOperation]:
    return [
        BatchOperation("POST", "tasks", {"subject": ("x" * 500) if i == bad else f"call back {i}"}, record_key=str(i))
        for i in range(count)
    ]


def _task_count(app: Starlette) -> int:
    return int(app.state.emulator.org.storage.counts()["task"])


@pytest.mark.anyio
async def test_change_set_with_one_failing_operation_is_rolled_back_entirely(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        results = await client.batch.write(_task_operations(5, bad=2), atomic=True, split=False)

    assert [r.ok for r in results] == [False] * 5
    assert _task_count(small_org) == 0


@pytest.mark.anyio
async def test_change_set_split_writes_all_but_the_failing_operation(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        results = await client.write_batch(_task_operations(5, bad=2), atomic=True)

    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].error is not None
    assert results[2].error.details is not None
    assert results[2].error.details.code == "0x80044331"
    assert _task_count(small_org) == 4
    assert all(uuid.UUID(r.id or "") for r in results if r.ok)


@pytest.mark.anyio
async def test_continue_on_error_applies_the_other_operations(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        results = await client.write_batch(_task_operations(5, bad=0), atomic=False)

    assert [r.ok for r in results] == [False, True, True, True, True]
    assert _task_count(small_org) == 4


@pytest.mark.anyio
async def test_unregistered_application_user_is_told_to_become_one() -> None:
    outsider = ClientApp("11111111-0000-0000-0000-000000000001", "outsider-secret", DEFAULT_CLIENT.tenant, False)
    app = make_emulator(clients=[DEFAULT_CLIENT, outsider])

    async with in_process_client(app, client_id=outsider.client_id, secret=outsider.client_secret) as client:
        with pytest.raises(PermissionDenied, match="not an application user"):
            await client.who_am_i()


EVENT_TABLE = ActivityTableSpec(
    schema_name="cmb_EmailOpen",
    display_name="Email open",
    plural_display_name="Email opens",
    columns=(
        ColumnSpec("cmb_EventKey", "string", max_length=100),
        ColumnSpec("cmb_OccurredOn", "datetime"),
        ColumnSpec("cmb_TrackingUrl", "memo"),
    ),
    alternate_key=("cmb_eventkey",),
)


@pytest.mark.anyio
async def test_activity_table_is_provisioned_once_and_then_left_alone(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        first = await client.metadata.ensure_activity_table(EVENT_TABLE)
        second = await client.metadata.ensure_activity_table(EVENT_TABLE)
        keys = await client.metadata.alternate_keys("cmb_emailopen")
        regarding = await client.metadata.regarding_navigation_property("cmb_emailopen", "contact")

    assert first.created_table
    assert first.created_columns == ("cmb_eventkey", "cmb_occurredon", "cmb_trackingurl")
    assert first.created_keys == ("cmb_emailopen_altkey",)
    assert not second.changed
    assert second.table.is_activity
    assert [k.attributes for k in keys] == [("cmb_eventkey",)]
    assert regarding == "regardingobjectid_contact_cmb_emailopen"


@pytest.mark.anyio
async def test_bulk_upsert_by_alternate_key_is_idempotent_and_isolates_a_bad_row(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        table = (await client.metadata.ensure_activity_table(EVENT_TABLE)).table.ref
        rows = [
            ({"cmb_eventkey": f"evt-{i:04d}"}, {"subject": "x" * 1000 if i == 7 else f"Opened newsletter {i}"})
            for i in range(20)
        ]
        rows.append(({"cmb_eventkey": "sha256:abc"}, {"subject": "a key value Dataverse refuses in a URL"}))
        first = await client.writer.upsert_multiple(table, rows)
        again = await client.writer.upsert_multiple(table, rows)

    assert [r.index for r in first if not r.ok] == [7, 20]
    assert [r.index for r in again if not r.ok] == [7, 20]
    assert small_org.state.emulator.org.storage.counts()["cmb_emailopen"] == 19


@pytest.mark.anyio
async def test_metadata_reports_change_tracking_types_and_labels(small_org: Starlette) -> None:
    async with in_process_client(small_org) as client:
        tables = {t.logical_name: t for t in await client.metadata.tables()}
        contact = await client.metadata.table("contact")
        missing = await client.metadata.table("new_nosuchtable")
        attributes = {a.logical_name: a for a in await client.metadata.attributes("contact")}
        labels = await client.metadata.option_set("contact", "statecode", attributes["statecode"].attribute_type)

    assert contact is not None
    assert tables["contact"] == contact
    assert tables["task"].is_activity
    assert (contact.entity_set, contact.primary_id, contact.change_tracking) == ("contacts", "contactid", True)
    assert missing is None
    assert attributes["donotbulkemail"].attribute_type == "Boolean"
    assert labels == {0: "Active", 1: "Inactive"}


@pytest.mark.anyio
async def test_throttling_storm_completes_with_zero_failed_operations(small_org: Starlette) -> None:
    await operator(small_org, "PUT", "limits", {"max_requests": 15, "window_s": 1, "max_concurrent": 3})
    ids = sorted(await _contact_ids(small_org))[:45]
    failures: list[BaseException] = []

    async with in_process_client(small_org, max_concurrency=6) as client:

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
    stats = (await operator(small_org, "GET", "stats"))["limits"]
    assert sum(stats["throttled"].values()) > 0  # the storm did hit the limits
    assert limiter is not None
    assert limiter.peak_in_flight <= 6
    storage = small_org.state.emulator.org.storage
    table = storage.schema.tables["contact"].sql_name
    rows = storage.query(f"SELECT COUNT(*) AS n FROM {table} WHERE jobtitle = ?", ["Storm chaser"])  # noqa: S608
    assert rows[0]["n"] == 45


@pytest.mark.anyio
@pytest.mark.parametrize("atomic", [True, False])
async def test_batch_upserts_by_id_replay_cleanly_and_deleting_a_gone_row_is_not_an_error(
    small_org: Starlette, atomic: bool
) -> None:
    ids = [str(uuid.UUID(int=n + 1)) for n in range(3)]
    upserts = [BatchOperation.upsert("tasks", row_id, {"subject": f"task {row_id[-1]}"}) for row_id in ids]
    deletes = [BatchOperation.delete("tasks", ids[0])] * 2

    async with in_process_client(small_org) as client:
        first = await client.write_batch(upserts, atomic=atomic)
        replay = await client.write_batch(upserts, atomic=atomic)
        removed = await client.write_batch(deletes, atomic=atomic)

    assert all(r.ok for r in [*first, *replay, *removed])
    assert _task_count(small_org) == 2


@pytest.mark.anyio
async def test_read_resumed_from_a_stored_next_link_returns_the_remaining_rows_once(small_org: Starlette) -> None:
    async with in_process_client(small_org) as crashed:
        pages = crashed.reader.iter_changes(CONTACTS, ["lastname"], page_size=25)
        first = await anext(pages)
        await pages.aclose()  # the process "dies" after committing page 1 and its next_link
    assert first.next_link is not None

    async with in_process_client(small_org) as resumed:
        rest = [
            p
            async for p in resumed.reader.iter_changes(
                CONTACTS, ["lastname"], resume_next_link=first.next_link, page_size=25
            )
        ]

    ids = [c.id for page in [first, *rest] for c in page.changes]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == await _contact_ids(small_org)
    assert rest[-1].delta_link is not None


@pytest.mark.anyio
async def test_event_activities_upserted_by_deterministic_id_land_on_the_contact_and_replay_cleanly(
    small_org: Starlette,
) -> None:
    contact_id = sorted(await _contact_ids(small_org))[0]
    async with in_process_client(small_org) as client:
        table = (await client.metadata.ensure_activity_table(EVENT_TABLE)).table.ref
        bind = await client.metadata.regarding_navigation_property(table.logical_name, "contact")
        rows = [
            (
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"event-{n}")),
                {"subject": f"Opened newsletter {n}", f"{bind}@odata.bind": f"/contacts({contact_id})"},
            )
            for n in range(5)
        ]
        first = await client.upsert_multiple(table, rows)
        replay = await client.upsert_multiple(table, rows)
        stored = await client.get(table.entity_set, rows[0][0], select=["subject", "_regardingobjectid_value"])

    assert all(r.ok for r in [*first, *replay])
    assert small_org.state.emulator.org.storage.counts()["cmb_emailopen"] == 5
    assert stored is not None
    assert stored["_regardingobjectid_value"] == contact_id
