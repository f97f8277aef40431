"""One store shared by many asyncio tasks (through worker threads), and two stores writing the same database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import anyio
import anyio.to_thread
import pytest

from crmbridge.state import Batch, Flow, LinkRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _batch(scope: str, count: int) -> Batch:
    batch = Batch(Flow.TABLES, scope)
    batch.upsert_links(LinkRow(scope, f"{scope}-{n}", f"K-{n}", "h", T0) for n in range(count))
    batch.advance_to(f"delta-{scope}")
    return batch


@pytest.mark.anyio
async def test_tasks_sharing_one_store_through_threads_all_commit(store: StateStore) -> None:
    scopes = [f"mapping-{n}" for n in range(8)]
    async with anyio.create_task_group() as group:
        for scope in scopes:
            group.start_soon(anyio.to_thread.run_sync, store.commit, _batch(scope, 300))

    for scope in scopes:
        checkpoint = store.checkpoint(Flow.TABLES, scope)
        assert checkpoint is not None
        assert checkpoint.value == f"delta-{scope}"
        assert len(store.links_for(scope, [f"{scope}-{n}" for n in range(300)])) == 300


def test_two_stores_on_one_database_commit_at_the_same_time_without_losing_a_batch(state_url: str) -> None:
    with StateStore.open(state_url) as first, StateStore.open(state_url) as second:
        errors: list[BaseException] = []

        def commit_many(store: StateStore, prefix: str) -> None:
            try:
                for n in range(10):
                    store.commit(_batch(f"{prefix}-{n}", 200))
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        threads = [
            threading.Thread(target=commit_many, args=(first, "a")),
            threading.Thread(target=commit_many, args=(second, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert errors == []
        scopes = {summary.scope: summary.links for summary in first.info().scopes}
        assert scopes == {f"{prefix}-{n}": 200 for prefix in "ab" for n in range(10)}
