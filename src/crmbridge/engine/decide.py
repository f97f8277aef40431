"""What the tables flow does with one source change: skip, write, delete, park or dead-letter. Pure.

The same decisions drive a real pass and a dry run, so a dry run's counts are what the real pass then does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crmbridge.engine.ports import ParentRef
from crmbridge.engine.table_spec import TableSpec
from crmbridge.mapping import MappingError
from crmbridge.records import SourceChange, Tombstone
from crmbridge.state import LinkRow

__all__ = ["Decision", "Outcome", "ReadKind", "decide"]


class ReadKind(StrEnum):
    INITIAL = "initial"  # first full read of a mapping
    DELTA = "delta"  # changes since the stored delta link
    REPLAY = "replay"  # full read that rewrites every row (mapping changed, or asked for)
    REBASELINE = "rebaseline"  # full read after an expired delta link; rows not seen are deletions


class Outcome(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    SKIP = "skip"
    FILTERED = "filtered"
    PARK = "park"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    source_id: str
    key: str | None = None  # business key in Campaign
    values: Mapping[str, Any] = field(default_factory=dict)
    parents: Mapping[str, ParentRef] = field(default_factory=dict)
    parent_keys: Mapping[str, str] = field(default_factory=dict)  # link field -> parent business key
    values_hash: str = ""
    reason: str = ""
    parked_on: tuple[str, str] | None = None  # (parent mapping, parent id)
    row: Mapping[str, Any] | None = None


def _is_alive(link: LinkRow | None) -> bool:
    return link is not None and not link.is_deleted


def _combined_hash(values_hash: str, parent_keys: Mapping[str, str]) -> str:
    if not parent_keys:
        return values_hash
    text = values_hash + "|" + "|".join(f"{k}={v}" for k, v in sorted(parent_keys.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _decide_tombstone(spec: TableSpec, change: Tombstone, link: LinkRow | None) -> Decision:
    if spec.propagate_deletes and link is not None and _is_alive(link):
        return Decision(Outcome.DELETE, change.id, key=link.target_key, reason="deleted in Dynamics")
    return Decision(Outcome.SKIP, change.id, reason="deleted in Dynamics; nothing to delete in Campaign")


def decide(
    spec: TableSpec,
    change: SourceChange | Tombstone,
    link: LinkRow | None,
    parent_links: Mapping[tuple[str, str], LinkRow],
    kind: ReadKind,
) -> Decision:
    """Decide one change. ``parent_links`` maps (parent mapping, parent id) to that parent's link, if any."""
    if isinstance(change, Tombstone):
        return _decide_tombstone(spec, change, link)
    row = change.values
    if not spec.compiled.passes(row):
        if spec.delete_filtered_out and link is not None and _is_alive(link):
            return Decision(Outcome.DELETE, change.id, key=link.target_key, reason="left the mapping's filter")
        return Decision(Outcome.FILTERED, change.id, reason="does not pass the mapping's filter")
    try:
        mapped = spec.compiled.map(row)
    except MappingError as error:
        return Decision(Outcome.FAIL, change.id, reason=str(error), row=row)
    parents: dict[str, ParentRef] = {}
    parent_keys: dict[str, str] = {}
    for parent in spec.parents:
        parent_id = row.get(parent.lookup_column)
        if not parent_id:
            continue  # an empty lookup is an absent link, not a missing parent
        parent_link = parent_links.get((parent.parent_mapping, str(parent_id)))
        if parent_link is None or parent_link.is_deleted:
            return Decision(
                Outcome.PARK,
                change.id,
                key=mapped.key,
                reason=f"parent {parent.parent_mapping} {parent_id} is not in Campaign yet",
                parked_on=(parent.parent_mapping, str(parent_id)),
                row=row,
            )
        parents[parent.campaign_link] = ParentRef(
            parent.parent_resource, parent.parent_key_field, parent_link.target_key
        )
        parent_keys[parent.campaign_link] = parent_link.target_key
    values_hash = _combined_hash(mapped.values_hash, parent_keys)
    known = _is_alive(link)
    if known and link is not None and link.values_hash == values_hash and kind is not ReadKind.REPLAY:
        return Decision(Outcome.SKIP, change.id, key=mapped.key, values_hash=values_hash, reason="unchanged")
    if known and kind is not ReadKind.REPLAY:
        values: dict[str, Any] = dict(mapped.update_values)
        outcome = Outcome.UPDATE
    else:
        values = dict(mapped.create_values)
        if not known:
            for column, acs_field in spec.create_only:
                if row.get(column) is not None:
                    values[acs_field] = bool(row[column])
        outcome = Outcome.UPDATE if known else Outcome.CREATE
    return Decision(
        outcome,
        change.id,
        key=mapped.key,
        values=values,
        parents=parents,
        parent_keys=parent_keys,
        values_hash=values_hash,
        row=row,
    )
