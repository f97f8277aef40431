"""What a committed batch leaves in the store, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmbridge.state import (
    Batch,
    ConflictRecord,
    DeadLetter,
    DeadLetterStatus,
    Flow,
    LedgerEntry,
    LinkRow,
    OptOutState,
    OptOutWrite,
    ParkedChild,
    StateStore,
    UnmatchedEvent,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def link(source_id: str, *, values_hash: str = "h1", mapping: str = "contacts") -> LinkRow:
    return LinkRow(mapping, source_id, f"key-{source_id}", values_hash, T0, parent_keys={"account": "acc-1"})


def test_links_for_finds_5000_ids_at_once_and_omits_unlinked_ones(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links(link(f"id-{n:05}") for n in range(5000))
    store.commit(batch)

    asked = [f"id-{n:05}" for n in range(0, 5200)]
    found = store.links_for("contacts", asked)

    assert len(found) == 5000
    assert found["id-04999"] == link("id-04999")
    assert "id-05100" not in found
    assert store.links_for("accounts", asked) == {}


def test_upserting_a_link_again_replaces_its_hash_and_undeletes_it(store: StateStore) -> None:
    first = Batch(Flow.TABLES, "contacts")
    first.upsert_links([link("a"), link("b")])
    first.mark_deleted("contacts", ["a"], T0 + timedelta(minutes=1))
    store.commit(first)
    assert store.links_for("contacts", ["a"])["a"].deleted_at == T0 + timedelta(minutes=1)

    second = Batch(Flow.TABLES, "contacts")
    second.upsert_links([link("a", values_hash="h2")])
    store.commit(second)

    again = store.links_for("contacts", ["a", "b"])
    assert again["a"].values_hash == "h2"
    assert not again["a"].is_deleted
    assert again["b"].values_hash == "h1"


def test_a_link_refuses_an_acs_pkey_as_target_key() -> None:
    with pytest.raises(ValueError, match="PKey"):
        LinkRow("contacts", "id-1", "@UyAN_abcdef", "h", T0)


def test_iter_links_skips_deleted_links_unless_asked(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links(link(f"id-{n:03}") for n in range(25))
    batch.upsert_links([link("other", mapping="accounts")])
    batch.mark_deleted("contacts", ["id-003", "id-010"], T0)
    store.commit(batch)

    live = [row.source_id for row in store.iter_links("contacts", page_size=4)]
    everything = [row.source_id for row in store.iter_links("contacts", include_deleted=True, page_size=4)]

    assert live == [f"id-{n:03}" for n in range(25) if n not in (3, 10)]
    assert everything == [f"id-{n:03}" for n in range(25)]


def test_in_flight_sub_checkpoint_keeps_the_last_delta_link_until_the_read_completes(store: StateStore) -> None:
    assert store.checkpoint(Flow.TABLES, "contacts") is None
    for step, update in enumerate(["delta-1", "next-page-2", "delta-2"]):
        batch = Batch(Flow.TABLES, "contacts")
        if update.startswith("next"):
            batch.advance_in_flight(update, config_fingerprint="select-v1")
        else:
            batch.advance_to(update, config_fingerprint="select-v1")
        store.commit(batch)
        checkpoint = store.checkpoint(Flow.TABLES, "contacts")
        assert checkpoint is not None
        if step == 1:
            assert (checkpoint.value, checkpoint.in_flight) == ("delta-1", "next-page-2")
    assert checkpoint is not None
    assert (checkpoint.value, checkpoint.in_flight) == ("delta-2", None)
    assert checkpoint.is_bound_to("select-v1")
    assert not checkpoint.is_bound_to("select-v2")


def test_a_read_in_flight_under_a_changed_mapping_drops_the_old_delta_link(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "contacts")
    batch.advance_to("delta-for-old-select", config_fingerprint="select-v1")
    store.commit(batch)

    batch = Batch(Flow.TABLES, "contacts")
    batch.advance_in_flight("next-page-1", config_fingerprint="select-v2")
    store.commit(batch)

    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is not None
    assert (checkpoint.value, checkpoint.in_flight, checkpoint.config_fingerprint) == (
        None,
        "next-page-1",
        "select-v2",
    )


def test_a_batch_moves_its_checkpoint_only_once() -> None:
    batch = Batch(Flow.EVENTS, "journal")
    batch.advance_to("position-1")
    with pytest.raises(ValueError, match="once"):
        batch.advance_to("position-2")


def test_parking_a_child_again_counts_attempts_and_unparking_removes_it(store: StateStore) -> None:
    child = ParkedChild("vehicles", "v-1", "contacts", "c-1", {"name": "Zoë"}, T0, T0 + timedelta(minutes=5))
    for _ in range(2):
        batch = Batch(Flow.TABLES, "vehicles")
        batch.park(child)
        store.commit(batch)

    (due,) = store.pending_due(T0 + timedelta(minutes=5))
    assert (due.attempts, due.payload) == (1, {"name": "Zoë"})
    assert store.pending_due(T0) == []
    assert [c.source_id for c in store.parked_children_of("contacts", ["c-1", "c-2"])] == ["v-1"]

    batch = Batch(Flow.TABLES, "vehicles")
    batch.unpark("vehicles", "v-1")
    store.commit(batch)
    assert store.parked_children_of("contacts", ["c-1"]) == []


def _event(key: str, contact: str, kind: str, minute: int, bounce: str | None = None) -> LedgerEntry:
    at = T0 + timedelta(minutes=minute)
    return LedgerEntry(key, f"src-{key}", contact, kind, at, f"act-{key}", at, bounce)


def test_ledger_keeps_an_event_once_and_rolls_up_per_contact_whatever_the_order(store: StateStore) -> None:
    events = [
        _event("k1", "c-1", "send", 0),
        _event("k2", "c-1", "open", 30),
        _event("k3", "c-1", "open", 10),
        _event("k4", "c-1", "bounce", 5, "soft"),
        _event("k5", "c-2", "bounce", 7, "hard"),
    ]
    for chunk in (events[3:], events, events[:2]):  # reordered and replayed
        batch = Batch(Flow.EVENTS, "journal")
        batch.record_events(chunk)
        store.commit(batch)

    assert store.ledger_contains(["k1", "k5", "unknown"]) == {"k1", "k5"}
    rollups = store.contact_rollups(["c-1", "c-2", "c-3"])
    assert set(rollups) == {"c-1", "c-2"}
    one = rollups["c-1"]
    assert (one.sends, one.opens, one.clicks, one.bounces, one.hard_bounced) == (1, 2, 0, 1, False)
    assert one.last_opened == T0 + timedelta(minutes=30)
    assert one.last_sent == T0
    assert one.last_clicked is None
    assert rollups["c-2"].hard_bounced


def test_unmatched_event_seen_twice_is_one_row_with_two_attempts(store: StateStore) -> None:
    for minute in (0, 9):
        event = UnmatchedEvent(
            "ev-1", None, "zoë+x@example.org", {"raw": 1}, "no externalId", T0 + timedelta(minutes=minute)
        )
        batch = Batch(Flow.EVENTS, "journal")
        batch.keep_unmatched(event)
        store.commit(batch)
    assert store.info().unmatched_events == 1

    batch = Batch(Flow.EVENTS, "journal")
    batch.resolve_unmatched(["ev-1"])
    store.commit(batch)
    assert store.info().unmatched_events == 0


def test_a_record_failing_again_updates_its_dead_letter_and_reopens_it(store: StateStore) -> None:
    def fail(at: datetime, reason: str) -> None:
        batch = Batch(Flow.TABLES, "contacts")
        batch.dead_letter(DeadLetter(Flow.TABLES, "contacts", "id-7", {"email": "x"}, "RecordError", reason, at))
        store.commit(batch)

    fail(T0, "RST-360011 first")
    (letter,) = store.dead_letters.list()
    assert letter.id is not None
    assert store.dead_letters.mark([letter.id], DeadLetterStatus.RETRYING) == 1
    assert store.dead_letters.list() == []
    fail(T0 + timedelta(hours=1), "RST-360011 second")

    again = store.dead_letters.get(letter.id)
    assert again is not None
    assert (again.status, again.attempts, again.reason) == (DeadLetterStatus.OPEN, 2, "RST-360011 second")
    assert (again.first_failed_at, again.failed_at) == (T0, T0 + timedelta(hours=1))
    assert store.dead_letters.get(letter.id + 1000) is None


def test_dead_letters_page_by_id_and_filter_by_mapping(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "contacts")
    for n in range(5):
        mapping = "contacts" if n % 2 == 0 else "vehicles"
        batch.dead_letter(DeadLetter(Flow.TABLES, mapping, f"id-{n}", None, "RecordError", "bad", T0))
    store.commit(batch)

    first = store.dead_letters.list(limit=2)
    rest = store.dead_letters.list(after_id=first[-1].id or 0)
    assert [d.record_key for d in first + rest] == [f"id-{n}" for n in range(5)]
    assert [d.record_key for d in store.dead_letters.list(mapping="vehicles")] == ["id-1", "id-3"]
    assert store.dead_letters.list(flow=Flow.EVENTS) == []


def test_purge_forgets_old_personal_data_but_keeps_open_dead_letters_keys(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "contacts")
    for key, at in (("old-open", T0), ("old-dropped", T0), ("new-open", T0 + timedelta(days=40))):
        batch.dead_letter(DeadLetter(Flow.TABLES, "contacts", key, {"email": "a@b.c"}, "RecordError", "bad", at))
    batch.keep_unmatched(UnmatchedEvent("ev-old", None, "a@b.c", {"x": 1}, "no externalId", T0))
    batch.keep_unmatched(UnmatchedEvent("ev-new", None, "a@b.c", {"x": 1}, "no externalId", T0 + timedelta(days=40)))
    store.commit(batch)
    dropped = [d.id for d in store.dead_letters.list() if d.record_key == "old-dropped" and d.id is not None]
    store.dead_letters.mark(dropped, DeadLetterStatus.DROPPED)

    result = store.purge_personal_data(older_than=T0 + timedelta(days=30))

    assert (result.dead_letters_deleted, result.dead_letter_payloads_cleared, result.unmatched_deleted) == (1, 1, 1)
    remaining = {d.record_key: d.payload for d in store.dead_letters.list(status=None)}
    assert remaining == {"old-open": None, "new-open": {"email": "a@b.c"}}
    assert store.info().unmatched_events == 1


def test_optout_states_logs_and_conflicts_are_stored_per_contact_and_pair(store: StateStore) -> None:
    pair = "donotbulkemail:blackListEmail"
    state = OptOutState("c-1", pair, True, True, T0, True, T0 + timedelta(seconds=1), T0)
    conflict = ConflictRecord(
        T0, "c-1", pair, True, T0, False, T0 + timedelta(minutes=1), "campaign", "newer-acs", False
    )
    batch = Batch(Flow.OPTOUTS, pair)
    batch.set_optout_state(state)
    batch.log_optout_write(OptOutWrite(T0, "c-1", pair, "campaign", False, True, "dynamics changed", run_id="r-1"))
    batch.log_conflict(conflict)
    store.commit(batch)

    assert store.optout_states(pair, ["c-1", "c-2"]) == {"c-1": state}
    assert store.optout_states("other", ["c-1"]) == {}
    assert store.conflicts() == [conflict]
    assert store.conflicts(since=T0 + timedelta(minutes=1)) == []


def test_runs_record_their_outcome_and_show_in_info(store: StateStore) -> None:
    from crmbridge.state import RunStatus

    run_id = store.start_run(Flow.TABLES, "contacts")
    store.finish_run(run_id, RunStatus.SUCCEEDED, {"written": 3})
    (summary,) = store.info().scopes
    assert (summary.flow, summary.scope, summary.last_run_status) == ("tables", "contacts", "succeeded")
    with pytest.raises(KeyError):
        store.finish_run("no-such-run", RunStatus.FAILED)
