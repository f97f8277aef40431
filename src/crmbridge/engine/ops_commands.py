"""What ``check``, ``provision``, ``status``, ``dlq``, ``replay`` and ``reconcile`` do, with their terminal output.

Each takes the validated configuration and a Rich console and returns the exit code. ``open_services`` is the
seam tests use to run a command against in-process emulators (it defaults to :meth:`Services.open`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crmbridge import event_loop
from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.check import run_check as check_findings
from crmbridge.engine.check_rules import Level, exit_code
from crmbridge.engine.deadletters import drop_letters, retry_letters
from crmbridge.engine.provision import provision
from crmbridge.engine.reconcile import ReconcileReport, reconcile, replay
from crmbridge.engine.runner import Runner, Services
from crmbridge.engine.status import flow_statuses
from crmbridge.exceptions import CrmbridgeError
from crmbridge.state import DeadLetterStatus, StateStore
from crmbridge.state.report import describe_age

__all__ = [
    "OpenServices",
    "run_check",
    "run_dlq_drop",
    "run_dlq_list",
    "run_dlq_retry",
    "run_dlq_show",
    "run_provision",
    "run_reconcile",
    "run_replay",
    "run_status",
]

OpenServices = Callable[[CrmbridgeConfig], AbstractAsyncContextManager[Services]]
_T = TypeVar("_T")
_STYLE = {Level.ERROR: "[red]error[/red]", Level.WARNING: "[yellow]warning[/yellow]", Level.OK: "[green]ok[/green]"}
SHOWN_DIFFS = 50  # rows listed per kind; the counts are always complete


def _default_open(config: CrmbridgeConfig) -> AbstractAsyncContextManager[Services]:
    return Services.open(config)


def _run(console: Console, label: str, work: Coroutine[Any, Any, _T]) -> _T | None:
    try:
        return event_loop.run(work)
    except CrmbridgeError as error:
        console.print(f"[red]{label} stopped:[/red] {escape(str(error))}")
        return None


def run_check(config: CrmbridgeConfig, console: Console, *, open_services: OpenServices = _default_open) -> int:
    async def work() -> int:
        async with open_services(config) as services:
            findings = await check_findings(config, services.dataverse, services.campaign)
        table = Table(title="crmbridge check: the configuration against both live services", title_justify="left")
        for column in ("", "where", "finding", "fix"):
            table.add_column(column)
        for finding in findings:
            table.add_row(_STYLE[finding.level], finding.where, escape(finding.message), escape(finding.fix))
        console.print(table)
        errors = sum(f.level is Level.ERROR for f in findings)
        warnings = sum(f.level is Level.WARNING for f in findings)
        console.print(
            f"errors: {errors}, warnings: {warnings}" + (" (fix the errors, then check again)" if errors else "")
        )
        return exit_code(findings)

    result = _run(console, "check", work())
    return 1 if result is None else result


def run_provision(
    config: CrmbridgeConfig, console: Console, *, dry_run: bool, open_services: OpenServices = _default_open
) -> int:
    async def work() -> int:
        if config.events is None or not config.events.enabled:
            console.print("Nothing to provision: the events flow is not enabled in this configuration.")
            return 0
        async with open_services(config) as services:
            items = await provision(services.dataverse.metadata, config, dry_run=dry_run)
        verb = "would create" if dry_run else "created"
        if not items:
            console.print("Everything exists already: nothing to create.")
        for item in items:
            console.print(f"{verb} {item.describe()}")
        if items and dry_run:
            console.print("Dry run: nothing was created. Run without --dry-run to create these.")
        return 0

    result = _run(console, "provision", work())
    return 1 if result is None else result


def run_status(config: CrmbridgeConfig, console: Console) -> int:
    try:
        with StateStore.open(config.state.url, create=False) as store:
            statuses = flow_statuses(config, store.info(), store.last_runs())
    except CrmbridgeError as error:
        console.print(f"[red]status:[/red] {escape(str(error))}")
        return 1
    now = datetime.now(UTC)
    table = Table(title="crmbridge status", title_justify="left")
    for column in ("flow", "checkpoint", "last run", "counts", "dead letters", "conflicts", "parked"):
        table.add_column(column, justify="right" if column in ("dead letters", "conflicts", "parked") else "left")
    for status in statuses:
        checkpoint = describe_age(status.checkpoint_at, now) + (" (page in flight)" if status.in_flight else "")
        run, counts = "never", ""
        if status.last_run is not None:
            run = f"{status.last_run.status}, {describe_age(status.last_run.started_at, now)}"
            if status.last_run.error:
                run += f"\n[red]{escape(status.last_run.error[:200])}[/red]"
            counts = ", ".join(f"{k} {v:,}" for k, v in status.last_run.counts.items() if v)
        name = status.name if status.flow != "tables" else f"tables: {status.name}"
        table.add_row(
            name, checkpoint, run, counts, str(status.dead_letters_open), str(status.conflicts), str(status.parked)
        )
    console.print(table)
    return 0


def _with_store(config: CrmbridgeConfig, console: Console, action: Callable[[StateStore], int]) -> int:
    try:
        with StateStore.open(config.state.url, create=False) as store:
            return action(store)
    except CrmbridgeError as error:
        console.print(f"[red]dlq:[/red] {escape(str(error))}")
        return 1


def run_dlq_list(config: CrmbridgeConfig, console: Console, *, status: str, mapping: str | None) -> int:
    wanted = None if status == "all" else DeadLetterStatus(status)

    def action(store: StateStore) -> int:
        table = Table(title=f"dead letters ({status})", title_justify="left")
        for column in ("id", "flow", "mapping", "record", "error", "reason", "attempts", "last failed", "status"):
            table.add_column(column)
        after, now = 0, datetime.now(UTC)
        while True:
            page = store.dead_letters.list(status=wanted, mapping=mapping, after_id=after, limit=500)
            for letter in page:
                table.add_row(
                    str(letter.id),
                    letter.flow.value,
                    letter.mapping,
                    letter.record_key,
                    letter.error_class,
                    escape(letter.reason[:120]),
                    str(letter.attempts),
                    describe_age(letter.failed_at, now),
                    letter.status.value,
                )
            if len(page) < 500:
                break
            after = page[-1].id or after
        console.print(table if table.row_count else "No dead letters.")
        return 0

    return _with_store(config, console, action)


def run_dlq_show(config: CrmbridgeConfig, console: Console, letter_id: int) -> int:
    def action(store: StateStore) -> int:
        letter = store.dead_letters.get(letter_id)
        if letter is None:
            console.print(f"[red]no dead letter {letter_id}[/red]")
            return 1
        fields: list[tuple[str, Any]] = [
            ("id", letter.id),
            ("flow", letter.flow.value),
            ("mapping", letter.mapping),
            ("record", letter.record_key),
            ("status", letter.status.value),
            ("error", letter.error_class),
            ("reason", letter.reason),
            ("attempts", letter.attempts),
            ("first failed", letter.first_failed_at),
            ("last failed", letter.failed_at),
        ]
        if letter.closed_at is not None:
            fields += [("closed", letter.closed_at), ("why", letter.close_reason)]
        for name, value in fields:
            console.print(f"[bold]{name:>12}[/bold]  {escape(str(value))}")
        payload = json.dumps(letter.payload, indent=2, ensure_ascii=False, default=str) if letter.payload else "-"
        console.print(f"[bold]{'payload':>12}[/bold]  (as stored when it failed; a retry re-reads the source)")
        console.print(escape(payload))
        return 0

    return _with_store(config, console, action)


def run_dlq_retry(
    config: CrmbridgeConfig, console: Console, letter_ids: Sequence[int], *, open_services: OpenServices = _default_open
) -> int:
    async def work() -> int:
        async with open_services(config) as services:
            results = await retry_letters(Runner(services), letter_ids)
        for result in results:
            colour = {"resolved": "green", "parked": "yellow", "failed": "red"}.get(result.outcome, "dim")
            console.print(f"{result.letter_id}: [{colour}]{result.outcome}[/{colour}] {escape(result.detail)}")
        return 1 if any(r.outcome == "failed" for r in results) else 0

    result = _run(console, "dlq retry", work())
    return 1 if result is None else result


def run_dlq_drop(config: CrmbridgeConfig, console: Console, letter_ids: Sequence[int]) -> int:
    def action(store: StateStore) -> int:
        changed = drop_letters(store, letter_ids)
        console.print(f"dropped {changed} of {len(letter_ids)} dead letters")
        return 0 if changed == len(letter_ids) else 1

    return _with_store(config, console, action)


def run_replay(
    config: CrmbridgeConfig, console: Console, mapping: str, *, open_services: OpenServices = _default_open
) -> int:
    async def work() -> int:
        async with open_services(config) as services:
            stats = await replay(Runner(services), mapping)
        console.print(
            f"replayed {mapping}: read {stats.read:,}, created {stats.created:,}, updated {stats.updated:,}, "
            f"deleted {stats.deleted:,}, filtered {stats.filtered:,}, parked {stats.parked:,}, failed {stats.failed:,}"
        )
        return 0

    result = _run(console, "replay", work())
    return 1 if result is None else result


def _diff_table(report: ReconcileReport, kind: str) -> Table | None:
    diffs = report.of_kind(kind)
    if not diffs:
        return None
    table = Table(title=f"{kind}: {len(diffs):,}", title_justify="left")
    table.add_column("key")
    table.add_column("detail")
    for diff in diffs[:SHOWN_DIFFS]:
        if kind == "different":
            detail = "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in diff.fields.items())
        elif kind == "extra":
            detail = "created by crmbridge" if diff.owned else "not created by crmbridge: left alone"
        else:
            detail = "not in Campaign"
        table.add_row(diff.key, escape(detail))
    if len(diffs) > SHOWN_DIFFS:
        table.add_row("…", f"{len(diffs) - SHOWN_DIFFS:,} more")
    return table


def run_reconcile(
    config: CrmbridgeConfig,
    console: Console,
    mapping: str,
    *,
    repair: bool,
    open_services: OpenServices = _default_open,
) -> int:
    """0 when both sides agree (or --repair fixed every difference it may fix), 1 otherwise."""

    async def work() -> int:
        async with open_services(config) as services:
            report = await reconcile(Runner(services), mapping, repair=repair)
        console.print(
            f"{mapping}: {report.dynamics_rows:,} Dynamics rows, {report.campaign_rows:,} Campaign rows, "
            f"{len(report.of_kind('missing')):,} missing, {len(report.of_kind('extra')):,} extra, "
            f"{len(report.of_kind('different')):,} different"
            + (f", {report.unmappable:,} refused by the mapping" if report.unmappable else "")
        )
        for kind in ("missing", "extra", "different"):
            table = _diff_table(report, kind)
            if table is not None:
                console.print(table)
        if not repair:
            return 0 if report.in_sync else 1
        console.print("repaired: " + ", ".join(f"{k} {v:,}" for k, v in report.repaired.items()))
        return 1 if report.repaired.get("failed") else 0

    result = _run(console, "reconcile", work())
    return 1 if result is None else result
