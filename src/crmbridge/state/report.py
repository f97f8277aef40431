"""Renders a :class:`StateInfo` as the Rich tables of ``crmbridge state info``: one table per flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rich.table import Table

from crmbridge.state.rows import ConflictRecord, Flow, OptOutWrite, ScopeSummary, StateInfo

__all__ = ["describe_age", "info_tables", "optout_history_tables"]

Column = tuple[str, Callable[[ScopeSummary], str]]

# Columns that mean something for each flow; a flow not listed here gets the common ones only.
_FLOW_COLUMNS: dict[str, list[Column]] = {
    Flow.TABLES.value: [
        ("links", lambda s: str(s.links)),
        ("deleted", lambda s: str(s.deleted)),
        ("pending", lambda s: str(s.pending)),
    ],
    Flow.OPTOUTS.value: [("conflicts", lambda s: str(s.conflicts))],
}


def describe_age(moment: datetime | None, now: datetime) -> str:
    """``"3m 12s ago"``; a missing moment is ``"never"``."""
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h ago"
    if hours:
        return f"{hours}h {minutes}m ago"
    if minutes:
        return f"{minutes}m {seconds}s ago"
    return f"{seconds}s ago"


def _flow_title(flow: str, info: StateInfo) -> str:
    if flow == Flow.EVENTS.value:
        return f"{flow} — ledger: {info.ledger_events} events, {info.unmatched_events} unmatched"
    return flow


def _flow_table(flow: str, scopes: list[ScopeSummary], info: StateInfo, now: datetime) -> Table:
    extra = _FLOW_COLUMNS.get(flow, [])
    table = Table(title=_flow_title(flow, info), title_justify="left")
    table.add_column("scope")
    table.add_column("checkpoint")
    for header, _ in extra:
        table.add_column(header, justify="right")
    table.add_column("dead letters", justify="right")
    table.add_column("last run")
    for scope in scopes:
        checkpoint = describe_age(scope.checkpoint_updated_at, now)
        if scope.in_flight:
            checkpoint += " (page in flight)"
        last_run = "never"
        if scope.last_run_status is not None:
            last_run = f"{scope.last_run_status}, {describe_age(scope.last_run_started_at, now)}"
        cells = [scope.scope, checkpoint, *(render(scope) for _, render in extra), str(scope.dead_letters_open)]
        table.add_row(*cells, last_run)
    return table


def info_tables(info: StateInfo, now: datetime) -> list[Table]:
    """One table per flow with state, rows per scope (mapping, event source, opt-out pair)."""
    by_flow: dict[str, list[ScopeSummary]] = {}
    for scope in info.scopes:
        by_flow.setdefault(scope.flow, []).append(scope)
    if (info.ledger_events or info.unmatched_events) and Flow.EVENTS.value not in by_flow:
        by_flow[Flow.EVENTS.value] = []
    return [_flow_table(flow, scopes, info, now) for flow, scopes in by_flow.items()]


def optout_history_tables(
    contact: str, writes: Sequence[OptOutWrite], conflicts: Sequence[ConflictRecord]
) -> list[Table]:
    """``crmbridge optouts history``: the audit log of one contact, then its conflicts."""
    log = Table(title=f"Opt-out changes crmbridge made for contact {contact}")
    for name in ("when (UTC)", "pair", "written to", "old → new", "why", "rule"):
        log.add_column(name)
    for write in writes:
        log.add_row(
            f"{write.at:%Y-%m-%d %H:%M:%S}",
            write.pair,
            write.side_written,
            f"{write.old_value} → {write.new_value}",
            write.reason,
            write.rule or "",
        )
    found = Table(title=f"Conflicts for contact {contact}")
    for name in ("when (UTC)", "pair", "Dynamics", "Campaign", "winner", "rule", "result"):
        found.add_column(name)
    for conflict in conflicts:
        found.add_row(
            f"{conflict.at:%Y-%m-%d %H:%M:%S}",
            conflict.pair,
            f"{conflict.dynamics_value} ({_when(conflict.dynamics_changed_at)})",
            f"{conflict.campaign_value} ({_when(conflict.campaign_changed_at)})",
            conflict.winner,
            conflict.rule,
            str(conflict.resolved_value),
        )
    return [log, found]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else "no timestamp"
