"""``crmbridge provision``: the Dataverse tables and columns the events flow writes, created when missing.

One custom activity table per enabled event type (the event-key column is its alternate key) and, when roll-ups
are on, the roll-up columns on contact. Idempotent: each run creates only what is missing, so running it twice
creates everything once. The table and column specs are pure functions of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmbridge.config import CrmbridgeConfig, EventsSettings
from crmbridge.config.events import ActivityTable
from crmbridge.dynamics.metadata import ActivityTableSpec, ColumnSpec, DataverseMetadata

__all__ = ["ProvisionItem", "activity_tables_by_type", "activity_tables_needed", "provision", "rollup_columns"]

EVENT_KEY_LENGTH = 100  # "sha256:" + 64 hex digits (records.EmailEvent.event_key)
URL_LENGTH = 4000  # the longest single-line text column Dataverse allows


@dataclass(frozen=True, slots=True)
class ProvisionItem:
    """One thing provision created (or, in a dry run, would create)."""

    kind: str  # table | column | key
    table: str
    name: str

    def describe(self) -> str:
        if self.kind == "table":
            return f"activity table {self.table}"
        return f"{self.kind} {self.table}.{self.name}"


def _enabled_tables(events: EventsSettings) -> list[tuple[str, ActivityTable]]:
    types, tables = events.types, events.activity_tables
    chosen = [("send", tables.send)] if types.send else []
    chosen += [("open", tables.open)] if types.open else []
    chosen += [("click", tables.click)] if types.click else []
    chosen += [("bounce", tables.bounce)] if types.bounce != "off" else []
    return chosen


def activity_tables_needed(events: EventsSettings) -> list[ActivityTableSpec]:
    """The activity table of each enabled event type, with the columns the events flow writes."""
    return [spec for _, spec in activity_tables_by_type(events)]


def activity_tables_by_type(events: EventsSettings) -> list[tuple[str, ActivityTableSpec]]:
    """(event type, its activity table) for each enabled event type."""
    columns = events.columns
    specs = [
        ColumnSpec(columns.occurred_on, "datetime", "Occurred on"),
        ColumnSpec(columns.campaign, "string", "Campaign", max_length=400),
        ColumnSpec(columns.delivery, "string", "Delivery", max_length=400),
        ColumnSpec(columns.url, "string", "Tracking URL", max_length=URL_LENGTH),
        ColumnSpec(columns.mirror_page, "string", "Mirror page URL", max_length=URL_LENGTH),
        ColumnSpec(columns.bounce_reason, "string", "Bounce reason", max_length=URL_LENGTH),
        ColumnSpec(columns.event_key, "string", "Event key", max_length=EVENT_KEY_LENGTH),
    ]
    return [
        (
            kind,
            ActivityTableSpec(
                schema_name=table.logical_name,
                display_name=f"Campaign email {kind}",
                plural_display_name=f"Campaign email {kind}s",
                description=f"Adobe Campaign email {kind} events, written by crmbridge",
                columns=specs,
                alternate_key=(columns.event_key,),
            ),
        )
        for kind, table in _enabled_tables(events)
    ]


def rollup_columns(events: EventsSettings) -> list[ColumnSpec]:
    """The contact columns of the roll-ups (dates, hard-bounce flag, counters)."""
    rollups = events.rollups
    return [
        ColumnSpec(rollups.last_sent, "datetime", "Last email sent"),
        ColumnSpec(rollups.last_opened, "datetime", "Last email opened"),
        ColumnSpec(rollups.last_clicked, "datetime", "Last email clicked"),
        ColumnSpec(rollups.last_bounced, "datetime", "Last email bounced"),
        ColumnSpec(rollups.hard_bounced, "boolean", "Email hard bounced"),
        ColumnSpec(rollups.sent_count, "integer", "Emails sent"),
        ColumnSpec(rollups.open_count, "integer", "Email opens"),
        ColumnSpec(rollups.click_count, "integer", "Email clicks"),
        ColumnSpec(rollups.bounce_count, "integer", "Email bounces"),
    ]


async def _missing_for_table(metadata: DataverseMetadata, spec: ActivityTableSpec) -> list[ProvisionItem]:
    name = spec.logical_name
    columns = [ProvisionItem("column", name, c.logical_name) for c in spec.columns]
    key = ProvisionItem("key", name, spec.key_schema_name.lower())
    if await metadata.table(name, fresh=True) is None:
        return [ProvisionItem("table", name, name), *columns, key]
    existing = {a.logical_name for a in await metadata.attributes(name, fresh=True)}
    missing = [item for item in columns if item.name not in existing]
    keys = await metadata.alternate_keys(name, fresh=True)
    if not any(set(k.attributes) == set(spec.alternate_key) for k in keys):
        missing.append(key)
    return missing


async def provision(metadata: DataverseMetadata, config: CrmbridgeConfig, *, dry_run: bool) -> list[ProvisionItem]:
    """Create what is missing (or, with ``dry_run``, only list it). Nothing to do without an enabled events flow."""
    events = config.events
    if events is None or not events.enabled:
        return []
    items: list[ProvisionItem] = []
    for spec in activity_tables_needed(events):
        if dry_run:
            items += await _missing_for_table(metadata, spec)
            continue
        report = await metadata.ensure_activity_table(spec)
        if report.created_table:
            items.append(ProvisionItem("table", spec.logical_name, spec.logical_name))
        items += [ProvisionItem("column", spec.logical_name, c) for c in report.created_columns]
        items += [ProvisionItem("key", spec.logical_name, k) for k in report.created_keys]
    if events.rollups.enabled:
        columns = rollup_columns(events)
        if dry_run:
            existing = {a.logical_name for a in await metadata.attributes("contact", fresh=True)}
            items += [
                ProvisionItem("column", "contact", c.logical_name) for c in columns if c.logical_name not in existing
            ]
        else:
            created = await metadata.ensure_columns("contact", columns)
            items += [ProvisionItem("column", "contact", name) for name in created]
    return items
