"""Writes of event rows that may already exist: never an update of a closed activity.

A closed (completed or canceled) activity is read-only in Dataverse until reopened (dataverse-web-api.md §5.6-5.7),
and one such row fails a whole ``UpsertMultiple``. Rows that a crashed process may have written (the batches a pass
replays) and retried events are therefore looked up first, one query per table: a closed row is done, an open one
only needs closing, a missing one is written as usual. So is every batch of a pass without a stored position (a
first pass, or a state file rebuilt over an org that holds the rows). Other batches skip the lookup: their ids
cannot exist yet (the ledger drops what earlier passes committed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crmbridge.engine.activities import ActivityRow, TaskRow
from crmbridge.engine.ports import ActivitySink
from crmbridge.exceptions import RecordError

__all__ = ["OPEN", "ActivityPlan", "plan_activities", "write_activities", "write_tasks"]

OPEN = 0  # activitypointer statecode Open; Completed (1) and Canceled (2) are read-only


@dataclass(frozen=True, slots=True)
class ActivityPlan:
    """What each row still needs, from the state of the rows that exist."""

    write: list[ActivityRow] = field(default_factory=list)  # missing: upsert, then close
    close: list[ActivityRow] = field(default_factory=list)  # open: written, not closed yet
    done: list[ActivityRow] = field(default_factory=list)  # closed: written and closed already


def plan_activities(rows: Sequence[ActivityRow], states: Mapping[str, int]) -> ActivityPlan:
    plan = ActivityPlan()
    for row in rows:
        state = states.get(row.activity_id.lower())
        target = plan.write if state is None else plan.close if state == OPEN else plan.done
        target.append(row)
    return plan


async def write_activities(
    sink: ActivitySink, rows: Sequence[ActivityRow], *, may_exist: bool
) -> Mapping[str, RecordError]:
    """Activities written and closed; the rows refused, by id. A row found closed counts as written."""
    if not rows:
        return {}
    if not may_exist:
        return await sink.upsert_activities(rows)
    states = {row_id.lower(): state for row_id, state in (await sink.activity_states(rows)).items()}
    plan = plan_activities(rows, states)
    errors = dict(await sink.upsert_activities(plan.write)) if plan.write else {}
    if plan.close:
        errors.update(await sink.close_activities(plan.close))
    return errors


async def write_tasks(sink: ActivitySink, tasks: Sequence[TaskRow], *, may_exist: bool) -> Mapping[str, RecordError]:
    """Follow-up tasks created open; one that exists (open, or already handled by a person) is left alone."""
    if may_exist and tasks:
        existing = {row_id.lower() for row_id in await sink.task_states(tasks)}
        tasks = [task for task in tasks if task.activity_id.lower() not in existing]
    return await sink.upsert_tasks(tasks) if tasks else {}
