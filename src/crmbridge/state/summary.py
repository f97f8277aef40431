"""The per-flow summary behind ``crmbridge state info``: counts by grouped queries, never by loading rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from crmbridge.state import schema
from crmbridge.state.rows import DeadLetterStatus, Flow, ScopeSummary, StateInfo

__all__ = ["read_info"]

Key = tuple[str, str]


def _grouped_counts(connection: Connection, query: sa.Select[Any]) -> dict[Key, tuple[int, ...]]:
    return {(flow, scope): tuple(counts) for flow, scope, *counts in connection.execute(query)}


def _count(connection: Connection, table: sa.Table) -> int:
    return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _last_runs(connection: Connection) -> dict[Key, tuple[str, Any]]:
    runs = schema.runs
    ranked = sa.select(
        runs.c.flow,
        runs.c.scope,
        runs.c.status,
        runs.c.started_at,
        sa.func.row_number()
        .over(partition_by=(runs.c.flow, runs.c.scope), order_by=runs.c.started_at.desc())
        .label("n"),
    ).subquery()
    query = sa.select(ranked.c.flow, ranked.c.scope, ranked.c.status, ranked.c.started_at).where(ranked.c.n == 1)
    return {(flow, scope): (status, started) for flow, scope, status, started in connection.execute(query)}


def read_info(connection: Connection, url: URL, revision: str | None) -> StateInfo:
    links, pending, letters, conflicts = schema.links, schema.pending, schema.dead_letters, schema.conflicts
    tables = sa.literal(Flow.TABLES.value)
    link_counts = _grouped_counts(
        connection,
        sa.select(tables, links.c.mapping, sa.func.count(), sa.func.count(links.c.deleted_at)).group_by(
            links.c.mapping
        ),
    )
    pending_counts = _grouped_counts(
        connection, sa.select(tables, pending.c.mapping, sa.func.count()).group_by(pending.c.mapping)
    )
    open_letters = _grouped_counts(
        connection,
        sa.select(letters.c.flow, letters.c.mapping, sa.func.count())
        .where(letters.c.status == DeadLetterStatus.OPEN.value)
        .group_by(letters.c.flow, letters.c.mapping),
    )
    conflict_counts = _grouped_counts(
        connection,
        sa.select(sa.literal(Flow.OPTOUTS.value), conflicts.c.pair, sa.func.count()).group_by(conflicts.c.pair),
    )
    checkpoints = {(row.flow, row.scope): row for row in connection.execute(sa.select(schema.checkpoints))}
    last_runs = _last_runs(connection)
    keys = sorted(
        set(link_counts)
        | set(pending_counts)
        | set(open_letters)
        | set(conflict_counts)
        | set(checkpoints)
        | set(last_runs)
    )
    scopes = []
    for key in keys:
        checkpoint = checkpoints.get(key)
        run = last_runs.get(key)
        linked, deleted = link_counts.get(key, (0, 0))
        scopes.append(
            ScopeSummary(
                flow=key[0],
                scope=key[1],
                checkpoint_updated_at=checkpoint.updated_at if checkpoint is not None else None,
                in_flight=checkpoint is not None and checkpoint.in_flight is not None,
                links=linked - deleted,
                deleted=deleted,
                pending=pending_counts.get(key, (0,))[0],
                dead_letters_open=open_letters.get(key, (0,))[0],
                conflicts=conflict_counts.get(key, (0,))[0],
                last_run_status=run[0] if run is not None else None,
                last_run_started_at=run[1] if run is not None else None,
            )
        )
    return StateInfo(
        url=url.render_as_string(hide_password=True),
        backend=url.get_backend_name(),
        schema_revision=revision,
        scopes=scopes,
        ledger_events=_count(connection, schema.event_ledger),
        unmatched_events=_count(connection, schema.unmatched_events),
    )
