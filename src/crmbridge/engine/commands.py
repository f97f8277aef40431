"""What ``crmbridge sync`` and ``crmbridge run`` do, with their terminal output (progress bars, summaries).

Kept apart from ``cli.py`` (parsing only) and from the runner (no terminal there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crmbridge import event_loop
from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.budget import ApiBudget, estimate_dry_run
from crmbridge.engine.events import EventStats
from crmbridge.engine.optouts import OptOutStats
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.runner import Runner, Services
from crmbridge.engine.tables import PassStats
from crmbridge.exceptions import CrmbridgeError

__all__ = ["run_sync", "sync_report"]


_BUDGET_COLUMNS = ("Dataverse req", "Campaign req", "engine calls")


def _tables_table(results: list[PassStats], budgets: dict[str, ApiBudget] | None = None) -> Table:
    title = "Dry run: what a pass would write (nothing was written)" if budgets is not None else "Tables"
    table = Table(title=title)
    for name in ("mapping", "kind", "read", "create", "update", "delete", "skip", "filtered", "parked", "failed", "s"):
        table.add_column(name, justify="left" if name in ("mapping", "kind") else "right")
    if budgets is not None:
        for name in _BUDGET_COLUMNS:
            table.add_column(name, justify="right")
    for stats in results:
        budget = _budget_cells(budgets.get(stats.mapping, ApiBudget())) if budgets is not None else []
        table.add_row(
            stats.mapping,
            stats.kind,
            *(f"{n:,}" for n in (stats.read, stats.created, stats.updated, stats.deleted, stats.skipped)),
            *(f"{n:,}" for n in (stats.filtered, stats.parked, stats.failed)),
            f"{stats.seconds:.1f}",
            *budget,
        )
    if budgets is not None:
        table.add_section()
        table.add_row("total", "", *([""] * 9), *_budget_cells(sum(budgets.values(), ApiBudget())))
    return table


def _budget_cells(budget: ApiBudget) -> list[str]:
    return [f"{n:,}" for n in (budget.dataverse_requests, budget.campaign_requests, budget.engine_calls)]


def _samples(results: list[PassStats], console: Console) -> None:
    for stats in results:
        for sample in stats.samples:
            console.print(f"[bold]{stats.mapping}[/bold] {sample['outcome']} {sample['key']}")
            for field, (old, new) in sample["diff"].items():
                console.print(f"    {field}: {old!r} → {new!r}")


def sync_report(
    results: list[PassStats],
    optouts: OptOutStats | None,
    events: EventStats | None,
    budgets: dict[str, ApiBudget] | None = None,
) -> dict[str, Any]:
    """What ``sync --json`` prints: the counts of every flow that ran, for scripts and tests.

    A dry run adds each mapping's estimated ``budget`` and their sum, ``budget_total``.
    """
    tables = []
    for stats in results:
        entry: dict[str, Any] = {"mapping": stats.mapping, "kind": stats.kind, **stats.counts()}
        entry["written"] = stats.written
        if budgets is not None:
            entry["budget"] = budgets.get(stats.mapping, ApiBudget()).as_dict()
        tables.append(entry)
    report: dict[str, Any] = {
        "tables": tables,
        "optouts": optouts.counts() if optouts is not None else None,
        "events": events.counts() if events is not None else None,
    }
    if budgets is not None:
        report["budget_total"] = sum(budgets.values(), ApiBudget()).as_dict()
    return report


def run_sync(
    config: CrmbridgeConfig,
    console: Console,
    *,
    mapping: str | None,
    dry_run: bool,
    replay: bool,
    json_output: bool = False,
) -> int:
    """One pass; 0 when every flow finished (records refused by the target are dead letters, not failures).

    With ``json_output`` stdout carries only the :func:`sync_report` document; progress and errors go to stderr.
    """
    shown = Console(stderr=True) if json_output else console

    async def work() -> None:
        async with Services.open(config) as services:
            runner = Runner(services)
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=shown) as bar:

                def progress(name: str) -> Callable[[PassStats], None]:
                    task = bar.add_task(f"{name}: reading")

                    def update(stats: PassStats) -> None:
                        bar.update(task, description=f"{name}: read {stats.read:,}, written {stats.written:,}")

                    return update

                planned = PlannedLinks()
                results = await runner.tables_pass(
                    only=mapping, dry_run=dry_run, replay=replay, progress=progress, planned=planned
                )
                budgets = estimate_dry_run(config, results, planned) if dry_run else None
                optouts = events = None
                if mapping is None and not dry_run:
                    optouts = await runner.optouts_pass()
                    events = await runner.events_pass()
            if json_output:
                print(json.dumps(sync_report(results, optouts, events, budgets)), file=console.file, flush=True)
                return
            console.print(_tables_table(results, budgets))
            if dry_run:
                console.print(
                    "API budget of the real pass (estimated): Dataverse requests, Campaign requests and ACS engine "
                    "calls (insert 1, update 2, delete 1); retries and token requests not included."
                )
                _samples(results, console)
            if optouts is not None:
                console.print(f"Opt-outs: {optouts.counts()}")
            if events is not None:
                console.print(f"Email events: {events.counts()}")

    try:
        event_loop.run(work())
    except CrmbridgeError as error:
        shown.print(f"[red]sync stopped:[/red] {error}")
        return 1
    return 0
