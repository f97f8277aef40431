"""Jobs 1 and 2: Dynamics tables to Campaign resources. read a page → decide → write → commit with the checkpoint.

The checkpoint moves only in the same state transaction as the links of the page whose writes Campaign
acknowledged, so a crash replays at most one page, and the replay writes nothing new (upserts by business key).
The in-flight nextLink is stored after each page; the delta link replaces it after the last page. An expired
delta link re-baselines: a full read, then every linked row that the read did not see is treated as deleted.
A stop request (``should_stop``) ends the pass at the next page: the page in hand commits when all its writes were
sent, else it is abandoned whole (no new write starts, nothing of it commits) and the next start redoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmbridge.engine.decide import Decision, Outcome, ReadKind, decide
from crmbridge.engine.optout_merge import pair_key
from crmbridge.engine.orphans import settle_orphans
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.ports import ChangeFeed, ChangePage, RecordTarget
from crmbridge.engine.table_spec import TableSpec
from crmbridge.exceptions import CheckpointExpired, ProtocolError, RecordError
from crmbridge.mapping.values import parse_timestamp
from crmbridge.records import SourceChange, Tombstone
from crmbridge.state import Batch, DeadLetter, Flow, LinkRow, OptOutState, ParkedChild, RunStatus, StateStore

__all__ = ["PassStats", "ReadKind", "TablesFlow", "replay_in_flight"]

Clock = Callable[[], datetime]
StopCheck = Callable[[], bool]
_PARK_RETRY = timedelta(seconds=30)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassStats:
    """What one pass of one mapping did; shown by the CLI, stored in ``runs``, exported as metrics."""

    mapping: str
    kind: str = ""
    read: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    filtered: int = 0
    parked: int = 0
    failed: int = 0
    orphaned: int = 0  # rows whose parent crmbridge deleted in Campaign (deleted too, or kept: see orphans.py)
    pages: int = 0
    seconds: float = 0.0
    stopped: bool = False  # a stop request ended the pass early; the next pass resumes from its checkpoint
    samples: list[dict[str, Any]] = field(default_factory=list)  # dry-run diffs

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted

    def counts(self) -> dict[str, int]:
        names = ("read", "created", "updated", "deleted", "skipped", "filtered", "parked", "failed", "pages")
        return {name: int(getattr(self, name)) for name in (*names, "orphaned")}

    def count(self, outcome: Outcome) -> None:
        attribute = {
            Outcome.CREATE: "created",
            Outcome.UPDATE: "updated",
            Outcome.DELETE: "deleted",
            Outcome.SKIP: "skipped",
            Outcome.FILTERED: "filtered",
            Outcome.PARK: "parked",
            Outcome.FAIL: "failed",
        }[outcome]
        setattr(self, attribute, getattr(self, attribute) + 1)


@dataclass(frozen=True, slots=True)
class _ReadState:
    """What is stored as the in-flight sub-checkpoint: the read's kind, where it resumes, when it started."""

    kind: ReadKind
    next_link: str | None
    started: datetime
    delta_link: str | None = None  # rebaseline sweep: the new delta link to move to once the sweep is done

    def encode(self) -> str:
        return json.dumps(
            {
                "kind": self.kind.value,
                "next": self.next_link,
                "started": self.started.isoformat(),
                "delta": self.delta_link,
            }
        )

    @classmethod
    def decode(cls, text: str) -> _ReadState | None:
        try:
            data = json.loads(text)
            return cls(
                ReadKind(data["kind"]), data.get("next"), datetime.fromisoformat(data["started"]), data.get("delta")
            )
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable sub-checkpoint only costs a restart of the read


ProgressCallback = Callable[[PassStats], None]


class _Stopped(Exception):
    """A stop request ended the pass; whatever was not committed is redone by the next pass."""


def _never() -> bool:
    return False


def replay_in_flight(in_flight: str | None) -> bool:
    """Whether a stored sub-checkpoint is a replay that was interrupted (``crmbridge replay`` resumes it)."""
    state = _ReadState.decode(in_flight) if in_flight else None
    return state is not None and state.kind is ReadKind.REPLAY


class TablesFlow:
    """One mapping's pass: given its feed, target and store. Construct one per mapping."""

    def __init__(
        self,
        spec: TableSpec,
        feed: ChangeFeed,
        target: RecordTarget,
        store: StateStore,
        *,
        write_concurrency: int = 32,
        clock: Clock = _utc_now,
        progress: ProgressCallback | None = None,
        dry_run: bool = False,
        sample_diffs: int = 5,
        planned: PlannedLinks | None = None,
        should_stop: StopCheck = _never,
    ) -> None:
        self.spec = spec
        self.feed = feed
        self.target = target
        self.store = store
        self.write_concurrency = write_concurrency
        self.clock = clock
        self.progress = progress
        self.dry_run = dry_run
        self.sample_diffs = sample_diffs
        # Dry runs only: what this and earlier mappings of the same dry run would have linked.
        self.planned = planned if planned is not None else PlannedLinks()
        self.should_stop = should_stop

    # --- the pass -------------------------------------------------------------------------------------------

    async def run_pass(self, *, replay: bool = False) -> PassStats:
        """One pass: resume or start a read, write what changed, commit page by page."""
        stats = PassStats(self.spec.name)
        started = asyncio.get_running_loop().time()
        run_id = None if self.dry_run else self.store.start_run(Flow.TABLES, self.spec.name)
        try:
            read, delta_link = self._plan_read(replay)
            stats.kind = read.kind.value
            await self._retry_parked(stats)
            await settle_orphans(self, stats)
            await self._read_with_recovery(read, delta_link, stats)
        except _Stopped:
            stats.stopped = True
            stats.seconds = asyncio.get_running_loop().time() - started
            if run_id is not None:
                self.store.finish_run(run_id, RunStatus.INTERRUPTED, stats.counts(), error="stopped")
            return stats
        except BaseException as error:
            stats.seconds = asyncio.get_running_loop().time() - started
            if run_id is not None:
                status = RunStatus.INTERRUPTED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
                self.store.finish_run(run_id, status, stats.counts(), error=str(error) or type(error).__name__)
            raise
        stats.seconds = asyncio.get_running_loop().time() - started
        if run_id is not None:
            self.store.finish_run(run_id, RunStatus.SUCCEEDED, stats.counts())
        return stats

    def _plan_read(self, replay: bool) -> tuple[_ReadState, str | None]:
        now = self.clock()
        checkpoint = self.store.checkpoint(Flow.TABLES, self.spec.name)
        if checkpoint is None:
            return _ReadState(ReadKind.INITIAL, None, now), None
        if replay or not checkpoint.is_bound_to(self.spec.fingerprint):
            if checkpoint.in_flight and checkpoint.is_bound_to(self.spec.fingerprint):
                resumed = _ReadState.decode(checkpoint.in_flight)
                if resumed is not None and resumed.kind is ReadKind.REPLAY and not replay:
                    return resumed, checkpoint.value
            return _ReadState(ReadKind.REPLAY, None, now), checkpoint.value
        if checkpoint.in_flight:
            resumed = _ReadState.decode(checkpoint.in_flight)
            if resumed is not None:
                return resumed, checkpoint.value
        if checkpoint.value is None:
            return _ReadState(ReadKind.INITIAL, None, now), None
        return _ReadState(ReadKind.DELTA, None, now), checkpoint.value

    async def _read_with_recovery(self, read: _ReadState, delta_link: str | None, stats: PassStats) -> None:
        if read.delta_link is not None:  # a re-baseline that crashed during its sweep
            await self._sweep_unseen(read, stats)
            return
        try:
            await self._read(read, delta_link, stats)
        except CheckpointExpired:
            if read.next_link is not None:
                # A stored nextLink was refused: restart this read; hashes skip what was already written.
                await self._read_with_recovery(_ReadState(read.kind, None, read.started), delta_link, stats)
                return
            if read.kind is not ReadKind.DELTA:
                raise
            # The delta link expired: full read, then whatever the read did not see was deleted meanwhile.
            stats.kind = ReadKind.REBASELINE.value
            await self._read_with_recovery(_ReadState(ReadKind.REBASELINE, None, self.clock()), None, stats)

    async def _read(self, read: _ReadState, delta_link: str | None, stats: PassStats) -> None:
        pages = self.feed.read(
            columns=self.spec.columns,
            delta_link=delta_link if read.kind is ReadKind.DELTA else None,
            next_link=read.next_link,
        )
        # aclosing: a stop or an error cancels the page being prefetched at once, not when the generator is collected.
        async with contextlib.aclosing(_prefetched(pages)) as prefetched:
            async for page in prefetched:
                await self._process_page(page, read, stats)
                if page.next_link is not None and self.should_stop():
                    raise _Stopped  # the page is committed with its nextLink: the next start resumes after it
                if page.next_link is None:
                    if page.delta_link is None:
                        raise ProtocolError(f"mapping {self.spec.name}: the last page of a read carried no delta link")
                    if read.kind is ReadKind.REBASELINE and not self.dry_run:
                        await self._sweep_unseen(_ReadState(read.kind, None, read.started, page.delta_link), stats)
                    return

    # --- one page -------------------------------------------------------------------------------------------

    async def _process_page(self, page: ChangePage, read: _ReadState, stats: PassStats) -> None:
        changes = _last_change_per_id(page.changes)
        stats.read += len(changes)
        stats.pages += 1
        links = self._links([c.id for c in changes])
        parent_links = self._parent_links([c for c in changes if isinstance(c, SourceChange)])
        decisions = [decide(self.spec, c, links.get(c.id), parent_links, read.kind) for c in changes]
        errors = await self._execute(decisions, stoppable=True)
        for decision in decisions:
            stats.count(Outcome.FAIL if decision.source_id in errors else decision.outcome)
        if self.dry_run:
            self.planned.record(self.spec.name, decisions, self.clock())
            await self._sample(decisions, links, stats)
        else:
            batch = self._batch(decisions, errors, links, read.kind is ReadKind.REBASELINE)
            self._advance(batch, page, read)
            self.store.commit(batch)
        if self.progress is not None:
            self.progress(stats)

    def _links(self, ids: Sequence[str]) -> dict[str, LinkRow]:
        stored = self.store.links_for(self.spec.name, ids)
        return self.planned.overlay(self.spec.name, stored, ids) if self.dry_run else stored

    def _parent_links(self, rows: Sequence[SourceChange]) -> dict[tuple[str, str], LinkRow]:
        found: dict[tuple[str, str], LinkRow] = {}
        for parent in self.spec.parents:
            ids = {str(r.values[parent.lookup_column]) for r in rows if r.values.get(parent.lookup_column)}
            if ids:
                stored = self.store.links_for(parent.parent_mapping, ids)
                if self.dry_run:
                    stored = self.planned.overlay(parent.parent_mapping, stored, ids)
                for parent_id, link in stored.items():
                    found[(parent.parent_mapping, parent_id)] = link
        return found

    async def _execute(self, decisions: Sequence[Decision], *, stoppable: bool = False) -> dict[str, RecordError]:
        """Run the page's writes with bounded concurrency; record errors are collected, anything else aborts.

        ``stoppable`` (within a pass): after a stop request no new write starts and the batch is abandoned.
        """
        errors: dict[str, RecordError] = {}
        if self.dry_run:
            return errors
        gate = asyncio.Semaphore(self.write_concurrency)
        unsent: list[str] = []

        async def write(decision: Decision) -> None:
            assert decision.key is not None
            async with gate:
                if stoppable and self.should_stop():  # writes in flight finish; no new one starts
                    unsent.append(decision.source_id)
                    return
                try:
                    if decision.outcome is Outcome.DELETE:
                        await self.target.delete(decision.key)
                    else:
                        known = decision.outcome is Outcome.UPDATE
                        await self.target.upsert(decision.key, decision.values, known=known, parents=decision.parents)
                except RecordError as error:
                    errors[decision.source_id] = error

        writes = [d for d in decisions if d.outcome in (Outcome.CREATE, Outcome.UPDATE, Outcome.DELETE)]
        try:
            async with asyncio.TaskGroup() as group:
                for decision in writes:
                    group.create_task(write(decision))
        except BaseExceptionGroup as group:
            # Callers act on the error's kind (retry later, re-authenticate, stop), not on a group of them.
            raise group.exceptions[0] from group
        if unsent:
            raise _Stopped  # abandoned before its commit: the next pass redoes the batch (every write is idempotent)
        return errors

    def _batch(
        self,
        decisions: Sequence[Decision],
        errors: Mapping[str, RecordError],
        links: Mapping[str, LinkRow],
        touch: bool,
    ) -> Batch:
        now = self.clock()
        batch = Batch(Flow.TABLES, self.spec.name)
        for decision in decisions:
            error = errors.get(decision.source_id)
            link = links.get(decision.source_id)
            if error is not None or decision.outcome is Outcome.FAIL:
                reason = str(error) if error is not None else decision.reason
                error_class = type(error).__name__ if error is not None else "MappingError"
                batch.dead_letter(
                    DeadLetter(
                        Flow.TABLES, self.spec.name, decision.source_id, _payload(decision), error_class, reason, now
                    )
                )
                if touch and link is not None and not link.is_deleted:
                    batch.upsert_links([_touched(link, now)])
                continue
            if decision.outcome in (Outcome.CREATE, Outcome.UPDATE):
                assert decision.key is not None
                batch.upsert_links(
                    [
                        LinkRow(
                            self.spec.name,
                            decision.source_id,
                            decision.key,
                            decision.values_hash,
                            now,
                            parent_keys=dict(decision.parent_keys) or None,
                        )
                    ]
                )
                if self.spec.parents:
                    batch.unpark(self.spec.name, decision.source_id)
                if decision.outcome is Outcome.CREATE:
                    for state in _created_optout_bases(self.spec, decision, now):
                        batch.set_optout_state(state)
            elif decision.outcome is Outcome.DELETE:
                batch.mark_deleted(self.spec.name, [decision.source_id], now)
            elif decision.outcome is Outcome.PARK:
                assert decision.parked_on is not None
                batch.park(
                    ParkedChild(
                        self.spec.name,
                        decision.source_id,
                        decision.parked_on[0],
                        decision.parked_on[1],
                        dict(decision.row or {}),
                        now,
                        now,
                    )
                )
            elif touch and link is not None and not link.is_deleted:
                batch.upsert_links([_touched(link, now)])
        return batch

    def _advance(self, batch: Batch, page: ChangePage, read: _ReadState) -> None:
        if page.next_link is not None:
            state = _ReadState(read.kind, page.next_link, read.started)
            batch.advance_in_flight(state.encode(), config_fingerprint=self.spec.fingerprint)
        elif page.delta_link is not None and read.kind is ReadKind.REBASELINE:
            # Not done yet: the sweep for rows the read did not see comes first.
            state = _ReadState(read.kind, None, read.started, page.delta_link)
            batch.advance_in_flight(state.encode(), config_fingerprint=self.spec.fingerprint)
        elif page.delta_link is not None:
            batch.advance_to(page.delta_link, config_fingerprint=self.spec.fingerprint)

    # --- single rows: dead-letter retries and reconcile repairs ----------------------------------------------

    async def write_rows(
        self,
        rows: Mapping[str, Mapping[str, Any] | None],
        *,
        absent_in_target: Collection[str] = (),
        force: bool = False,
    ) -> dict[str, Outcome]:
        """Write these source rows (id -> current row, None when gone from Dynamics) through the pass's own
        decide/write/commit path, outside any read; returns each id's outcome (FAIL when refused again).

        ``absent_in_target``: ids Campaign does not hold, whatever the links say (created with their create-only
        fields). ``force``: write even when the stored hash says the row is unchanged (Campaign drifted).
        """
        changes: list[SourceChange | Tombstone] = [
            SourceChange(self.spec.table, row_id, row) if row is not None else Tombstone(self.spec.table, row_id)
            for row_id, row in rows.items()
        ]
        links = self.store.links_for(self.spec.name, list(rows))
        for row_id in absent_in_target:
            links.pop(row_id, None)
        if force:
            links = {row_id: replace(link, values_hash="") for row_id, link in links.items()}
        parent_links = self._parent_links([c for c in changes if isinstance(c, SourceChange)])
        decisions = [decide(self.spec, c, links.get(c.id), parent_links, ReadKind.DELTA) for c in changes]
        errors = await self._execute(decisions)
        if not self.dry_run:
            self.store.commit(self._batch(decisions, errors, links, touch=False))
        return {d.source_id: Outcome.FAIL if d.source_id in errors else d.outcome for d in decisions}

    async def delete_keys(self, keys: Mapping[str, str]) -> dict[str, RecordError]:
        """Delete Campaign rows by business key (source id -> key) and mark their links deleted; returns refusals."""
        errors: dict[str, RecordError] = {}
        for source_id, key in keys.items():
            try:
                await self.target.delete(key)
            except RecordError as error:
                errors[source_id] = error
        if not self.dry_run:
            batch = Batch(Flow.TABLES, self.spec.name)
            batch.mark_deleted(self.spec.name, [s for s in keys if s not in errors], self.clock())
            self.store.commit(batch)
        return errors

    # --- re-baseline sweep, parked children, dry-run samples ------------------------------------------------

    async def _sweep_unseen(self, read: _ReadState, stats: PassStats) -> None:
        """After a re-baseline read: linked rows the read did not touch were deleted in Dynamics meanwhile."""
        assert read.delta_link is not None
        unseen: list[Tombstone] = []
        for link in self.store.iter_links(self.spec.name):
            if link.synced_at < read.started:
                unseen.append(Tombstone(self.spec.table, link.source_id))
            if len(unseen) >= 1000:
                await self._write_tombstones(unseen, stats)
                unseen = []
                if self.should_stop():
                    raise _Stopped  # the sweep restarts next time; tombstones already written are skipped
        await self._write_tombstones(unseen, stats)
        batch = Batch(Flow.TABLES, self.spec.name)
        batch.advance_to(read.delta_link, config_fingerprint=self.spec.fingerprint)
        self.store.commit(batch)

    async def _write_tombstones(self, tombstones: list[Tombstone], stats: PassStats) -> None:
        if not tombstones:
            return
        links = self.store.links_for(self.spec.name, [t.id for t in tombstones])
        decisions = [decide(self.spec, t, links.get(t.id), {}, ReadKind.REBASELINE) for t in tombstones]
        errors = await self._execute(decisions, stoppable=True)
        for decision in decisions:
            stats.count(Outcome.FAIL if decision.source_id in errors else decision.outcome)
        # Links of tombstones that are not propagated are marked deleted too: the row is gone from Dynamics.
        batch = self._batch(decisions, errors, links, touch=False)
        gone = [d.source_id for d in decisions if d.outcome is Outcome.SKIP]
        batch.mark_deleted(self.spec.name, gone, self.clock())
        self.store.commit(batch)

    async def _retry_parked(self, stats: PassStats) -> None:
        """Children waiting for a parent: write those whose parent landed, dead-letter those waited too long."""
        if not self.spec.parents:
            return
        now = self.clock()
        due = [c for c in self.store.pending_due(now, limit=5000) if c.mapping == self.spec.name]
        if not due:
            return
        changes = [SourceChange(self.spec.table, c.source_id, c.payload) for c in due]
        parent_links = self._parent_links(changes)
        links = self._links([c.source_id for c in due])
        decisions = [decide(self.spec, c, links.get(c.id), parent_links, ReadKind.DELTA) for c in changes]
        waits = {p.parent_mapping: p.max_wait for p in self.spec.parents}
        if self.dry_run:
            # Count what the real pass would do with them: write, or give up waiting (a dead letter).
            for child, decision in zip(due, decisions, strict=True):
                if decision.outcome is not Outcome.PARK:
                    stats.count(decision.outcome)
                elif now - child.parked_at > waits.get(child.parent_mapping, timedelta(hours=1)):
                    stats.failed += 1
            self.planned.record(self.spec.name, decisions, now)
            return
        errors = await self._execute(decisions, stoppable=True)
        batch = Batch(Flow.TABLES, self.spec.name)
        for child, decision in zip(due, decisions, strict=True):
            if decision.outcome is Outcome.PARK:
                if now - child.parked_at > waits.get(child.parent_mapping, timedelta(hours=1)):
                    reason = f"parent {child.parent_mapping} {child.parent_id} never reached Campaign; gave up waiting"
                    batch.dead_letter(
                        DeadLetter(
                            Flow.TABLES,
                            self.spec.name,
                            child.source_id,
                            dict(child.payload),
                            "MissingParent",
                            reason,
                            now,
                        )
                    )
                    batch.unpark(self.spec.name, child.source_id)
                    stats.failed += 1
                else:
                    batch.park(
                        ParkedChild(
                            child.mapping,
                            child.source_id,
                            child.parent_mapping,
                            child.parent_id,
                            child.payload,
                            child.parked_at,
                            now + _PARK_RETRY,
                            child.attempts,
                        )
                    )
                continue
            stats.count(Outcome.FAIL if decision.source_id in errors else decision.outcome)
            batch.unpark(self.spec.name, child.source_id)
        written = self._batch([d for d in decisions if d.outcome is not Outcome.PARK], errors, links, touch=False)
        for attribute in ("links_upserted", "links_deleted", "dead_letters"):
            getattr(batch, attribute).extend(getattr(written, attribute))
        self.store.commit(batch)

    async def _sample(self, decisions: Sequence[Decision], links: Mapping[str, LinkRow], stats: PassStats) -> None:
        for decision in decisions:
            if len(stats.samples) >= self.sample_diffs:
                return
            if decision.outcome not in (Outcome.CREATE, Outcome.UPDATE, Outcome.DELETE) or decision.key is None:
                continue
            current = await self.target.fetch(decision.key) if decision.outcome is not Outcome.CREATE else None
            stats.samples.append(
                {"outcome": decision.outcome.value, "key": decision.key, "diff": _diff(current, decision.values)}
            )


def _created_optout_bases(spec: TableSpec, decision: Decision, now: datetime) -> list[OptOutState]:
    """A contact created with its opt-out flags starts with both sides agreeing: that is the opt-out base."""
    row = decision.row or {}
    modified = parse_timestamp(row.get("modifiedon"))
    states = []
    for column, acs_field in spec.create_only:
        value = decision.values.get(acs_field)
        if isinstance(value, bool):
            key = pair_key(column, acs_field)
            states.append(OptOutState(decision.source_id, key, value, value, modified, value, now, now))
    return states


def _touched(link: LinkRow, now: datetime) -> LinkRow:
    return LinkRow(link.mapping, link.source_id, link.target_key, link.values_hash, now, link.parent_keys)


def _payload(decision: Decision) -> dict[str, Any] | None:
    return dict(decision.row) if decision.row is not None else None


def _last_change_per_id(changes: Sequence[SourceChange | Tombstone]) -> list[SourceChange | Tombstone]:
    """A page names each row once in practice; if not, the last change of a row is the one that counts."""
    latest: dict[str, SourceChange | Tombstone] = {}
    for change in changes:
        latest.pop(change.id, None)
        latest[change.id] = change
    return list(latest.values())


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _diff(current: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field → (old, new) for the fields a write would change."""
    old = _flatten(current or {})
    return {name: (old.get(name), new) for name, new in _flatten(values).items() if old.get(name) != new}


async def _prefetched(pages: AsyncIterator[ChangePage]) -> AsyncGenerator[ChangePage, None]:
    """Yield pages while the next one is already being fetched (reads overlap writes; order is kept)."""
    iterator = aiter(pages)
    pending: asyncio.Task[ChangePage] | None = asyncio.ensure_future(anext(iterator))
    try:
        while pending is not None:
            try:
                page = await pending
            except StopAsyncIteration:
                return
            pending = None if page.next_link is None else asyncio.ensure_future(anext(iterator))
            yield page
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
