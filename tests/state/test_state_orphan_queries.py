"""The reads behind cleaning up children of deleted parents, on both backends (parent keys live in a JSON column)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmbridge.state import Batch, Flow, LinkRow, RunStatus, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_children_of_finds_live_children_by_parent_key_per_link(store: StateStore) -> None:
    batch = Batch(Flow.TABLES, "vehicles")
    batch.upsert_links(
        [
            LinkRow("vehicles", "v1", "v1", "h", T0, parent_keys={"profile": "c1"}),
            LinkRow("vehicles", "v2", "v2", "h", T0, parent_keys={"profile": "c2", "account": "c1"}),
            LinkRow("vehicles", "v3", "v3", "h", T0, parent_keys=None),
            LinkRow("vehicles", "v4", "v4", "h", T0, parent_keys={"profile": "c1"}),
            LinkRow("parts", "p1", "p1", "h", T0, parent_keys={"profile": "c1"}),
        ]
    )
    batch.mark_deleted("vehicles", ["v4"], T0)
    store.commit(batch)

    assert [link.source_id for link in store.children_of("vehicles", "profile", ["c1", "c9"])] == ["v1"]
    assert [link.source_id for link in store.children_of("vehicles", "account", ["c1"])] == ["v2"]
    assert store.children_of("vehicles", "profile", []) == []


def test_deleted_links_since_and_the_last_successful_pass(state_url: str) -> None:
    times = iter([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(hours=3)])
    with StateStore.open(state_url, clock=lambda: next(times)) as store:
        batch = Batch(Flow.TABLES, "contacts")
        batch.upsert_links([LinkRow("contacts", c, c, "h", T0) for c in ("c1", "c2", "c3")])
        batch.mark_deleted("contacts", ["c1"], T0 + timedelta(minutes=5))
        batch.mark_deleted("contacts", ["c2"], T0 + timedelta(minutes=50))
        store.commit(batch)  # clock: T0
        assert store.last_success_started(Flow.TABLES, "vehicles") is None
        ok = store.start_run(Flow.TABLES, "vehicles")  # T0 + 1h
        store.finish_run(ok, RunStatus.SUCCEEDED)  # T0 + 2h
        store.start_run(Flow.TABLES, "vehicles")  # T0 + 3h, still running

        assert store.last_success_started(Flow.TABLES, "vehicles") == T0 + timedelta(hours=1)
        since = [link.source_id for link in store.deleted_links_since("contacts", T0 + timedelta(minutes=30))]
        everything = sorted(link.source_id for link in store.deleted_links_since("contacts", None))
    assert (since, everything) == (["c2"], ["c1", "c2"])
