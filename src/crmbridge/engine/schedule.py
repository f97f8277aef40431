"""``crmbridge run``'s schedule: one loop (an asyncio task) per flow, each on its own interval.

Every table mapping, the opt-outs, the email events and the retention purge loop on their own, so a slow flow holds
no other back. Dependency order is kept where a child mapping links to a parent: a child's pass does not start
before its parent's first pass, nor while a pass of its parent is running (its rows would only be parked); parents
never wait for children, so a parent is never starved. A reload (:meth:`Schedule.reload`) stops, starts or
restarts only the loops whose settings changed; the others keep running undisturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.table_spec import build_table_spec, mapping_order
from crmbridge.exceptions import CrmbridgeError

if TYPE_CHECKING:
    from crmbridge.engine.reload import ConfigWatch
    from crmbridge.engine.runner import Runner

__all__ = ["LoopSpec", "ReloadPlan", "Schedule", "loop_specs", "plan_reload"]

log = structlog.get_logger(__name__)

RETENTION = "retention"
RETENTION_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """One loop: its flow key, interval, the parent loops it waits for, and what restarts it when it changes."""

    key: str  # tables:<mapping> | optouts | events | retention
    interval: timedelta
    settings: object  # compared with == on a reload: a loop restarts when this differs
    parents: tuple[str, ...] = ()


def loop_specs(config: CrmbridgeConfig) -> dict[str, LoopSpec]:
    """The loops ``config`` asks for, keyed by flow key (pure)."""
    specs: dict[str, LoopSpec] = {}
    for mapping in mapping_order(config):
        table = build_table_spec(config, mapping)
        interval = config.interval_of(mapping)
        parents = tuple(dict.fromkeys(f"tables:{parent.parent_mapping}" for parent in table.parents))
        # The fingerprint covers columns, filters, keys and links; parents carry what a child takes from them.
        key = f"tables:{mapping.name}"
        specs[key] = LoopSpec(key, interval, (table.fingerprint, table.parents, interval), parents)
    if config.optouts.mode != "disabled" and config.optouts.pairs:
        interval = config.interval_of(config.optouts)
        specs["optouts"] = LoopSpec("optouts", interval, (config.optouts, interval))
    if config.events is not None and config.events.enabled:
        interval = config.interval_of(config.events)
        specs["events"] = LoopSpec("events", interval, (config.events, interval))
    # Retention reads its settings at each run: a reload never needs to restart it.
    specs[RETENTION] = LoopSpec(RETENTION, RETENTION_INTERVAL, None)
    return specs


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does to the loops, by flow key."""

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()


def plan_reload(running: Mapping[str, LoopSpec], wanted: Mapping[str, LoopSpec]) -> ReloadPlan:
    """Which loops to start, stop, restart (settings changed) and keep (pure)."""
    return ReloadPlan(
        start=tuple(key for key in wanted if key not in running),
        stop=tuple(key for key in running if key not in wanted),
        restart=tuple(key for key in wanted if key in running and running[key] != wanted[key]),
        keep=tuple(key for key in wanted if key in running and running[key] == wanted[key]),
    )


@dataclass
class Loop:
    spec: LoopSpec
    task: asyncio.Task[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    passes: int = 0  # passes started by this loop (tests and the log read it)


async def _first(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Wait until one of ``events`` is set, or ``seconds`` passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Schedule:
    """The loops of one ``crmbridge run``; :meth:`run` until the runner is stopped."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.loops: dict[str, Loop] = {}
        self._running: set[str] = set()  # loops whose pass is in progress
        self._passed: set[str] = set()  # loops that finished (or failed) a pass
        self._changed = asyncio.Event()  # set, then replaced, whenever _running or _passed change
        self._failure: BaseException | None = None

    async def run(self, watch: ConfigWatch | None = None) -> None:
        """Every configured loop until the runner is stopped; ``watch`` reloads the configuration file."""
        for spec in loop_specs(self.runner.config).values():
            self._start(spec)
        watcher = None
        if watch is not None:
            from crmbridge.engine.reload import watch_config  # builds on this module

            watcher = asyncio.create_task(watch_config(watch, self), name="crmbridge-config-watch")
            watcher.add_done_callback(self._on_done)
        try:
            await self.runner.stopping.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await self._end(list(self.loops.values()))
        if self._failure is not None:
            raise self._failure

    async def reload(self, config: CrmbridgeConfig) -> ReloadPlan:
        """Run with ``config`` from now on: only loops whose settings changed stop, start or restart.

        A loop that ends finishes (or abandons whole) the batch in hand first; a restarted one starts once its old
        loop has ended, so two passes of one flow never overlap.
        """
        wanted = loop_specs(config)
        plan = plan_reload({key: loop.spec for key, loop in self.loops.items()}, wanted)
        await self._end([self.loops.pop(key) for key in (*plan.stop, *plan.restart)])
        self.runner.reconfigure(config)
        for key in (*plan.start, *plan.restart):
            self._start(wanted[key])
        return plan

    # --- the loops ----------------------------------------------------------------------------------------------

    def _start(self, spec: LoopSpec) -> None:
        task = asyncio.create_task(self._loop(spec), name=f"crmbridge-{spec.key}")
        self.loops[spec.key] = Loop(spec, task)
        task.add_done_callback(self._on_done)

    async def _end(self, loops: list[Loop]) -> None:
        for loop in loops:
            loop.stop.set()
        await asyncio.gather(*(loop.task for loop in loops), return_exceptions=True)
        self._notify()

    def _on_done(self, task: asyncio.Task[None]) -> None:
        """A loop (or the watcher) ended by an unexpected error, a bug: stop everything and re-raise it from run."""
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self.runner.stop()

    async def _loop(self, spec: LoopSpec) -> None:
        loop = self.loops[spec.key]
        while not (loop.stop.is_set() or self.runner.stopping.is_set()):
            await self._parents_ready(loop)
            if loop.stop.is_set() or self.runner.stopping.is_set():
                return
            loop.passes += 1
            await self._pass(loop)
            state = self.runner.status.get(spec.key)
            if state is not None:
                state.next_run_at = datetime.now(UTC) + spec.interval
            await _first(loop.stop, self.runner.stopping, seconds=spec.interval.total_seconds())

    async def _parents_ready(self, loop: Loop) -> None:
        while not (loop.stop.is_set() or self.runner.stopping.is_set()):
            busy = [p for p in loop.spec.parents if p in self.loops and (p in self._running or p not in self._passed)]
            if not busy:
                return
            await _first(self._changed, loop.stop, self.runner.stopping)

    async def _pass(self, loop: Loop) -> None:
        key = loop.spec.key
        self._running.add(key)
        self._notify()

        def should_stop() -> bool:
            return loop.stop.is_set() or self.runner.stopping.is_set()

        try:
            await self.runner.run_flow(key, should_stop=should_stop)
        except CrmbridgeError as error:
            # Shown on the dashboard, in /healthz and by `status`; the next interval tries again.
            state = self.runner.status.get(key)
            if state is not None:
                state.state, state.last_error = "failed", str(error) or type(error).__name__
            log.warning("flow.pass_failed", flow=key, error=str(error))
        finally:
            self._running.discard(key)
            self._passed.add(key)
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
