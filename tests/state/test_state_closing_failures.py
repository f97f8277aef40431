"""A record written successfully closes its open dead letter and unmatched row in the same commit, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmbridge.state import (
    Batch,
    DeadLetter,
    DeadLetterStatus,
    Flow,
    LedgerEntry,
    LinkRow,
    StateStore,
    UnmatchedEvent,
    writes,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)


def _letter(flow: Flow, mapping: str, key: str) -> DeadLetter:
    return DeadLetter(flow, mapping, key, {"k": key}, "RecordError", "RST-360011 bad email", T0)


def _fail(store: StateStore, *letters: DeadLetter) -> None:
    batch = Batch(letters[0].flow, letters[0].mapping)
    for letter in letters:
        batch.dead_letter(letter)
    store.commit(batch)


def _by_key(store: StateStore) -> dict[tuple[str, str], DeadLetter]:
    return {(d.mapping, d.record_key): d for d in store.dead_letters.list(status=None)}


def test_a_later_successful_write_resolves_the_rows_letter_with_when_and_why(state_url: str) -> None:
    with StateStore.open(state_url, clock=lambda: T1) as store:
        _later_write_resolves(store)


def _later_write_resolves(store: StateStore) -> None:
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"), _letter(Flow.TABLES, "contacts", "c-2"))
    _fail(store, _letter(Flow.TABLES, "vehicles", "c-1"))  # same id, other mapping: not this row

    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links([LinkRow("contacts", "c-1", "c-1", "h", T1)])
    store.commit(batch)

    letters = _by_key(store)
    fixed = letters[("contacts", "c-1")]
    assert (fixed.status, fixed.closed_at, fixed.close_reason) == (
        DeadLetterStatus.RESOLVED,
        T1,
        "written by a later pass or retry",
    )
    assert letters[("contacts", "c-2")].status is DeadLetterStatus.OPEN
    assert letters[("vehicles", "c-1")].status is DeadLetterStatus.OPEN
    assert [d.record_key for d in store.dead_letters.list()] == ["c-2", "c-1"]


def test_a_deleted_row_resolves_its_letter_and_a_retrying_letter_is_closed_too(store: StateStore) -> None:
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"))
    (letter,) = store.dead_letters.list()
    assert letter.id is not None
    store.dead_letters.mark([letter.id], DeadLetterStatus.RETRYING)

    batch = Batch(Flow.TABLES, "contacts")
    batch.mark_deleted("contacts", ["c-1"], T1)
    store.commit(batch)

    closed = store.dead_letters.get(letter.id)
    assert closed is not None
    assert (closed.status, closed.close_reason) == (DeadLetterStatus.RESOLVED, "deleted; nothing left to write")


def test_a_record_refused_again_in_the_same_batch_stays_open(store: StateStore) -> None:
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"))
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links([LinkRow("contacts", "c-1", "c-1", "h", T1)])  # a rebaseline touches the failing row's link
    batch.dead_letter(_letter(Flow.TABLES, "contacts", "c-1"))
    store.commit(batch)

    (letter,) = store.dead_letters.list(status=None)
    assert (letter.status, letter.attempts, letter.closed_at) == (DeadLetterStatus.OPEN, 2, None)


def test_a_failure_after_resolution_reopens_the_letter_and_clears_when_and_why(store: StateStore) -> None:
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"))
    fixed = Batch(Flow.TABLES, "contacts")
    fixed.upsert_links([LinkRow("contacts", "c-1", "c-1", "h", T1)])
    store.commit(fixed)
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"))

    (letter,) = store.dead_letters.list()
    assert (letter.status, letter.closed_at, letter.close_reason) == (DeadLetterStatus.OPEN, None, None)


def test_an_event_written_under_any_scope_closes_its_letter_and_its_unmatched_row(store: StateStore) -> None:
    _fail(store, _letter(Flow.EVENTS, "journal", "sha256:e1"), _letter(Flow.EVENTS, "journal", "task:sha256:e1"))
    keep = Batch(Flow.EVENTS, "journal")
    keep.keep_unmatched(UnmatchedEvent("sha256:e2", "c-9", None, {}, "no Dynamics contact c-9", T0))
    store.commit(keep)

    batch = Batch(Flow.EVENTS, "journal:backfill")
    for key in ("sha256:e1", "sha256:e2"):
        batch.record_events([LedgerEntry(key, f"s-{key}", "c-9", "open", T0, f"a-{key}", T1)])
    store.commit(batch)

    letters = _by_key(store)
    assert letters[("journal", "sha256:e1")].status is DeadLetterStatus.RESOLVED
    assert letters[("journal", "sha256:e1")].close_reason == "event written to Dynamics"
    assert letters[("journal", "task:sha256:e1")].status is DeadLetterStatus.OPEN  # the task is another record
    assert store.info().unmatched_events == 0


def test_dropping_records_when_and_why_and_retrying_clears_them(store: StateStore) -> None:
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"))
    (letter,) = store.dead_letters.list()
    assert letter.id is not None
    store.dead_letters.mark([letter.id], DeadLetterStatus.DROPPED)
    dropped = store.dead_letters.get(letter.id)
    assert dropped is not None
    assert dropped.close_reason == "dropped by an operator"
    assert dropped.closed_at is not None

    store.dead_letters.mark([letter.id], DeadLetterStatus.RETRYING)
    retrying = store.dead_letters.get(letter.id)
    assert retrying is not None
    assert (retrying.closed_at, retrying.close_reason) == (None, None)


def test_many_open_letters_are_matched_in_the_database_with_the_same_result(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "_FEW_OPEN", 1)  # more open letters than are matched in memory
    _fail(store, _letter(Flow.TABLES, "contacts", "c-1"), _letter(Flow.TABLES, "contacts", "c-2"))
    _fail(store, _letter(Flow.TABLES, "vehicles", "c-1"))

    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links([LinkRow("contacts", "c-1", "c-1", "h", T1)])
    store.commit(batch)

    statuses = {key: letter.status for key, letter in _by_key(store).items()}
    assert statuses == {
        ("contacts", "c-1"): DeadLetterStatus.RESOLVED,
        ("contacts", "c-2"): DeadLetterStatus.OPEN,
        ("vehicles", "c-1"): DeadLetterStatus.OPEN,
    }
