"""Conversion between stored rows and Dataverse JSON: reading (annotations, ETags) and writing (validation, binds)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from crmbridge.dynamics.odata import format_datetime, parse_datetime
from crmbridge.emulators.dynamics.protocol import ODataError, Prefer
from crmbridge.emulators.dynamics.schema import Column, Table
from crmbridge.emulators.dynamics.storage import Row, Storage

__all__ = ["FORMATTED", "etag", "from_payload", "lookup_names", "not_found", "to_json"]

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_TABLE = "Microsoft.Dynamics.CRM.lookuplogicalname"
LOOKUP_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
NULL_BODY = object()


def etag(row: Row) -> str:
    return f'W/"{row["versionnumber"]}"'


def not_found(table: Table, row_id: str) -> ODataError:
    return ODataError(404, "0x80040217", f"{table.logical_name} With Id = {row_id} Does Not Exist")


# --- reading -------------------------------------------------------------------------------------------------


def lookup_names(storage: Storage, table: Table, rows: Iterable[Row], columns: Iterable[Column]) -> dict[str, str]:
    """Primary names of the rows the lookups of ``rows`` point at (for FormattedValue annotations)."""
    wanted: dict[str, set[str]] = {}
    for column in columns:
        if column.type != "Lookup":
            continue
        for row in rows:
            if row.get(column.name):
                wanted.setdefault(row[f"{column.name}__target"], set()).add(row[column.name])
    names: dict[str, str] = {}
    for target_name, ids in wanted.items():
        target = storage.schema.tables.get(target_name)
        if target is None:
            continue
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            sql = (
                f"SELECT {target.primary_id} AS id, {target.primary_name} AS name FROM {target.sql_name}"
                f" WHERE {target.primary_id} IN ({', '.join('?' for _ in chunk)})"
            )
            names.update({r["id"]: r["name"] for r in storage.query(sql, chunk) if r["name"] is not None})
    return names


def to_json(
    table: Table, row: Row, columns: list[Column], prefer: Prefer, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """A row as Dataverse returns it: ETag first, selected columns, primary key always (§2.6)."""
    return make_serializer(table, columns, prefer, names)(row)


def make_serializer(
    table: Table, columns: list[Column], prefer: Prefer, names: dict[str, str] | None = None
) -> Callable[[Row], dict[str, Any]]:
    """One function per page: decisions about columns and annotations are taken once, not per row."""
    formatted = prefer.wants_annotation(FORMATTED)
    want_nav, want_table = prefer.wants_annotation(LOOKUP_NAV), prefer.wants_annotation(LOOKUP_TABLE)
    plain = [c for c in columns if c.name != table.primary_id]
    primary = table.primary_id
    lookup_names = names or {}

    if not (formatted or want_nav or want_table):
        plan = [(c.property_name, c.name, _CONVERTERS.get(c.type)) for c in plain]

        def fast(row: Row) -> dict[str, Any]:
            out: dict[str, Any] = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
            for prop, name, convert in plan:
                value = row.get(name)
                out[prop] = convert(value) if convert is not None and value is not None else value
            out[primary] = row[primary]
            return out

        return fast

    def full(row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
        for column in plain:
            value = _json_value(column, row.get(column.name))
            prop = column.property_name
            if formatted and value is not None:
                label = _formatted(column, value, lookup_names)
                if label is not None:
                    out[f"{prop}@{FORMATTED}"] = label
            if column.type == "Lookup" and value is not None:
                target = row.get(f"{column.name}__target") or ""
                if want_nav:
                    out[f"{prop}@{LOOKUP_NAV}"] = column.targets.get(target, column.name)
                if want_table:
                    out[f"{prop}@{LOOKUP_TABLE}"] = target
            out[prop] = value
        out[primary] = row[primary]
        return out

    return full


_CONVERTERS: dict[str, Callable[[Any], Any]] = {"Boolean": bool, "Decimal": float, "Money": float, "Double": float}


def _json_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "Boolean":
        return bool(value)
    if column.type in ("Decimal", "Money", "Double"):
        return float(value)
    return value


def _formatted(column: Column, value: Any, names: dict[str, str]) -> str | None:
    if column.type == "Boolean":
        return column.labels[1] if value else column.labels[0]
    if column.type in ("Picklist", "State", "Status"):
        return column.options.get(int(value))
    if column.type == "Lookup":
        return names.get(value)
    if column.type in ("Integer", "BigInt"):
        return f"{value:,}"
    if column.type == "Money":
        return f"${value:,.2f}"
    if column.type == "DateTime":
        return parse_datetime(value).strftime("%-m/%-d/%Y %-I:%M %p")  # user's format, UTC here (inferred)
    if column.type == "DateOnly":
        return date.fromisoformat(value).strftime("%-m/%-d/%Y")
    return None


# --- writing -------------------------------------------------------------------------------------------------

Resolver = Callable[[str, str], str]  # (reference URL, target logical name) -> row id


def from_payload(table: Table, payload: Any, resolve: Resolver, *, creating: bool) -> Row:
    """Validated stored values from a JSON body; raises the documented 400s (§5.1, §5.5, §7.4)."""
    if not isinstance(payload, dict):
        raise ODataError(400, "0x80048d19", "Error identified in Payload provided by the user: expected an object.")
    values: Row = {}
    for key, value in payload.items():
        if key.endswith("@odata.bind"):
            _bind(table, key.removesuffix("@odata.bind"), value, resolve, values)
        elif key.startswith("@") or "@" in key:
            continue  # instance annotations such as @odata.type / @odata.etag
        elif (column := table.columns.get(key)) is None or column.type == "Lookup":
            # Not a plain column: a navigation property (searched only now, as it scans every lookup's targets:
            # asked first, it cost a sixth of the emulator's CPU in a bulk write).
            if table.navigation(key) is None:
                raise ODataError(
                    400,
                    "0x0",
                    f"Invalid property '{key}' was found in entity 'Microsoft.Dynamics.CRM.{table.logical_name}'.",
                )
            if value is not None:
                raise ODataError(400, "0x80048d19", f"Deep insert through '{key}' is not supported by the emulator.")
            _bind(table, key, None, resolve, values)
        else:
            if column.name == table.primary_id:
                if creating:
                    values[column.name] = _guid(value, column)
                continue
            if column.read_only:
                continue  # system columns are silently ignored on write (inferred)
            values[column.name] = convert_value(table, column, value)
    return values


def _bind(table: Table, nav: str, value: Any, resolve: Resolver, values: Row) -> None:
    found = table.navigation(nav)
    if found is None:
        raise ODataError(
            400,
            "0x80048d19",
            f"An undeclared property '{nav}' which only has property annotations in the payload but no property"
            " value was found in the payload. In OData, only declared navigation properties and declared named"
            " streams can be represented as properties without values.",
        )
    column, target_name = found
    if value is None:
        values[column.name] = None
        values[f"{column.name}__target"] = None
        return
    if not isinstance(value, str):
        raise ODataError(400, "0x80048d19", f"The value of '{nav}@odata.bind' must be an entity reference URL.")
    values[column.name] = resolve(value, target_name)
    values[f"{column.name}__target"] = target_name


def convert_value(table: Table, column: Column, value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if kind in ("String", "Memo"):
        if not isinstance(value, str):
            raise _cannot_convert(value, column)
        if column.max_length is not None and len(value) > column.max_length:
            raise ODataError(
                400,
                "0x80044331",
                f"A validation error occurred.  The length of the '{column.name}' attribute of the"
                f" '{table.logical_name}' entity exceeded the maximum allowed length of '{column.max_length}'.",
            )
        return value
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise _cannot_convert(value, column)
        return int(value)
    if kind in ("Integer", "BigInt", "Picklist", "State", "Status"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _cannot_convert(value, column)
        if column.options and value not in column.options:
            # Message shape of Dataverse's option-set validation; code (inferred).
            raise ODataError(
                400,
                "0x8004431a",
                f"A validation error occurred. The value {value} of '{column.name}' on record of type"
                f" '{table.logical_name}' is outside the valid range. Accepted Values:"
                f" {','.join(str(v) for v in column.options)}",
            )
        return value
    if kind in ("Decimal", "Money", "Double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _cannot_convert(value, column)
        return float(value)
    if kind == "DateTime":
        try:
            return format_datetime(parse_datetime(str(value)))
        except ValueError as exc:
            raise _cannot_convert(value, column) from exc
    if kind == "DateOnly":
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError as exc:
            raise _cannot_convert(value, column) from exc
    return _guid(value, column)


def _guid(value: Any, column: Column) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise _cannot_convert(value, column) from exc


def _cannot_convert(value: Any, column: Column) -> ODataError:
    return ODataError(400, "0x0", f"Cannot convert the literal '{value}' to the expected type '{column.edm_type}'.")


def apply_computed(table: Table, row: Row) -> None:
    """Recompute columns such as ``fullname`` from their parts."""
    for column in table.columns.values():
        if column.computed_from:
            parts = [str(row[p]) for p in column.computed_from if row.get(p)]
            row[column.name] = " ".join(parts) or None
