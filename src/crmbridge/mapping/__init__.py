"""Mapping specs compiled into pure functions: field pairs, replacements, picklists, filters, coercion."""

from __future__ import annotations

from crmbridge.mapping.compile import CompiledMapping, MappedRecord, compile_mapping
from crmbridge.mapping.filters import FilterCondition, compile_filter
from crmbridge.mapping.values import MappingError, to_acs_value

__all__ = [
    "CompiledMapping",
    "FilterCondition",
    "MappedRecord",
    "MappingError",
    "compile_filter",
    "compile_mapping",
    "to_acs_value",
]
