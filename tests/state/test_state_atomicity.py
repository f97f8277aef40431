"""A batch is committed with its checkpoint or not at all: after an exception, and after a SIGKILL mid-commit."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crmbridge.state import Batch, Checkpoint, Flow, LedgerEntry, LinkRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KILLED_WRITER = Path(__file__).with_name("killed_writer.py")


def seed(store: StateStore, count: int = 100) -> tuple[Checkpoint | None, list[LinkRow]]:
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links(LinkRow("contacts", f"id-{n:06}", f"key-{n}", "hash-before", T0) for n in range(count))
    batch.advance_to("delta-before", config_fingerprint="select-v1")
    store.commit(batch)
    return snapshot(store)


def snapshot(store: StateStore) -> tuple[Checkpoint | None, list[LinkRow]]:
    return store.checkpoint(Flow.TABLES, "contacts"), list(store.iter_links("contacts", include_deleted=True))


def test_a_batch_that_fails_midway_leaves_checkpoint_and_links_untouched(store: StateStore) -> None:
    before = seed(store)
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links(LinkRow("contacts", f"id-{n:06}", "key", "hash-after", T0) for n in range(50, 500))
    batch.mark_deleted("contacts", ["id-000001"], T0)
    # Written after the links: a NOT NULL violation makes the database refuse the batch halfway through.
    batch.record_events([LedgerEntry("k", "s", None, "open", T0, "a", T0)])  # type: ignore[arg-type]
    batch.advance_to("delta-after", config_fingerprint="select-v1")

    with pytest.raises(sa.exc.IntegrityError):
        store.commit(batch)

    assert snapshot(store) == before
    assert store.ledger_contains(["k"]) == set()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline().strip()


def test_a_process_killed_inside_its_commit_leaves_checkpoint_and_links_untouched(state_url: str) -> None:
    with StateStore.open(state_url) as store:
        before = seed(store)

    with subprocess.Popen(
        [sys.executable, str(KILLED_WRITER), state_url, "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        line = _read_line(child, timeout=120)
        if line != "inside-transaction":
            child.kill()
            _, errors = child.communicate(timeout=30)
            pytest.fail(f"the child never reached its commit: {line!r} {errors}")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with StateStore.open(state_url) as store:
        assert snapshot(store) == before
        assert len(before[1]) == 100


@pytest.fixture
def writer_paused_in_commit() -> Iterator[tuple[threading.Event, threading.Event]]:
    """(inside, release): the thread named "state-writer" stops right before COMMIT until ``release`` is set."""
    inside, release = threading.Event(), threading.Event()

    def hold(_connection: Connection) -> None:
        if threading.current_thread().name == "state-writer":
            inside.set()
            release.wait(timeout=30)

    sa.event.listen(Engine, "commit", hold)
    try:
        yield inside, release
    finally:
        release.set()
        sa.event.remove(Engine, "commit", hold)


def test_a_reader_is_not_blocked_by_a_writer_inside_its_commit_and_sees_the_previous_state(
    state_url: str, writer_paused_in_commit: tuple[threading.Event, threading.Event]
) -> None:
    inside, release = writer_paused_in_commit
    with StateStore.open(state_url) as writer, StateStore.open(state_url) as reader:
        before = seed(writer)
        batch = Batch(Flow.TABLES, "contacts")
        batch.upsert_links(LinkRow("contacts", f"id-{n:06}", "k", "hash-after", T0) for n in range(3000))
        batch.advance_to("delta-after", config_fingerprint="select-v1")
        thread = threading.Thread(target=writer.commit, args=(batch,), name="state-writer")
        thread.start()
        try:
            assert inside.wait(timeout=30)
            started = time.monotonic()
            assert snapshot(reader) == before
            assert time.monotonic() - started < 5  # read from the last committed snapshot, not after a lock wait
        finally:
            release.set()
            thread.join(timeout=30)
        checkpoint, links = snapshot(reader)
        assert checkpoint is not None
        assert checkpoint.value == "delta-after"
        assert len(links) == 3000
