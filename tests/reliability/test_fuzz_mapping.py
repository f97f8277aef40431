"""Fuzzing the mapping compiler with random specs the config accepts, and random Dataverse rows.

Property: compiling gives a compiled mapping or the documented ``ValueError`` (a Campaign field mapped twice);
mapping a row gives a record or a ``MappingError`` (a typed ``RecordError``); a filter answers True or False.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from crmbridge.config.mappings import FieldMapping, FilterCondition
from crmbridge.mapping.compile import MappedRecord, compile_mapping
from crmbridge.mapping.values import MappingError

from .fuzzing import DEEP, QUICK, SCALARS, TEXT

COLUMNS = st.sampled_from(["contactid", "firstname", "birthdate", "donotbulkemail", "statecode", "x1"])
PATHS = st.sampled_from(["email", "firstName", "location", "location.city", "location.zip", "birthDate", "a.b.c"])
ACS_TYPES = st.sampled_from(["string", "boolean", "integer", "number", "date", "datetime", "auto"])
FILTER_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
ROW_VALUES = st.one_of(
    SCALARS,
    st.sampled_from(["2025-13-45", "2025-02-30T10:00:00Z", "٢٠٢٥-٠١-٠١", "0001-01-01T00:00:00+05:00", "1e400"]),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(TEXT, SCALARS, max_size=2),
)


@st.composite
def field_specs(draw: st.DrawFn) -> FieldMapping:
    raw = {
        "campaign": draw(PATHS),
        "dynamics": draw(COLUMNS),
        "apply_updates": draw(st.booleans()),
        "replacements": draw(st.dictionaries(TEXT, SCALARS, max_size=3)),
        "picklist": draw(st.sampled_from([None, "label", "value"])),
        "max_length": draw(st.one_of(st.none(), st.integers(1, 20))),
    }
    return FieldMapping.model_validate(raw)


@st.composite
def conditions(draw: st.DrawFn) -> FilterCondition:
    raw = {
        "column": draw(COLUMNS),
        "op": draw(
            st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "null", "not_null"])
        ),
        "value": draw(FILTER_VALUES),
    }
    try:
        return FilterCondition.model_validate(raw)
    except ValidationError:
        assume(False)
        raise


ROWS = st.dictionaries(
    st.one_of(COLUMNS, COLUMNS.map(lambda c: c + "@OData.Community.Display.V1.FormattedValue")), ROW_VALUES, max_size=8
)


def check(
    fields: list[FieldMapping],
    filters: list[FilterCondition],
    match: str,
    types: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    try:
        compiled = compile_mapping(
            name="fuzz",
            source_key="contactid",
            campaign_key="externalId",
            fields=fields,
            conditions=filters,
            match=match,
            acs_types=types,
        )
    except ValueError as error:
        refused = str(error)
        assert "mapped twice" in refused
        return
    for row in rows:
        assert isinstance(compiled.passes(row), bool)
        try:
            record = compiled.map(row)
        except MappingError:
            continue
        assert isinstance(record, MappedRecord)
        assert record.create_values["externalId"] == record.key


SPEC = {
    "fields": st.lists(field_specs(), max_size=4),
    "filters": st.lists(conditions(), max_size=3),
    "match": st.sampled_from(["all", "any"]),
    "types": st.dictionaries(PATHS, ACS_TYPES, max_size=3),
    "rows": st.lists(ROWS, max_size=4),
}


# Regressions: a date-shaped text that is not a date (month 13) escaped the filter as a bare ValueError; a
# list value under `in` raised TypeError (unhashable).
@example(
    fields=[],
    filters=[FilterCondition(column="birthdate", op="eq", value="2025-13-45")],
    match="all",
    types={},
    rows=[{"contactid": "1"}],
)
@example(
    fields=[],
    filters=[FilterCondition(column="birthdate", op="in", value=["a"])],
    match="all",
    types={},
    rows=[{"contactid": "1", "birthdate": {"x": 1}}],
)
# Regression (found by the slow run): a date-shaped value that is no real date (30 February) raised ValueError.
@example(
    fields=[FieldMapping(campaign="email", dynamics="contactid")],
    filters=[],
    match="all",
    types={},
    rows=[{"contactid": "2025-02-30T10:00:00Z"}, {"contactid": "0001-01-01T00:00:00+05:00"}],
)
# Regression (slow run): an object value mapped to a field and to a sub-field of it made a circular payload.
@example(
    fields=[
        FieldMapping(campaign="location", dynamics="firstname", apply_updates=False),
        FieldMapping(campaign="location.city", dynamics="firstname"),
    ],
    filters=[],
    match="all",
    types={},
    rows=[{"contactid": True, "firstname": {}}],
)
@given(**SPEC)
@QUICK
def test_any_spec_compiles_and_maps_or_raises_typed_errors(
    fields: list[FieldMapping],
    filters: list[FilterCondition],
    match: str,
    types: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    check(fields, filters, match, types, rows)


@pytest.mark.slow
@given(**SPEC)
@DEEP
def test_mapping_compiler_holds_under_a_long_fuzz(
    fields: list[FieldMapping],
    filters: list[FilterCondition],
    match: str,
    types: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    check(fields, filters, match, types, rows)
