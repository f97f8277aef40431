"""The "mappings in force" section: what each table mapping, the event flow and the opt-out pairs do.

Only fields named here are shown, never a whole model dump, so no ``SecretStr`` (client secrets, the dashboard
token, SFTP passwords) and no connection URL can reach the page.
"""

from __future__ import annotations

import html
from datetime import timedelta

from crmbridge.config import CrmbridgeConfig, EventsSettings, FieldMapping, OptOutSettings, TableMapping

__all__ = ["render_config"]


def _t(value: object) -> str:
    return html.escape(str(value), quote=True)


def _span(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _every(interval: timedelta) -> str:
    return f"every {_span(interval)}"


def _field_notes(field: FieldMapping) -> str:
    notes = []
    if not field.apply_updates:
        notes.append("create only")
    if field.picklist:
        notes.append(f"picklist as {field.picklist}")
    if field.replacements:
        pairs = ", ".join(f"{key} → {value}" for key, value in field.replacements.items())
        notes.append(f"replaces {pairs}")
    if field.max_length:
        notes.append(f"max {field.max_length} chars")
    return _t("; ".join(notes))


def _filters(mapping: TableMapping) -> str:
    conditions = mapping.filters.conditions
    if not conditions:
        return "every row"
    joiner = " and " if mapping.filters.match == "all" else " or "
    parts = []
    for condition in conditions:
        value = "" if condition.value is None else f" {condition.value!r}"
        parts.append(f"{condition.column} {condition.op.value}{value}")
    leaving = "kept" if mapping.filters.on_filtered_out == "keep" else "deleted in Campaign"
    return _t(f"{joiner.join(parts)} (rows that leave the filter are {leaving})")


def _table_mapping(mapping: TableMapping, config: CrmbridgeConfig) -> str:
    state = "" if mapping.enabled else ' <span class="badge b-muted">disabled</span>'
    summary = (
        f"Dynamics <code>{_t(mapping.table)}</code> → Campaign <code>{_t(mapping.resource)}</code>, "
        f"matched on <code>{_t(mapping.key.dynamics)}</code> = <code>{_t(mapping.key.campaign)}</code>; "
        f"deletes {_t(mapping.deletes)}; {_t(_every(config.interval_of(mapping)))}"
    )
    rows = [
        f"<tr><td><code>{_t(field.dynamics)}</code></td><td><code>{_t(field.campaign)}</code></td>"
        f"<td>{_field_notes(field)}</td></tr>"
        for field in mapping.fields
    ]
    rows += [
        f"<tr><td><code>{_t(link.lookup)}</code></td><td><code>{_t(link.campaign_link)}</code></td>"
        f"<td>{_t(f'link to mapping {link.mapping}; waits up to {_span(link.max_wait)} for its parent')}</td></tr>"
        for link in mapping.links
    ]
    table = (
        "<table><thead><tr><th>Dynamics column</th><th>Campaign field</th><th>notes</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    return (
        f'<div class="mapping" data-mapping="{_t(mapping.name)}"><h3>{_t(mapping.name)}{state}</h3>'
        f'<div>{summary}</div><div class="muted">filter: {_filters(mapping)}</div>{table}</div>'
    )


def _events(events: EventsSettings, config: CrmbridgeConfig) -> str:
    source = "Adobe I/O Events journal" if events.source.journal is not None else "workflow export files"
    types = events.types
    enabled = [name for name in ("send", "open", "click") if getattr(types, name)]
    if types.bounce != "off":
        enabled.append("bounce (" + types.bounce.replace("_", " ") + ")")
    return (
        '<div class="mapping" data-mapping="events"><h3>email events</h3>'
        f"<div>Campaign {_t(source)} → Dynamics activities: {_t(', '.join(enabled) or 'no event types')}; "
        f"{_t(_every(config.interval_of(events)))}</div></div>"
    )


def _optouts(optouts: OptOutSettings, config: CrmbridgeConfig) -> str:
    pairs = ", ".join(f"{pair.dynamics} ↔ {pair.campaign}" for pair in optouts.pairs) or "no pairs"
    return (
        '<div class="mapping" data-mapping="optouts"><h3>opt-outs</h3>'
        f"<div>{_t(optouts.mode.replace('_', ' '))}: {_t(pairs)}; conflicts decided by rule "
        f"<code>{_t(optouts.conflict_rule)}</code>; {_t(_every(config.interval_of(optouts)))}</div></div>"
    )


def render_config(config: CrmbridgeConfig | None) -> str:
    """The mappings section body; says so when the dashboard runs without a configuration."""
    if config is None:
        return '<p class="empty">No configuration loaded.</p>'
    parts = [_table_mapping(mapping, config) for mapping in config.mappings]
    if config.events is not None:
        parts.append(_events(config.events, config))
    if config.optouts.mode != "disabled":
        parts.append(_optouts(config.optouts, config))
    return "".join(parts) or '<p class="empty">The configuration has no mappings.</p>'
