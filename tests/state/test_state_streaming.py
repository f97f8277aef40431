"""``iter_links`` reads page by page: the memory it needs does not grow with the number of links."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice

import pytest

from crmbridge.state import Batch, Flow, LinkRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fill(store: StateStore, count: int) -> None:
    for start in range(0, count, 5000):
        batch = Batch(Flow.TABLES, "contacts")
        batch.upsert_links(
            LinkRow("contacts", f"{n:08}", f"key-{n:08}", "0" * 64, T0, parent_keys={"account": f"ACC-{n % 97}"})
            for n in range(start, min(count, start + 5000))
        )
        store.commit(batch)


def _peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _count_streamed(store: StateStore, page_size: int) -> int:
    return sum(1 for _ in store.iter_links("contacts", page_size=page_size))


def _assert_streams_in_flat_memory(store: StateStore, count: int, page_size: int) -> None:
    _fill(store, count)
    _count_streamed(store, page_size)  # warm SQLAlchemy's statement caches outside the measurement

    streamed = _peak_bytes(lambda: _count_streamed(store, page_size))
    held = _peak_bytes(lambda: list(store.iter_links("contacts", page_size=page_size)))

    assert _count_streamed(store, page_size) == count
    # Holding every row is what a fetchall would cost; streaming must stay a small, fixed fraction of it.
    assert streamed * 4 < held, (streamed, held)


def test_iter_links_memory_stays_flat_over_2000_links(store: StateStore) -> None:
    _assert_streams_in_flat_memory(store, 2000, page_size=100)


@pytest.mark.slow
def test_iter_links_memory_stays_flat_over_200k_links(store: StateStore) -> None:
    _fill(store, 200_000)
    _count_streamed(store, 5000)  # warm-up

    first_tenth = _peak_bytes(lambda: sum(1 for _ in islice(store.iter_links("contacts"), 20_000)))
    everything = _peak_bytes(lambda: _count_streamed(store, 5000))

    # Ten times the rows, the same peak: one page of 5,000 rows is all that is ever held.
    assert everything < 1.5 * first_tenth, (everything, first_tenth)
    assert everything < 16 * 1024 * 1024
