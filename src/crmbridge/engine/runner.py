"""Builds the flows from the configuration and runs them: one pass (``sync``) or on their schedules (``run``).

``Services`` owns the connections (state store, Dataverse client, Campaign client) for the life of a command;
``Runner`` turns the configuration into flows, runs passes in dependency order, and keeps the status the dashboard
and ``crmbridge status`` show. ``run_forever`` hands the flows to :mod:`crmbridge.engine.schedule` (one loop per
flow). Graceful shutdown: a stop request ends a tables pass at the batch in hand (which commits whole or not at
all), and no new pass starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from crmbridge.campaign.client import CampaignClient
from crmbridge.campaign.factory import campaign_client, campaign_http_client, export_reader, journal_consumer
from crmbridge.config import CrmbridgeConfig, TableMapping
from crmbridge.dynamics.auth import TokenProvider
from crmbridge.dynamics.client import DataverseClient
from crmbridge.dynamics.reader import TableRef
from crmbridge.engine.adapters import (
    CampaignProfiles,
    CampaignRecordTarget,
    DataverseActivitySink,
    DataverseChangeFeed,
    DataverseContacts,
    ExportFeed,
    JournalFeed,
    campaign_resource,
)
from crmbridge.engine.events import EventsFlow, EventStats
from crmbridge.engine.optouts import OptOutsFlow, OptOutStats
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.table_spec import build_table_spec, mapping_order
from crmbridge.engine.tables import PassStats, StopCheck, TablesFlow
from crmbridge.exceptions import ConfigError
from crmbridge.state import DeadLetterStatus, Flow, StateStore

if TYPE_CHECKING:
    from crmbridge.engine.reload import ConfigWatch

__all__ = ["FlowState", "Runner", "Services"]

TablesProgress = Callable[[PassStats], None]
_Stats = TypeVar("_Stats", PassStats, EventStats, OptOutStats)
EventsProgress = Callable[[EventStats], None]


@dataclass
class Services:
    """The connections of one command: closed together when it ends."""

    config: CrmbridgeConfig
    store: StateStore
    dataverse: DataverseClient
    campaign: CampaignClient
    campaign_http: httpx.AsyncClient

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: CrmbridgeConfig,
        *,
        dynamics_tokens: TokenProvider | None = None,
        dynamics_transport: httpx.AsyncBaseTransport | None = None,
        campaign_transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[Services]:
        store = StateStore.open(config.state.url)
        try:
            async with DataverseClient.from_settings(
                config.dynamics, tokens=dynamics_tokens, transport=dynamics_transport
            ) as dataverse:
                http = campaign_http_client(config.campaign, transport=campaign_transport)
                try:
                    yield cls(config, store, dataverse, campaign_client(config.campaign, http), http)
                finally:
                    await http.aclose()
        finally:
            store.close()


@dataclass
class FlowState:
    """What the dashboard and ``status`` show for one flow."""

    name: str
    kind: str  # tables | events | optouts
    state: str = "idle"  # idle | running | failed | stopped
    last_pass_at: datetime | None = None
    last_counts: dict[str, int] = field(default_factory=dict)
    last_seconds: float | None = None
    last_error: str | None = None
    lag_seconds: float | None = None
    next_run_at: datetime | None = None


class Runner:
    """Runs the configured flows against the services; keeps their status."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.status: dict[str, FlowState] = {}
        self._tables: dict[str, TableRef] = {}
        self._stopping = asyncio.Event()
        # Called after every pass with (flow, counts, seconds, failed): metrics and the like listen here.
        self.pass_listeners: list[Callable[[str, dict[str, int], float, bool], None]] = []
        self.status = _flow_states(self.config, {})

    def reconfigure(self, config: CrmbridgeConfig) -> None:
        """Use ``config`` from the next pass on (a reload); flows it no longer has leave the status.

        The connections stay as they are: ``config`` must carry the same connection settings (engine.reload).
        """
        self.config = self.services.config = config
        self._tables.clear()  # an entity_set may have changed with its mapping
        self.status = _flow_states(config, self.status)

    # --- building flows --------------------------------------------------------------------------------------

    async def table_ref(self, mapping: TableMapping) -> TableRef:
        """Entity set and primary id of the mapping's table: from the config, else from live metadata."""
        if mapping.table in self._tables:
            return self._tables[mapping.table]
        if mapping.entity_set:
            ref = TableRef(mapping.table, mapping.entity_set, mapping.key.dynamics)
        else:
            info = await self.services.dataverse.metadata.table(mapping.table)
            if info is None:
                raise ConfigError(f"mapping {mapping.name}: Dataverse has no table {mapping.table!r}")
            ref = info.ref
        self._tables[mapping.table] = ref
        return ref

    async def tables_flow(
        self,
        mapping: TableMapping,
        *,
        dry_run: bool = False,
        progress: TablesProgress | None = None,
        planned: PlannedLinks | None = None,
        should_stop: StopCheck | None = None,
    ) -> TablesFlow:
        spec = build_table_spec(self.config, mapping)
        feed = DataverseChangeFeed(self.services.dataverse, await self.table_ref(mapping))
        target = CampaignRecordTarget(
            self.services.campaign,
            campaign_resource(mapping.resource),
            mapping.key.campaign,
            create_first=self.config.campaign.keys_are_identification_keys,
        )
        concurrency = max(1, self.config.campaign.max_concurrency * 4)
        return TablesFlow(
            spec,
            feed,
            target,
            self.services.store,
            dry_run=dry_run,
            progress=progress,
            write_concurrency=concurrency,
            planned=planned,
            should_stop=should_stop if should_stop is not None else self._stopping.is_set,
        )

    # --- passes ----------------------------------------------------------------------------------------------

    async def tables_pass(
        self,
        *,
        only: str | None = None,
        dry_run: bool = False,
        replay: bool = False,
        progress: Callable[[str], TablesProgress | None] | None = None,
        planned: PlannedLinks | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[PassStats]:
        """One pass of each enabled mapping (or only ``only``), parents first.

        ``planned``: a dry run's overlay (its children see the parents the same dry run would have written); the
        caller keeps it to estimate the API budget. ``should_stop``: default, :meth:`stop` was called.
        """
        mappings = [m for m in mapping_order(self.config) if only is None or m.name == only]
        if only is not None and not mappings:
            raise ConfigError(f"no enabled mapping named {only!r} (see `crmbridge config validate`)")
        stop = should_stop if should_stop is not None else self._stopping.is_set
        if not dry_run:
            await self._retry_requested_letters(only)
        results = []
        planned = planned if planned is not None else PlannedLinks()
        for mapping in mappings:
            if stop():
                break
            flow = await self.tables_flow(
                mapping,
                dry_run=dry_run,
                progress=progress(mapping.name) if progress else None,
                planned=planned,
                should_stop=stop,
            )
            stats = await self._tracked(f"tables:{mapping.name}", flow.run_pass(replay=replay), dry_run=dry_run)
            results.append(stats)
        return results

    async def _retry_requested_letters(self, only: str | None) -> None:
        """Dead letters an operator asked to retry (dashboard button): rows re-read from Dynamics, events rewritten.

        A pass of one mapping (``only``) takes up only that mapping's letters.
        """
        from crmbridge.engine.deadletters import retry_letters  # it builds on this runner: imported when used

        waiting = self.services.store.dead_letters.list(status=DeadLetterStatus.RETRYING)
        waiting = [w for w in waiting if only is None or (w.flow is Flow.TABLES and w.mapping == only)]
        if waiting:
            await retry_letters(self, [letter.id for letter in waiting if letter.id is not None])

    async def events_pass(self, *, progress: EventsProgress | None = None) -> EventStats | None:
        events = self.config.events
        if events is None or not events.enabled:
            return None
        sink = DataverseActivitySink(self.services.dataverse)
        source = events.source
        if source.journal is not None:
            consumer = journal_consumer(self.config.campaign, source.journal, self.services.campaign_http)
            backfill_cm = (
                export_reader(events.backfill_from_exports) if events.backfill_from_exports is not None else None
            )
            async with contextlib.AsyncExitStack() as stack:
                backfill = ExportFeed(await stack.enter_async_context(backfill_cm)) if backfill_cm else None
                flow = EventsFlow(
                    events,
                    JournalFeed(consumer),
                    sink,
                    self.services.store,
                    scope="journal",
                    backfill=backfill,
                    progress=progress,
                )
                return await self._tracked("events", flow.run_pass())
        if source.exports is None:
            raise ConfigError("events.source: give a journal or exports")
        async with export_reader(source.exports, batch_size=events.batch_size) as reader:
            flow = EventsFlow(events, ExportFeed(reader), sink, self.services.store, scope="exports", progress=progress)
            return await self._tracked("events", flow.run_pass())

    async def optouts_pass(self) -> OptOutStats | None:
        optouts = self.config.optouts
        if optouts.mode == "disabled" or not optouts.pairs:
            return None
        contact = TableRef("contact", "contacts", "contactid")
        flow = OptOutsFlow(
            optouts,
            DataverseChangeFeed(self.services.dataverse, contact, formatted_values=False),
            DataverseContacts(self.services.dataverse),
            CampaignProfiles(self.services.campaign),
            self.services.store,
        )
        return await self._tracked("optouts", flow.run_pass())

    async def run_once(self, *, progress: Callable[[str], TablesProgress | None] | None = None) -> dict[str, Any]:
        """Every flow once: tables, then opt-outs, then events (events need profiles carrying externalId)."""
        return {
            "tables": await self.tables_pass(progress=progress),
            "optouts": await self.optouts_pass(),
            "events": await self.events_pass(),
        }

    async def _tracked(self, key: str, work: Awaitable[_Stats], *, dry_run: bool = False) -> _Stats:
        state = self.status.setdefault(key, FlowState(key.split(":")[-1], key.split(":")[0]))
        if dry_run:
            return await work
        state.state = "running"
        try:
            stats = await work
        except BaseException as error:
            state.state, state.last_error = "failed", str(error) or type(error).__name__
            for listener in self.pass_listeners:
                listener(key, {}, 0.0, True)
            raise
        state.state, state.last_error = "idle", None
        state.last_pass_at = datetime.now(UTC)
        state.last_counts = stats.counts()
        state.last_seconds = stats.seconds
        if isinstance(stats, EventStats):
            state.lag_seconds = stats.lag_seconds
        for listener in self.pass_listeners:
            listener(key, state.last_counts, stats.seconds, False)
        return stats

    # --- the long-running service ----------------------------------------------------------------------------

    @property
    def stopping(self) -> asyncio.Event:
        """Set once :meth:`stop` was called."""
        return self._stopping

    def stop(self) -> None:
        """End the batch in hand (it commits whole or not at all), start nothing new."""
        self._stopping.set()

    async def run_forever(self, watch: ConfigWatch | None = None) -> None:
        """Each flow on its own interval until :meth:`stop`; ``watch``: reload the configuration file as it changes."""
        from crmbridge.engine.schedule import Schedule  # it builds on this runner: imported when used

        await Schedule(self).run(watch)

    async def run_flow(self, key: str, *, should_stop: StopCheck) -> None:
        """One pass of the flow a schedule loop runs: ``tables:<mapping>``, ``optouts``, ``events`` or ``retention``."""
        kind, _, name = key.partition(":")
        if kind == "tables":
            await self.tables_pass(only=name, should_stop=should_stop)
        elif kind == "optouts":
            await self.optouts_pass()
        elif kind == "events":
            await self.events_pass()
        elif kind == "retention":
            await self.purge_personal_data()
        else:
            raise ValueError(f"no flow {key!r}")

    async def purge_personal_data(self) -> None:
        """Apply the configured retention to personal data in dead letters and unmatched events.

        One cutoff covers both (the store purges them together): the shorter of the two retentions, so nothing is
        kept longer than configured.
        """
        state = self.config.state
        days = min(state.dead_letter_retention_days, state.unmatched_event_retention_days)
        self.services.store.purge_personal_data(datetime.now(UTC) - timedelta(days=days))


def _flow_states(config: CrmbridgeConfig, known: dict[str, FlowState]) -> dict[str, FlowState]:
    """A status entry per configured flow: the ``known`` one where there is one (its last pass stays visible)."""
    keys = [(f"tables:{m.name}", m.name, "tables") for m in mapping_order(config)]
    if config.events is not None and config.events.enabled:
        keys.append(("events", "events", "events"))
    if config.optouts.mode != "disabled" and config.optouts.pairs:
        keys.append(("optouts", "optouts", "optouts"))
    return {key: known.get(key) or FlowState(name, kind) for key, name, kind in keys}
