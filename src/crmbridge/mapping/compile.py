"""Compile one table mapping into pure functions: row → filter verdict, row → ACS values and their hash.

The compiled mapping knows nothing about HTTP or state: the tables flow feeds it Dataverse rows and gets back
what to write. ``apply_updates: false`` fields are written on create and replay only, so they are left out of
update payloads and out of the hash that decides whether an update is needed at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crmbridge.mapping.filters import FilterCondition, RowPredicate, compile_filter
from crmbridge.mapping.values import AcsType, MappingError, to_acs_value

__all__ = ["CompiledMapping", "FieldSpec", "MappedRecord", "compile_mapping", "set_dotted"]

FORMATTED = "@OData.Community.Display.V1.FormattedValue"


class FieldSpec(Protocol):
    """What a field pair in the configuration provides."""

    @property
    def campaign(self) -> str: ...
    @property
    def dynamics(self) -> str: ...
    @property
    def apply_updates(self) -> bool: ...
    @property
    def replacements(self) -> Mapping[str, Any]: ...
    @property
    def picklist(self) -> str | None: ...  # "label" | "value" | None
    @property
    def max_length(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """What one source row becomes in Campaign."""

    key: str  # the business key value (e.g. the contactid written to externalId)
    create_values: dict[str, Any]  # every mapped field, nested by dotted path, plus the key field
    update_values: dict[str, Any]  # only fields with apply_updates, plus the key field
    values_hash: str  # hash of update_values: equal hashes mean nothing to update


@dataclass(frozen=True, slots=True)
class _CompiledField:
    campaign: str
    dynamics: str
    apply_updates: bool
    replacements: Mapping[str, Any]
    use_label: bool
    acs_type: AcsType
    max_length: int | None

    def value(self, row: Mapping[str, Any]) -> Any:
        raw = row.get(self.dynamics)
        if self.use_label:
            label = row.get(self.dynamics + FORMATTED)
            raw = label if label is not None or raw is None else raw
        if self.replacements:
            replaced = _replace(self.replacements, raw)
            if replaced is not _MISSING:
                return replaced
        return to_acs_value(raw, self.acs_type, field=self.campaign, max_length=self.max_length)


_MISSING = object()


def _replace(replacements: Mapping[str, Any], raw: Any) -> Any:
    """Replacement keys are written as text in YAML; match on the value's text (``True`` → ``true``).

    An empty value matches the key ``null`` (YAML's ``null:`` arrives as the text ``None``).
    """
    if raw is None:
        for key in ("null", "None"):
            if key in replacements:
                return replacements[key]
        return _MISSING
    text = "true" if raw is True else "false" if raw is False else str(raw)
    if text in replacements:
        return replacements[text]
    return _MISSING


def set_dotted(target: dict[str, Any], path: str, value: Any) -> None:
    """Set ``location.city`` as ``{"location": {"city": value}}``, merging with what is there."""
    parts = path.split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MappingError(f"field {path}: {part} is both a value and a group of fields")
        node = child
    node[parts[-1]] = value


def _hash(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """A table mapping as pure functions. Build it with :func:`compile_mapping`."""

    name: str
    source_key: str  # Dataverse column holding the id, e.g. contactid
    campaign_key: str  # ACS field holding it, e.g. externalId
    fields: tuple[_CompiledField, ...]
    passes: RowPredicate  # True when the row passes the mapping's filters
    filter_columns: tuple[str, ...] = ()

    @property
    def source_columns(self) -> list[str]:
        """The columns to ``$select``: the key, every mapped and every filtered column, once each, in order."""
        seen: dict[str, None] = {self.source_key: None}
        for f in self.fields:
            seen.setdefault(f.dynamics, None)
        for column in self.filter_columns:
            seen.setdefault(column, None)
        return list(seen)

    def map(self, row: Mapping[str, Any]) -> MappedRecord:
        """Map one Dataverse row. Raises :class:`MappingError` naming the field when a value cannot be written."""
        key = row.get(self.source_key)
        if not key:
            raise MappingError(f"mapping {self.name}: row has no {self.source_key}")
        create: dict[str, Any] = {self.campaign_key: str(key)}
        update: dict[str, Any] = {self.campaign_key: str(key)}
        for f in self.fields:
            value = f.value(row)
            if value is not None:
                # An empty source value is left out of a create (ACS refuses null for many field types);
                # on update it is sent as null, to clear what Campaign holds (inferred: ACS clears on null).
                set_dotted(create, f.campaign, value)
            if f.apply_updates:
                set_dotted(update, f.campaign, value)
        return MappedRecord(key=str(key), create_values=create, update_values=update, values_hash=_hash(update))


def compile_mapping(
    *,
    name: str,
    source_key: str,
    campaign_key: str,
    fields: Sequence[FieldSpec],
    conditions: Sequence[FilterCondition] = (),
    match: str = "all",
    acs_types: Mapping[str, AcsType] | None = None,
) -> CompiledMapping:
    """Compile a mapping. ``acs_types`` (from ACS ``resourceType`` metadata) pins conversions where known."""
    types = acs_types or {}
    targets = [f.campaign for f in fields]
    duplicates = sorted({t for t in targets if targets.count(t) > 1})
    if duplicates:
        # Adobe's integration refuses many-to-one too: two columns would overwrite each other.
        raise ValueError(f"mapping {name}: Campaign field(s) mapped twice: {', '.join(duplicates)}")
    compiled = tuple(
        _CompiledField(
            campaign=f.campaign,
            dynamics=f.dynamics,
            apply_updates=f.apply_updates,
            replacements={str(k): v for k, v in (f.replacements or {}).items()},
            use_label=f.picklist == "label",
            acs_type=types.get(f.campaign, "auto"),
            max_length=f.max_length,
        )
        for f in fields
    )
    return CompiledMapping(
        name=name,
        source_key=source_key,
        campaign_key=campaign_key,
        fields=compiled,
        passes=compile_filter(conditions, match),
        filter_columns=tuple(c.column for c in conditions),
    )
