"""JSON shapes of the /api/ endpoints and /healthz: plain dicts from the status, state and dead-letter values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmbridge.redaction import redact
from crmbridge.state import ConflictRecord, DeadLetter, DeadLetterStatus, StateInfo
from crmbridge.web.status import FlowStatus, RunnerStatus

__all__ = ["conflict_json", "health_json", "letter_json", "next_letter_status", "status_json"]

Json = dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def next_letter_status(current: DeadLetterStatus, action: str) -> DeadLetterStatus | None:
    """The status an operator action leads to, or None when it does not apply (a resolved letter is done).

    Retry also re-opens a dropped letter, so a drop by mistake can be undone; repeating an action changes nothing.
    """
    if current is DeadLetterStatus.RESOLVED:
        return None
    if action == "retry":
        return DeadLetterStatus.RETRYING
    if action == "drop":
        return DeadLetterStatus.DROPPED
    raise ValueError(f"unknown dead-letter action {action!r}")


def flow_json(flow: FlowStatus) -> Json:
    return {
        "name": flow.name,
        "kind": flow.kind,
        "state": flow.state,
        "last_pass_at": _iso(flow.last_pass_at),
        "last_counts": dict(flow.last_counts),
        "last_error": redact(flow.last_error) if flow.last_error is not None else None,
        "backlog": flow.backlog,
        "lag_seconds": flow.lag_seconds,
        "next_run_at": _iso(flow.next_run_at),
    }


def status_json(status: RunnerStatus, info: StateInfo) -> Json:
    scopes = [
        {
            "flow": scope.flow,
            "scope": scope.scope,
            "checkpoint_updated_at": _iso(scope.checkpoint_updated_at),
            "in_flight": scope.in_flight,
            "links": scope.links,
            "deleted": scope.deleted,
            "pending": scope.pending,
            "dead_letters_open": scope.dead_letters_open,
            "conflicts": scope.conflicts,
            "last_run_status": scope.last_run_status,
            "last_run_started_at": _iso(scope.last_run_started_at),
        }
        for scope in info.scopes
    ]
    return {
        "started_at": _iso(status.started_at),
        "flows": [flow_json(flow) for flow in status.flows],
        "state": {
            "backend": info.backend,
            "schema_revision": info.schema_revision,
            "scopes": scopes,
            "ledger_events": info.ledger_events,
            "unmatched_events": info.unmatched_events,
        },
    }


def health_json(status: RunnerStatus) -> tuple[int, Json]:
    """200 when no flow's last pass failed, else 503 naming the failing flows and their errors."""
    states = {flow.name: flow.state for flow in status.flows}
    failing = status.failing
    if not failing:
        return 200, {"status": "ok", "flows": states, "started_at": _iso(status.started_at)}
    failures = [{"name": flow.name, "error": redact(flow.last_error) if flow.last_error else None} for flow in failing]
    return 503, {"status": "failing", "failing": failures, "flows": states, "started_at": _iso(status.started_at)}


def letter_json(letter: DeadLetter) -> Json:
    return {
        "id": letter.id,
        "flow": letter.flow.value,
        "mapping": letter.mapping,
        "record_key": letter.record_key,
        "status": letter.status.value,
        "error_class": letter.error_class,
        "reason": redact(letter.reason),
        "attempts": letter.attempts,
        "first_failed_at": _iso(letter.first_failed_at),
        "last_failed_at": _iso(letter.failed_at),
        "closed_at": _iso(letter.closed_at),
        "close_reason": letter.close_reason,
        "payload": dict(letter.payload) if letter.payload is not None else None,
    }


def conflict_json(conflict: ConflictRecord) -> Json:
    return {
        "at": _iso(conflict.at),
        "contact_id": conflict.contact_id,
        "pair": conflict.pair,
        "dynamics_value": conflict.dynamics_value,
        "dynamics_changed_at": _iso(conflict.dynamics_changed_at),
        "campaign_value": conflict.campaign_value,
        "campaign_changed_at": _iso(conflict.campaign_changed_at),
        "winner": conflict.winner,
        "rule": conflict.rule,
        "resolved_value": conflict.resolved_value,
    }
