"""The last pass of each flow and scope, with its counts and error (``crmbridge status``, the dashboard)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmbridge.state import schema

__all__ = ["RunRecord", "last_runs"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    flow: str
    scope: str
    status: str  # RunStatus value
    started_at: datetime
    finished_at: datetime | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


def last_runs(connection: Connection) -> dict[tuple[str, str], RunRecord]:
    """(flow, scope) -> its latest run, by one windowed query (never loading the whole history)."""
    runs = schema.runs
    ranked = sa.select(
        runs,
        sa.func.row_number()
        .over(partition_by=(runs.c.flow, runs.c.scope), order_by=runs.c.started_at.desc())
        .label("n"),
    ).subquery()
    query = sa.select(ranked).where(ranked.c.n == 1)
    found: dict[tuple[str, str], RunRecord] = {}
    for row in connection.execute(query):
        counts: Any = row.counts or {}
        found[(row.flow, row.scope)] = RunRecord(
            row.flow, row.scope, row.status, row.started_at, row.finished_at, dict(counts), row.error
        )
    return found
