"""Metadata writes of the Dataverse emulator: create a (custom activity) table, add columns, add alternate keys.

Request bodies follow the Web API ``EntityMetadata`` / ``AttributeMetadata`` / ``EntityKeyMetadata`` shapes; the
schema change is persisted with the data, so a restarted emulator still hosts the created tables.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from crmbridge.emulators.dynamics.metadata import attribute_id, find_table
from crmbridge.emulators.dynamics.protocol import ApiRequest, ApiResponse, ODataError
from crmbridge.emulators.dynamics.schema import Column, Key, Table, table_from_spec
from crmbridge.emulators.dynamics.service import Org

__all__ = ["add_attribute", "add_key", "create_entity"]

METADATA_TYPES = {
    "StringAttributeMetadata": "String",
    "MemoAttributeMetadata": "Memo",
    "IntegerAttributeMetadata": "Integer",
    "BigIntAttributeMetadata": "BigInt",
    "BooleanAttributeMetadata": "Boolean",
    "DateTimeAttributeMetadata": "DateTime",
    "DecimalAttributeMetadata": "Decimal",
    "MoneyAttributeMetadata": "Money",
    "DoubleAttributeMetadata": "Double",
    "PicklistAttributeMetadata": "Picklist",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # names become SQL identifiers: nothing else gets through
KEY_TYPES = {"String", "Integer", "Decimal", "DateTime", "DateOnly", "Lookup", "Picklist"}  # §5.4 constraints


def _label_text(value: Any, fallback: str) -> str:
    if isinstance(value, dict):
        labels = value.get("LocalizedLabels") or []
        if labels and isinstance(labels[0], dict):
            return str(labels[0].get("Label", fallback))
    return fallback


def column_from_metadata(body: dict[str, Any]) -> Column:
    meta_type = str(body.get("@odata.type", "")).lstrip("#").removeprefix("Microsoft.Dynamics.CRM.")
    kind = METADATA_TYPES.get(meta_type)
    schema_name = body.get("SchemaName")
    if kind is None or not isinstance(schema_name, str):
        raise ODataError(400, "0x80048d19", f"Unsupported attribute metadata type '{meta_type}' or missing SchemaName.")
    if kind == "DateTime" and str(body.get("Format") or "").lower() == "dateonly":
        kind = "DateOnly"
    if not _NAME.match(schema_name.lower()):
        raise ODataError(400, "0x80048d19", f"Invalid SchemaName '{schema_name}'.")
    column = Column(name=schema_name.lower(), type=kind, max_length=body.get("MaxLength"))
    required = body.get("RequiredLevel")
    if isinstance(required, dict):
        column.required = str(required.get("Value", "None"))
    option_set = body.get("OptionSet") or {}
    if kind == "Picklist":
        column.options = {
            int(o["Value"]): _label_text(o.get("Label"), str(o["Value"])) for o in option_set.get("Options", [])
        }
    if kind == "Boolean":
        column.labels = (
            _label_text((option_set.get("FalseOption") or {}).get("Label"), "No"),
            _label_text((option_set.get("TrueOption") or {}).get("Label"), "Yes"),
        )
    if kind in ("String", "Memo") and column.max_length is None:
        column.max_length = 100 if kind == "String" else 2000
    return column


def _publish(org: Org, table: Table) -> None:
    org.storage.schema.add(table)
    org.storage.ensure_table(table)
    if table.is_activity:
        org.storage.refresh_activity_view()
    org.storage.save_schema()


def create_entity(org: Org, req: ApiRequest) -> ApiResponse:
    """``POST EntityDefinitions``: a custom table; ``IsActivity: true`` makes it an activity (§5.6)."""
    body = req.json()
    schema_name = body.get("SchemaName") if isinstance(body, dict) else None
    if not isinstance(schema_name, str) or "_" not in schema_name:
        raise ODataError(
            400, "0x80048d19", "A custom table needs a SchemaName with a publisher prefix, e.g. new_Event."
        )
    logical = schema_name.lower()
    if not _NAME.match(logical):
        raise ODataError(400, "0x80048d19", f"Invalid SchemaName '{schema_name}'.")
    if logical in org.storage.schema.tables:
        raise ODataError(
            400, "0x80047013", f"An entity with the specified name {logical} already exists."
        )  # (inferred)
    is_activity = bool(body.get("IsActivity", False))
    columns = [column_from_metadata(a) for a in body.get("Attributes", []) if isinstance(a, dict)]
    primary = next((a for a in body.get("Attributes", []) if isinstance(a, dict) and a.get("IsPrimaryName")), None)
    if primary is None and not is_activity:
        raise ODataError(400, "0x80048d19", "The table needs one string attribute with IsPrimaryName true.")
    spec = {
        "logical_name": logical,
        # Default LogicalCollectionName of a custom table: logical name + "s" (inferred).
        "entity_set": f"{logical}s",
        # An activity's primary name is always subject (§5.6).
        "primary_name": "subject" if is_activity else str(primary["SchemaName"]).lower() if primary else "",
        "change_tracking": bool(body.get("ChangeTrackingEnabled", False)),
        "is_activity": is_activity,
        "is_custom": True,
        "object_type_code": 10000 + len(org.storage.schema.tables),
        "columns": {},
    }
    table = table_from_spec(spec)
    for column in columns:
        if is_activity and column.name == "subject":
            continue
        table.columns[column.name] = column
    with org.storage.atomic():
        _publish(org, table)
    return ApiResponse(204, [("OData-EntityId", f"{req.base_url}EntityDefinitions({table.metadata_id})")])


def add_attribute(org: Org, req: ApiRequest, key_text: str) -> ApiResponse:
    table = find_table(org, key_text)
    column = column_from_metadata(req.json())
    if column.name in table.columns:
        raise ODataError(400, "0x80047013", f"An attribute with the name {column.name} already exists.")  # (inferred)
    table.columns[column.name] = column
    with org.storage.atomic():
        _publish(org, table)
    location = f"{req.base_url}EntityDefinitions({table.metadata_id})/Attributes({attribute_id(table, column)})"
    return ApiResponse(204, [("OData-EntityId", location)])


def add_key(org: Org, req: ApiRequest, key_text: str) -> ApiResponse:
    """``POST EntityDefinitions(LogicalName='x')/Keys`` with ``SchemaName`` and ``KeyAttributes`` (§5.4)."""
    table = find_table(org, key_text)
    body = req.json()
    attributes = body.get("KeyAttributes") if isinstance(body, dict) else None
    schema_name = body.get("SchemaName") if isinstance(body, dict) else None
    if not isinstance(attributes, list) or not attributes or not isinstance(schema_name, str):
        raise ODataError(400, "0x80048d19", "A key needs SchemaName and a non-empty KeyAttributes list.")
    if len(attributes) > 16 or len(table.keys) >= 10:
        raise ODataError(400, "0x80048d19", "A key has at most 16 columns and a table at most 10 keys (§5.4).")
    for name in attributes:
        column = table.columns.get(name)
        if column is None or column.type not in KEY_TYPES:
            raise ODataError(400, "0x80048d19", f"The attribute '{name}' cannot be part of an alternate key.")
    if not _NAME.match(schema_name.lower()):
        raise ODataError(400, "0x80048d19", f"Invalid SchemaName '{schema_name}'.")
    table.keys.append(Key(schema_name.lower(), [str(a) for a in attributes]))
    try:
        with org.storage.atomic():
            _publish(org, table)
    except sqlite3.IntegrityError as exc:
        table.keys.pop()
        # A real org marks the key Failed when existing rows collide; the emulator refuses it at once (inferred).
        raise ODataError(400, "0x80060892", f"Existing rows have duplicate values for key {schema_name}.") from exc
    return ApiResponse(204, [("OData-EntityId", f"{req.base_url}EntityDefinitions({table.metadata_id})/Keys")])
