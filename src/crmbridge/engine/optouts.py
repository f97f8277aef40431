"""Job 4: opt-outs both ways, within one poll interval, every conflict shown.

Each pass reads what changed on both sides (the Dynamics contact delta of the opt-out columns, and ACS profiles
modified since the watermark minus an overlap), merges each (contact, pair) with the stored base through the pure
:func:`crmbridge.engine.optout_merge.merge_optout`, re-reads the target right before writing (and writes Dynamics
with ``If-Match``) so a change made between poll and write is merged, not overwritten, and stores the new base,
the audit log and conflicts in one batch with both checkpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crmbridge.config import OptOutPair, OptOutSettings
from crmbridge.engine.optout_base import Baseline, base_after_unconfirmed_write, both_as_at_baseline, inferred_base
from crmbridge.engine.optout_merge import ConflictRule, FlagState, MergeDecision, OptOutMode, merge_optout, pair_key
from crmbridge.engine.ports import ChangeFeed
from crmbridge.exceptions import CheckpointExpired
from crmbridge.mapping.values import parse_timestamp
from crmbridge.records import SourceChange
from crmbridge.state import Batch, ConflictRecord, Flow, OptOutState, OptOutWrite, RunStatus, StateStore

__all__ = ["ContactAccess", "OptOutStats", "OptOutsFlow", "ProfileAccess", "pair_name"]

Clock = Callable[[], datetime]
DYNAMICS_SCOPE = "dynamics"
CAMPAIGN_SCOPE = "campaign"
BASELINE_SCOPE = "baseline"  # when the first pass took both sides as they were
_MAX_RACES = 3
_CHUNK = 500
_States = dict[str, dict[str, OptOutState]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def pair_name(pair: OptOutPair) -> str:
    return pair_key(pair.dynamics, pair.campaign)


class ContactAccess(Protocol):
    """Dynamics contacts by id, with their ETag for optimistic concurrency."""

    async def read_contact(self, contact_id: str, columns: Sequence[str]) -> tuple[Mapping[str, Any], str] | None: ...

    async def write_contact(self, contact_id: str, values: Mapping[str, Any], *, etag: str) -> bool:
        """PATCH with ``If-Match: etag``; False when the row changed meanwhile (HTTP 412)."""
        ...


class ProfileAccess(Protocol):
    """ACS profiles addressed by ``externalId`` (= contactid)."""

    def modified_since(self, watermark: datetime | None) -> AsyncIterator[Mapping[str, Any]]: ...

    async def read_profile(self, contact_id: str) -> Mapping[str, Any] | None: ...

    async def write_profile(self, contact_id: str, values: Mapping[str, Any]) -> None: ...


@dataclass
class OptOutStats:
    dynamics_changes: int = 0
    campaign_changes: int = 0
    written_dynamics: int = 0
    written_campaign: int = 0
    conflicts: int = 0
    in_agreement: int = 0
    races: int = 0  # target moved between poll and write; merged again
    skipped: int = 0  # the other side has no such contact/profile
    unchanged: int = 0  # seen again in Campaign (overlap, other fields edited) with the flag as last recorded
    latencies: list[float] = field(default_factory=list)  # change time → write time, seconds
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        names = ("dynamics_changes", "campaign_changes", "written_dynamics", "written_campaign", "conflicts", "races")
        return {name: int(getattr(self, name)) for name in names}


@dataclass
class _Sides:
    """What this pass saw of one contact: per side, its row (None: not seen this pass)."""

    dynamics: Mapping[str, Any] | None = None
    campaign: Mapping[str, Any] | None = None


class OptOutsFlow:
    def __init__(
        self,
        settings: OptOutSettings,
        dynamics_feed: ChangeFeed,
        contacts: ContactAccess,
        profiles: ProfileAccess,
        store: StateStore,
        *,
        concurrency: int = 16,
        clock: Clock = _utc_now,
    ) -> None:
        self.concurrency = concurrency
        self._baseline = Baseline(None, None)
        self.settings = settings
        self.mode = OptOutMode(settings.mode)
        self.rule = ConflictRule(settings.conflict_rule)
        self.dynamics_feed = dynamics_feed
        self.contacts = contacts
        self.profiles = profiles
        self.store = store
        self.clock = clock

    @property
    def dynamics_columns(self) -> list[str]:
        return ["contactid", "modifiedon", *dict.fromkeys(p.dynamics for p in self.settings.pairs)]

    async def run_pass(self) -> OptOutStats:
        stats = OptOutStats()
        if self.mode is OptOutMode.DISABLED or not self.settings.pairs:
            return stats
        loop = asyncio.get_running_loop()
        started = loop.time()
        run_id = self.store.start_run(Flow.OPTOUTS, "optouts")
        try:
            await self._pass(stats)
        except BaseException as error:
            status = RunStatus.INTERRUPTED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
            self.store.finish_run(run_id, status, stats.counts(), error=str(error) or type(error).__name__)
            raise
        stats.seconds = loop.time() - started
        self.store.finish_run(run_id, RunStatus.SUCCEEDED, stats.counts())
        return stats

    async def _pass(self, stats: OptOutStats) -> None:
        poll_started = self.clock()
        dynamics_checkpoint = self.store.checkpoint(Flow.OPTOUTS, DYNAMICS_SCOPE)
        if dynamics_checkpoint is None or dynamics_checkpoint.value is None:
            await self._establish_baseline(poll_started)
            return
        baseline = self.store.checkpoint(Flow.OPTOUTS, BASELINE_SCOPE)
        self._baseline = Baseline.from_text(baseline.value if baseline is not None else None)
        seen: dict[str, _Sides] = {}
        delta_link = await self._read_dynamics(dynamics_checkpoint.value, seen, stats)
        watermark = await self._read_campaign(seen, stats)
        contacts = list(seen)
        gate = asyncio.Semaphore(self.concurrency)
        for start in range(0, len(contacts), _CHUNK):
            chunk = contacts[start : start + _CHUNK]
            states = {pair_name(p): self.store.optout_states(pair_name(p), chunk) for p in self.settings.pairs}
            batch = Batch(Flow.OPTOUTS, DYNAMICS_SCOPE)

            async def handle(contact_id: str, batch: Batch = batch, states: _States = states) -> None:
                async with gate:
                    for pair in self.settings.pairs:
                        state = states[pair_name(pair)].get(contact_id)
                        await self._merge_one(contact_id, pair, seen[contact_id], state, batch, stats)

            async with asyncio.TaskGroup() as group:
                for contact_id in chunk:
                    group.create_task(handle(contact_id))
            self.store.commit(batch)
        self._advance(delta_link, watermark)

    async def _establish_baseline(self, now: datetime) -> None:
        """First pass: take both sides' current state as the starting point (propagate later changes only).

        Contacts created by the tables flow already carry their flags; a full read here only serves to obtain
        the Dynamics delta link and the newest modifiedon, so rows are not kept (memory stays flat whatever the
        table size). Campaign's newest profile dates the baseline on Campaign's clock and starts its watermark.
        """
        delta_link: str | None = None
        dynamics_newest: datetime | None = None
        async for page in self.dynamics_feed.read(columns=self.dynamics_columns, delta_link=None, next_link=None):
            delta_link = page.delta_link or delta_link
            for change in page.changes:
                modified = (
                    parse_timestamp(change.values.get("modifiedon")) if isinstance(change, SourceChange) else None
                )
                if modified is not None and (dynamics_newest is None or modified > dynamics_newest):
                    dynamics_newest = modified
        campaign_newest = await self._newest_profile_time()
        self._advance(delta_link, campaign_newest or now)
        mark = Batch(Flow.OPTOUTS, BASELINE_SCOPE)
        mark.advance_to(Baseline(dynamics_newest or now, campaign_newest or now).to_text())
        self.store.commit(mark)

    async def _newest_profile_time(self) -> datetime | None:
        """The newest profile lastModified: "now" on Campaign's clock, as far as crmbridge can see it."""
        profiles = self.profiles.modified_since(None)
        newest: datetime | None = None
        async for profile in profiles:
            newest = parse_timestamp(profile.get("lastModified"))
            break
        close = getattr(profiles, "aclose", None)
        if close is not None:
            await close()
        return newest

    def _advance(self, delta_link: str | None, watermark: datetime | None) -> None:
        batch = Batch(Flow.OPTOUTS, DYNAMICS_SCOPE)
        if delta_link is not None:
            batch.advance_to(delta_link)
            self.store.commit(batch)
        if watermark is not None:
            mark = Batch(Flow.OPTOUTS, CAMPAIGN_SCOPE)
            mark.advance_to(watermark.isoformat())
            self.store.commit(mark)

    async def _read_dynamics(self, delta: str, seen: dict[str, _Sides], stats: OptOutStats) -> str | None:
        try:
            return await self._drain_dynamics(delta, seen, stats)
        except CheckpointExpired:
            # The delta link expired: a full read, merged against the stored bases, finds what changed.
            return await self._drain_dynamics(None, seen, stats)

    async def _drain_dynamics(self, delta: str | None, seen: dict[str, _Sides], stats: OptOutStats) -> str | None:
        new_delta: str | None = None
        async for page in self.dynamics_feed.read(columns=self.dynamics_columns, delta_link=delta, next_link=None):
            for change in page.changes:
                if isinstance(change, SourceChange):
                    seen.setdefault(change.id, _Sides()).dynamics = change.values
                    stats.dynamics_changes += 1
            new_delta = page.delta_link or new_delta
        return new_delta

    async def _read_campaign(self, seen: dict[str, _Sides], stats: OptOutStats) -> datetime | None:
        checkpoint = self.store.checkpoint(Flow.OPTOUTS, CAMPAIGN_SCOPE)
        since = datetime.fromisoformat(checkpoint.value) if checkpoint is not None and checkpoint.value else None
        if since is not None:
            since -= self.settings.overlap
        newest: datetime | None = since + self.settings.overlap if since is not None else None
        async for profile in self.profiles.modified_since(since):
            contact = profile.get("externalId")
            if not contact:
                continue  # a profile crmbridge cannot tie to a contact
            seen.setdefault(str(contact), _Sides()).campaign = profile
            stats.campaign_changes += 1
            modified = parse_timestamp(profile.get("lastModified"))
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        return newest

    def _flag_dated(self, profile: Mapping[str, Any], pair: OptOutPair) -> bool:
        """The flag's time is its own …LastModified, not the profile's."""
        own = profile.get(f"{pair.campaign}LastModified")
        return self.settings.timestamps != "profile_last_modified" and bool(own)

    def _campaign_flag(self, profile: Mapping[str, Any], pair: OptOutPair) -> FlagState:
        raw = profile.get(f"{pair.campaign}LastModified")
        if self.settings.timestamps == "profile_last_modified" or raw is None:
            changed = parse_timestamp(profile.get("lastModified"))
        else:
            # A tenant that dates flags sends "" for a flag never changed: it is as old as the profile (inferred).
            changed = parse_timestamp(raw) or parse_timestamp(profile.get("created"))
        return FlagState(bool(profile.get(pair.campaign)), changed)

    @staticmethod
    def _dynamics_flag(row: Mapping[str, Any], pair: OptOutPair) -> FlagState:
        return FlagState(bool(row.get(pair.dynamics)), parse_timestamp(row.get("modifiedon")))

    async def _merge_one(
        self,
        contact_id: str,
        pair: OptOutPair,
        sides: _Sides,
        state: OptOutState | None,
        batch: Batch,
        stats: OptOutStats,
    ) -> None:
        if self._campaign_only_and_unchanged(pair, sides, state):
            stats.unchanged += 1
            return
        dynamics_row: Mapping[str, Any] | None = sides.dynamics
        etag: str | None = None
        if dynamics_row is None:
            found = await self.contacts.read_contact(contact_id, self.dynamics_columns)
            if found is None:
                stats.skipped += 1
                return
            dynamics_row, etag = found
        profile = sides.campaign if sides.campaign is not None else await self.profiles.read_profile(contact_id)
        if profile is None:
            stats.skipped += 1  # not in Campaign (yet): the tables flow creates it with its flags
            return
        dynamics, campaign = self._dynamics_flag(dynamics_row, pair), self._campaign_flag(profile, pair)
        if state is None:
            base = inferred_base(self._baseline, dynamics, campaign)
        else:
            dated = self._flag_dated(profile, pair)
            base = base_after_unconfirmed_write(state, dynamics, campaign, campaign_flag_dated=dated)
        if (
            state is None
            and dynamics.value != campaign.value
            and both_as_at_baseline(self._baseline, dynamics, campaign)
        ):
            # They differed before crmbridge started and neither changed since (a profile re-read within the
            # overlap): the first pass took both as they were, so there is no change to propagate.
            stats.unchanged += 1
            return
        decision = merge_optout(self.mode, self.rule, base, dynamics, campaign)
        for _ in range(_MAX_RACES):
            if not decision.writes:
                break
            self._mark_unconfirmed(contact_id, pair, base, decision, dynamics, campaign)
            moved = await self._write(contact_id, pair, decision, dynamics, campaign, etag)
            if moved is None:
                break
            stats.races += 1
            dynamics, campaign, etag = moved
            decision = merge_optout(self.mode, self.rule, base, dynamics, campaign)
        self._record(contact_id, pair, decision, dynamics, campaign, batch, stats)

    def _campaign_only_and_unchanged(self, pair: OptOutPair, sides: _Sides, state: OptOutState | None) -> bool:
        """Nothing new to merge: Dynamics did not change (its delta has every change since the last pass) and
        the Campaign flag is the value recorded last time. Profiles re-read within the overlap, or edited in other
        fields (a tables sync touches every profile), then cost no Dynamics read each."""
        if sides.dynamics is not None or sides.campaign is None or state is None or state.dynamics_value is None:
            return False
        if state.campaign_seen_at is None or state.dynamics_seen_at is None:
            return False  # a write not confirmed yet: merged in full
        return self._campaign_flag(sides.campaign, pair).value == state.campaign_value

    async def _write(
        self,
        contact_id: str,
        pair: OptOutPair,
        decision: MergeDecision,
        dynamics: FlagState,
        campaign: FlagState,
        etag: str | None,
    ) -> tuple[FlagState, FlagState, str | None] | None:
        """Write the decision; None when written, or both sides' fresh states when either moved since the poll.

        Both sides are re-read, not only the target: a source that moved (an opt-out taken back right after the
        poll saw it) must not have its old value written, or the next pass would find that stale write newer than
        the change it hides and the conflict rule could keep it.
        """
        current = await self.profiles.read_profile(contact_id)
        fresh_campaign = self._campaign_flag(current, pair) if current is not None else campaign
        if fresh_campaign.value != campaign.value:
            return dynamics, fresh_campaign, etag
        found = await self.contacts.read_contact(contact_id, self.dynamics_columns)
        if found is not None:
            row, etag = found
            fresh_dynamics = self._dynamics_flag(row, pair)
            if fresh_dynamics.value != dynamics.value:
                return fresh_dynamics, campaign, etag
        elif decision.write_dynamics is not None:
            return None
        if decision.write_dynamics is not None and etag is not None:
            written = await self.contacts.write_contact(contact_id, {pair.dynamics: decision.write_dynamics}, etag=etag)
            if not written:  # 412: the row changed between our read and the write
                again = await self.contacts.read_contact(contact_id, self.dynamics_columns)
                return None if again is None else (self._dynamics_flag(again[0], pair), campaign, again[1])
        if decision.write_campaign is not None:
            await self.profiles.write_profile(contact_id, {pair.campaign: decision.write_campaign})
        return None

    def _mark_unconfirmed(
        self,
        contact_id: str,
        pair: OptOutPair,
        base: bool | None,
        decision: MergeDecision,
        dynamics: FlagState,
        campaign: FlagState,
    ) -> None:
        """Commit, before writing, the value about to be written, without a time (see base_after_unconfirmed_write).

        The pass records its writes when its batch commits; killed in between, it would find its own write in the
        next read and take it for a person's change (and, say, undo the Campaign opt-in that came after it).
        """
        d_value, d_at = dynamics.value, dynamics.changed_at
        if decision.write_dynamics is not None:
            d_value, d_at = decision.write_dynamics, None
        c_value, c_at = campaign.value, campaign.changed_at
        if decision.write_campaign is not None:
            c_value, c_at = decision.write_campaign, None
        mark = Batch(Flow.OPTOUTS, DYNAMICS_SCOPE)
        mark.set_optout_state(
            OptOutState(contact_id, pair_name(pair), base, d_value, d_at, c_value, c_at, self.clock())
        )
        self.store.commit(mark)

    def _record(
        self,
        contact_id: str,
        pair: OptOutPair,
        decision: MergeDecision,
        dynamics: FlagState,
        campaign: FlagState,
        batch: Batch,
        stats: OptOutStats,
    ) -> None:
        now = self.clock()
        name = pair_name(pair)
        d_value, d_at = dynamics.value, dynamics.changed_at
        c_value, c_at = campaign.value, campaign.changed_at
        if decision.conflict:
            stats.conflicts += 1
            winner = (
                "dynamics"
                if decision.winner == "dynamics"
                else "campaign"
                if decision.winner == "campaign"
                else ("dynamics" if dynamics.value else "campaign")
            )
            batch.log_conflict(
                ConflictRecord(
                    now, contact_id, name, d_value, d_at, c_value, c_at, winner, self.rule.value, bool(decision.base)
                )
            )
        if decision.write_dynamics is not None:
            stats.written_dynamics += 1
            batch.log_optout_write(
                OptOutWrite(
                    now,
                    contact_id,
                    name,
                    "dynamics",
                    d_value,
                    decision.write_dynamics,
                    decision.reason,
                    self.rule.value,
                )
            )
            if c_at is not None:
                stats.latencies.append((now - c_at).total_seconds())
            d_value, d_at = decision.write_dynamics, now
        if decision.write_campaign is not None:
            stats.written_campaign += 1
            batch.log_optout_write(
                OptOutWrite(
                    now,
                    contact_id,
                    name,
                    "campaign",
                    c_value,
                    decision.write_campaign,
                    decision.reason,
                    self.rule.value,
                )
            )
            if d_at is not None:
                stats.latencies.append((now - d_at).total_seconds())
            c_value, c_at = decision.write_campaign, now
        if not decision.writes and not decision.conflict:
            stats.in_agreement += 1
        batch.set_optout_state(OptOutState(contact_id, name, decision.base, d_value, d_at, c_value, c_at, now))
