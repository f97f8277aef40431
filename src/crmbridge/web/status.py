"""The live status the runner hands to the dashboard, /metrics and /healthz: what each flow is doing right now.

The runner owns these values; the web layer only reads them through :class:`StatusSource`. They are plain frozen
dataclasses so a runner can build a fresh snapshot on every call without sharing mutable state with the web app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = ["FixedStatus", "FlowKind", "FlowState", "FlowStatus", "RunnerStatus", "StatusSource"]

FlowKind = Literal["tables", "events", "optouts"]
FlowState = Literal["idle", "running", "failed", "paused"]


@dataclass(frozen=True, slots=True)
class FlowStatus:
    """One flow as the runner sees it.

    ``state`` is ``failed`` when the last pass failed (until a pass succeeds), ``paused`` when the flow waits on a
    service (429 Retry-After) or an operator. ``last_counts`` are the counts of the last finished pass, keyed by
    outcome (``read``, ``written``, ``skipped``, ``failed``, ...). ``backlog`` is the number of changes known to be
    waiting (None when the source cannot tell); ``lag_seconds`` is the age of the oldest change not yet applied.
    """

    name: str
    kind: FlowKind
    state: FlowState
    last_pass_at: datetime | None = None
    last_counts: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None
    backlog: int | None = None
    lag_seconds: float | None = None
    next_run_at: datetime | None = None

    @property
    def is_healthy(self) -> bool:
        """The last pass succeeded, or the flow is running, idle or paused: anything but a failed pass."""
        return self.state != "failed"


@dataclass(frozen=True, slots=True)
class RunnerStatus:
    """Every flow of the runner, and when the runner started."""

    flows: list[FlowStatus]
    started_at: datetime

    @property
    def failing(self) -> list[FlowStatus]:
        return [flow for flow in self.flows if not flow.is_healthy]


class StatusSource(Protocol):
    """Whatever can tell the current status: the runner, or :class:`FixedStatus` in tests and one-off commands."""

    def status(self) -> RunnerStatus: ...


class FixedStatus:
    """A :class:`StatusSource` that answers with the snapshot it was last given (``update`` replaces it)."""

    def __init__(self, snapshot: RunnerStatus) -> None:
        self._snapshot = snapshot

    def update(self, snapshot: RunnerStatus) -> None:
        self._snapshot = snapshot

    def status(self) -> RunnerStatus:
        return self._snapshot
