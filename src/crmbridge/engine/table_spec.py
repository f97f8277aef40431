"""What the tables flow needs to know about one mapping, built once from the configuration.

The fingerprint covers everything that changes what a full read would write (columns, filters, keys, links):
a checkpoint made under another fingerprint triggers a replay of that mapping, because a Dataverse delta
link is bound to the ``$select`` it was created with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from crmbridge.config import CrmbridgeConfig, TableMapping
from crmbridge.mapping import CompiledMapping, compile_mapping

__all__ = ["ParentLink", "TableSpec", "build_table_spec", "lookup_value_column", "mapping_order"]


@dataclass(frozen=True, slots=True)
class ParentLink:
    """A lookup column that becomes an ACS link to the row synced by ``parent_mapping``."""

    lookup_column: str  # as Dataverse returns it: _new_contactid_value
    parent_mapping: str
    parent_resource: str
    parent_key_field: str
    campaign_link: str
    max_wait: timedelta
    on_parent_deleted: str = "delete"  # delete | keep: this mapping's rows linked to a parent crmbridge deleted
    parent_deletes_rows: bool = False  # the parent mapping deletes rows in Campaign (deletes or filter-outs)


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    table: str
    entity_set: str | None
    resource: str
    compiled: CompiledMapping
    propagate_deletes: bool
    delete_filtered_out: bool
    parents: tuple[ParentLink, ...]
    create_only: tuple[tuple[str, str], ...]  # (Dataverse column, ACS field) written on create only: opt-out flags
    fingerprint: str

    @property
    def columns(self) -> list[str]:
        """Every column the read must ``$select``: mapped, filtered, lookups and create-only opt-out flags."""
        seen = dict.fromkeys(self.compiled.source_columns)
        for link in self.parents:
            seen.setdefault(link.lookup_column, None)
        for column, _ in self.create_only:
            seen.setdefault(column, None)
        return list(seen)


def lookup_value_column(lookup: str) -> str:
    """Dataverse returns lookup ``new_contactid`` as ``_new_contactid_value``."""
    if lookup.startswith("_") and lookup.endswith("_value"):
        return lookup
    return f"_{lookup}_value"


def _fingerprint(mapping: TableMapping, create_only: tuple[tuple[str, str], ...]) -> str:
    # What happens to children of deleted parents changes no row a read writes: not part of the fingerprint.
    excluded: Any = {"enabled": True, "interval": True, "name": True, "links": {"__all__": {"on_parent_deleted"}}}
    shape = {
        "mapping": mapping.model_dump(mode="json", exclude=excluded),
        "create_only": create_only,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def build_table_spec(config: CrmbridgeConfig, mapping: TableMapping) -> TableSpec:
    """Compile ``mapping`` with what the rest of the configuration implies for it."""
    by_name = {m.name: m for m in config.mappings}
    parents = []
    for link in mapping.links:
        parent = by_name[link.mapping]  # config validation guarantees the parent exists
        parents.append(
            ParentLink(
                lookup_column=lookup_value_column(link.lookup),
                parent_mapping=parent.name,
                parent_resource=parent.resource,
                parent_key_field=parent.key.campaign,
                campaign_link=link.campaign_link,
                max_wait=link.max_wait,
                on_parent_deleted=link.on_parent_deleted,
                parent_deletes_rows=parent.deletes == "propagate" or parent.filters.on_filtered_out == "delete",
            )
        )
    create_only: tuple[tuple[str, str], ...] = ()
    optouts = config.optouts
    pushes_to_campaign = optouts.mode in ("dynamics_to_campaign", "bidirectional")
    if mapping.table == "contact" and pushes_to_campaign:
        # A contact already opted out in Dynamics is created opted out in the same POST, never targetable.
        create_only = tuple((pair.dynamics, pair.campaign) for pair in optouts.pairs)
    filters = mapping.filters
    compiled = compile_mapping(
        name=mapping.name,
        source_key=mapping.key.dynamics,
        campaign_key=mapping.key.campaign,
        fields=mapping.fields,
        conditions=filters.conditions,
        match=filters.match,
    )
    return TableSpec(
        name=mapping.name,
        table=mapping.table,
        entity_set=mapping.entity_set,
        resource=mapping.resource,
        compiled=compiled,
        propagate_deletes=mapping.deletes == "propagate",
        delete_filtered_out=filters.on_filtered_out == "delete",
        parents=tuple(parents),
        create_only=create_only,
        fingerprint=_fingerprint(mapping, create_only),
    )


def mapping_order(config: CrmbridgeConfig) -> list[TableMapping]:
    """Enabled mappings with parents before children, so a pass can link children to parents it just wrote."""
    enabled = {m.name: m for m in config.mappings if m.enabled}
    ordered: list[TableMapping] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name not in enabled or any(m.name == name for m in ordered):
            return
        if name in visiting:
            return  # a cycle is refused by config validation; never loop here
        visiting.add(name)
        for link in enabled[name].links:
            visit(link.mapping)
        ordered.append(enabled[name])

    for name in enabled:
        visit(name)
    return ordered
