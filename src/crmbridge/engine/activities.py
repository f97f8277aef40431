"""What an email event becomes in Dynamics: an activity row, a follow-up task, roll-up values. Pure.

Adobe's integration writes "Campaign Name: …; Delivery Name: …" subjects, the event date, the clicked URL and
the mirror page URL on four custom activity tables, hard bounces only (shared/reference/adobe-d365-integration.md
§3.12). Ids are derived from the event's natural key, so a replayed or second-source copy lands on the same row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmbridge.config import EventsSettings
from crmbridge.config.events import ActivityTable
from crmbridge.records import EVENT_NAMESPACE, EmailEvent, EventType
from crmbridge.state import ContactRollup, LedgerEntry

__all__ = [
    "ActivityRow",
    "TaskRow",
    "activity_row",
    "followup_task",
    "is_enabled",
    "rollup_after",
    "rollup_values",
]

SUBJECT_MAX = 200  # activitypointer.subject is a 200-character text column


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One activity to upsert: on ``entity_set`` under ``activity_id``, regarding ``contact_id``."""

    entity_set: str
    logical_name: str
    activity_id: str
    contact_id: str
    event_key: str
    values: Mapping[str, Any]  # columns, the regarding bind included; state is closed by the writer


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A follow-up task for a person to act on (click, hard bounce); at most one per event."""

    activity_id: str
    contact_id: str
    event_key: str
    values: Mapping[str, Any]


def is_enabled(event: EmailEvent, settings: EventsSettings) -> bool:
    """The configured event types: open, click and hard bounces by default; sends and soft bounces optional."""
    types = settings.types
    if event.event_type is EventType.SEND:
        return types.send
    if event.event_type is EventType.OPEN:
        return types.open
    if event.event_type is EventType.CLICK:
        return types.click
    if types.bounce == "off":
        return False
    return types.bounce == "hard_and_soft" or (event.bounce_type or "hard").lower() == "hard"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(event: EmailEvent, settings: EventsSettings) -> ActivityTable:
    tables = settings.activity_tables
    return {
        EventType.SEND: tables.send,
        EventType.OPEN: tables.open,
        EventType.CLICK: tables.click,
        EventType.BOUNCE: tables.bounce,
    }[event.event_type]


def _template_values(event: EmailEvent) -> dict[str, str]:
    return {
        "campaign_id": event.campaign_id or "",
        "campaign_label": event.campaign_label or "",
        "delivery_id": event.delivery_id or "",
        "delivery_label": event.delivery_label or "",
        "url": event.url or "",
        "occurred_at": _iso(event.occurred_at),
    }


def activity_row(event: EmailEvent, contact_id: str, settings: EventsSettings) -> ActivityRow:
    """The activity row of ``event`` on the timeline of ``contact_id``."""
    table = _table(event, settings)
    columns = settings.columns
    subject = settings.subject_template.format(**_template_values(event))[:SUBJECT_MAX]
    values: dict[str, Any] = {
        columns.subject: subject,
        columns.occurred_on: _iso(event.occurred_at),
        columns.campaign: event.campaign_id,
        columns.delivery: event.delivery_id,
        columns.event_key: event.event_key,
        "actualend": _iso(event.occurred_at),
        # Regarding nav property pattern regardingobjectid_<target>_<activity> (dataverse-web-api.md §5.6).
        f"regardingobjectid_contact_{table.logical_name}@odata.bind": f"/contacts({contact_id})",
    }
    if event.event_type is EventType.CLICK:
        values[columns.url] = event.url
    if event.mirror_page_url:
        values[columns.mirror_page] = event.mirror_page_url
    if event.event_type is EventType.BOUNCE:
        values[columns.bounce_reason] = event.bounce_reason
    return ActivityRow(
        table.entity_set, table.logical_name, str(event.activity_id), contact_id, event.event_key, values
    )


def followup_task(event: EmailEvent, contact_id: str, settings: EventsSettings) -> TaskRow | None:
    """A task on click or hard bounce when enabled; its id is derived from the event, so it exists once."""
    tasks = settings.followup_tasks
    if event.event_type is EventType.CLICK and tasks.on_click:
        subject = tasks.click_subject.format(**_template_values(event))
        description = f"Adobe Campaign email clicked at {_iso(event.occurred_at)}"
    elif event.event_type is EventType.BOUNCE and tasks.on_hard_bounce and (event.bounce_type or "hard") == "hard":
        subject = tasks.bounce_subject.format(**_template_values(event))
        description = f"Adobe Campaign email hard-bounced at {_iso(event.occurred_at)}: {event.bounce_reason or ''}"
    else:
        return None
    due = event.occurred_at + timedelta(days=tasks.due_in_days)
    task_id = uuid.uuid5(EVENT_NAMESPACE, f"task:{event.event_key}")
    values = {
        "subject": subject[:SUBJECT_MAX],
        "description": description.strip(),
        "scheduledend": _iso(due),
        "regardingobjectid_contact_task@odata.bind": f"/contacts({contact_id})",
    }
    return TaskRow(str(task_id), contact_id, event.event_key, values)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def rollup_after(previous: ContactRollup | None, contact_id: str, entries: Iterable[LedgerEntry]) -> ContactRollup:
    """Fold new ledger entries into a contact's roll-up: maxima and counts, so order never matters."""
    rollup = previous or ContactRollup(contact_id)
    for entry in entries:
        kind = EventType(entry.event_type)
        if kind is EventType.SEND:
            rollup = replace(rollup, last_sent=_later(rollup.last_sent, entry.occurred_at), sends=rollup.sends + 1)
        elif kind is EventType.OPEN:
            rollup = replace(rollup, last_opened=_later(rollup.last_opened, entry.occurred_at), opens=rollup.opens + 1)
        elif kind is EventType.CLICK:
            rollup = replace(
                rollup, last_clicked=_later(rollup.last_clicked, entry.occurred_at), clicks=rollup.clicks + 1
            )
        else:
            rollup = replace(
                rollup,
                last_bounced=_later(rollup.last_bounced, entry.occurred_at),
                bounces=rollup.bounces + 1,
                hard_bounced=rollup.hard_bounced or (entry.bounce_type or "hard") == "hard",
            )
    return rollup


def rollup_values(rollup: ContactRollup, settings: EventsSettings) -> dict[str, Any]:
    """The contact columns of a roll-up, as configured."""
    columns = settings.rollups

    def when(moment: datetime | None) -> str | None:
        return _iso(moment) if moment is not None else None

    return {
        columns.last_sent: when(rollup.last_sent),
        columns.last_opened: when(rollup.last_opened),
        columns.last_clicked: when(rollup.last_clicked),
        columns.last_bounced: when(rollup.last_bounced),
        columns.hard_bounced: rollup.hard_bounced,
        columns.sent_count: rollup.sends,
        columns.open_count: rollup.opens,
        columns.click_count: rollup.clicks,
        columns.bounce_count: rollup.bounces,
    }
