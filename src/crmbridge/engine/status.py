"""``crmbridge status``: per configured flow, what the state store says about it. Pure over what the store read.

Tables are shown per mapping; the events and opt-out flows keep several scopes (source position, watermarks,
one per pair for conflicts), which are folded into one line each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.table_spec import mapping_order
from crmbridge.state import Flow, ScopeSummary, StateInfo
from crmbridge.state.runs import RunRecord

__all__ = ["FlowStatus", "flow_statuses"]


@dataclass(frozen=True, slots=True)
class FlowStatus:
    flow: str  # tables | events | optouts
    name: str  # mapping name, or the flow's name
    checkpoint_at: datetime | None
    in_flight: bool
    last_run: RunRecord | None
    dead_letters_open: int
    conflicts: int
    parked: int
    links: int


def _fold(flow: str, name: str, scopes: list[ScopeSummary], runs: list[RunRecord]) -> FlowStatus:
    moments = [s.checkpoint_updated_at for s in scopes if s.checkpoint_updated_at is not None]
    return FlowStatus(
        flow=flow,
        name=name,
        checkpoint_at=max(moments) if moments else None,
        in_flight=any(s.in_flight for s in scopes),
        last_run=max(runs, key=lambda r: r.started_at) if runs else None,
        dead_letters_open=sum(s.dead_letters_open for s in scopes),
        conflicts=sum(s.conflicts for s in scopes),
        parked=sum(s.pending for s in scopes),
        links=sum(s.links for s in scopes),
    )


def flow_statuses(
    config: CrmbridgeConfig, info: StateInfo, runs: Mapping[tuple[str, str], RunRecord]
) -> list[FlowStatus]:
    """One line per enabled mapping, then events and opt-outs when configured; flows never run show 'never'."""
    by_scope = {(s.flow, s.scope): s for s in info.scopes}
    statuses = []
    for mapping in mapping_order(config):
        key = (Flow.TABLES.value, mapping.name)
        scopes = [by_scope[key]] if key in by_scope else []
        statuses.append(_fold(Flow.TABLES.value, mapping.name, scopes, [runs[key]] if key in runs else []))
    others = []
    if config.events is not None and config.events.enabled:
        others.append(Flow.EVENTS.value)
    if config.optouts.mode != "disabled":
        others.append(Flow.OPTOUTS.value)
    for flow in others:
        scopes = [s for s in info.scopes if s.flow == flow]
        flow_runs = [run for (run_flow, _), run in runs.items() if run_flow == flow]
        statuses.append(_fold(flow, flow, scopes, flow_runs))
    return statuses
