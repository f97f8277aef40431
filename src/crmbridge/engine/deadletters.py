"""Dead letters the operator acts on: retry (re-read the source row, write it through the flow) and drop.

A table retry never replays the stored payload: it reads the row from Dynamics as it is now and hands it to the
table flow's own decide/write/commit path, so newer data is never overwritten by an old payload. A row deleted in
Dynamics meanwhile is handled like a delete in a pass. An event never changes, so an events retry writes the stored
event again under its deterministic id (event_retry.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crmbridge.engine.adapters import DataverseActivitySink, DataverseChangeFeed
from crmbridge.engine.decide import Outcome
from crmbridge.engine.event_retry import NO_EVENTS, retry_event_letters
from crmbridge.engine.events import EventsFlow
from crmbridge.engine.runner import Runner
from crmbridge.state import DeadLetter, DeadLetterStatus, Flow, StateStore

__all__ = ["RetryResult", "drop_letters", "retry_letters"]


@dataclass(frozen=True, slots=True)
class RetryResult:
    letter_id: int
    outcome: str  # resolved | failed | parked | skipped
    detail: str


def _unretryable(
    letter_id: int, letter: DeadLetter | None, mappings: set[str], events_enabled: bool
) -> RetryResult | None:
    if letter is None:
        return RetryResult(letter_id, "skipped", "no dead letter with this id")
    if letter.status in (DeadLetterStatus.DROPPED, DeadLetterStatus.RESOLVED):
        return RetryResult(letter_id, "skipped", f"already {letter.status.value}")
    if letter.flow is Flow.EVENTS:
        return None if events_enabled else RetryResult(letter_id, "skipped", "the events flow is not enabled")
    if letter.flow is not Flow.TABLES:
        # Opt-outs are merged again by the next pass.
        return RetryResult(letter_id, "skipped", f"{letter.flow.value} letters are not retried row by row")
    if letter.mapping not in mappings:
        return RetryResult(letter_id, "skipped", f"mapping {letter.mapping!r} is not enabled in this config")
    return None


async def retry_letters(runner: Runner, letter_ids: Sequence[int]) -> list[RetryResult]:
    """Retry these dead letters; a letter is resolved when its row or event is written (or has nothing to write)."""
    store = runner.services.store
    mappings = {m.name: m for m in runner.config.mappings if m.enabled}
    events = runner.config.events
    results: list[RetryResult] = []
    by_mapping: dict[str, list[DeadLetter]] = {}
    by_scope: dict[str, list[DeadLetter]] = {}
    for letter_id in letter_ids:
        letter = store.dead_letters.get(letter_id)
        refused = _unretryable(letter_id, letter, set(mappings), events is not None and events.enabled)
        if refused is not None:
            results.append(refused)
        elif letter is not None:
            (by_scope if letter.flow is Flow.EVENTS else by_mapping).setdefault(letter.mapping, []).append(letter)
    for scope, letters in by_scope.items():
        assert events is not None
        # A flow under the letters' own scope, so a refusal updates the same letter; it only writes, never reads.
        sink = DataverseActivitySink(runner.services.dataverse)
        writer = EventsFlow(events, NO_EVENTS, sink, store, scope=scope)
        done = await retry_event_letters(writer, letters)
        results += [RetryResult(letter_id, o.outcome, o.detail) for letter_id, o in done.items()]
    for name, letters in by_mapping.items():
        mapping = mappings[name]
        flow = await runner.tables_flow(mapping)
        feed = DataverseChangeFeed(runner.services.dataverse, await runner.table_ref(mapping))
        ids = [letter.record_key for letter in letters]
        current = await feed.fetch_rows(ids, flow.spec.columns)
        outcomes = await flow.write_rows({row_id: current.get(row_id) for row_id in ids})
        results += _settle(store, letters, outcomes)
    return sorted(results, key=lambda r: r.letter_id)


def _settle(store: StateStore, letters: Sequence[DeadLetter], outcomes: dict[str, Outcome]) -> list[RetryResult]:
    results = []
    for letter in letters:
        assert letter.id is not None
        outcome = outcomes[letter.record_key]
        if outcome is Outcome.FAIL:
            # The flow recorded the new failure on the same letter (attempts + 1, reason updated); it stays open.
            refreshed = store.dead_letters.get(letter.id)
            reason = refreshed.reason if refreshed is not None else "refused again"
            results.append(RetryResult(letter.id, "failed", reason))
        elif outcome is Outcome.PARK:
            reason = "retried: waiting for its parent; written when the parent lands"
            store.dead_letters.mark([letter.id], DeadLetterStatus.RESOLVED, reason)
            results.append(RetryResult(letter.id, "parked", "waiting for its parent; written when the parent lands"))
        else:
            # A write already resolved it in the flow's own commit; a skip or filter-out is resolved here.
            store.dead_letters.mark([letter.id], DeadLetterStatus.RESOLVED, f"retried: {outcome.value}")
            results.append(RetryResult(letter.id, "resolved", outcome.value))
    return results


def drop_letters(store: StateStore, letter_ids: Sequence[int]) -> int:
    """Mark these dead letters dropped (kept for the record, never retried); returns how many changed."""
    return store.dead_letters.mark(letter_ids, DeadLetterStatus.DROPPED)
