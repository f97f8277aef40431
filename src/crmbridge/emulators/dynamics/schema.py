"""The tables the Dataverse emulator hosts: loaded from ``tables.json``, extended at run time by metadata writes.

A table is declared by its columns (Dataverse AttributeTypes); system columns every Dataverse table has (primary
id, createdon, modifiedon, versionnumber; for activities subject, regardingobjectid, ...) are added here, so the
schema file only lists what differs between tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["Column", "Key", "Schema", "Table", "load_default_schema"]

STRING_TYPES = {"String", "Memo"}
INTEGER_TYPES = {"Integer", "BigInt", "Picklist", "State", "Status", "Boolean"}
REAL_TYPES = {"Decimal", "Money", "Double"}
EDM_TYPES = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Integer": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Boolean": "Edm.Boolean",
    "DateTime": "Edm.DateTimeOffset",
    "DateOnly": "Edm.Date",
    "Decimal": "Edm.Decimal",
    "Money": "Edm.Decimal",
    "Double": "Edm.Double",
    "Uniqueidentifier": "Edm.Guid",
    "Lookup": "Edm.Guid",
}
METADATA_NAMESPACE = uuid.UUID("6f1d3c2a-93a0-4f43-9d1e-5a1b7c0e2d11")


@dataclass(slots=True)
class Column:
    name: str
    type: str
    max_length: int | None = None
    required: str = "None"
    options: dict[int, str] = field(default_factory=dict)  # Picklist/State/Status labels
    status_state: dict[int, int] = field(default_factory=dict)  # Status value -> its State value
    labels: tuple[str, str] = ("No", "Yes")  # Boolean (false label, true label)
    targets: dict[str, str] = field(default_factory=dict)  # Lookup: target table -> navigation property
    computed_from: tuple[str, ...] = ()
    read_only: bool = False
    default: Any = None

    @property
    def edm_type(self) -> str:
        return EDM_TYPES[self.type]

    @property
    def property_name(self) -> str:
        """The JSON name: lookups are read as ``_x_value`` (§2.2)."""
        return f"_{self.name}_value" if self.type == "Lookup" else self.name

    @property
    def sql_type(self) -> str:
        if self.type in STRING_TYPES:
            return "TEXT COLLATE NOCASE"  # Dataverse compares strings case-insensitively (§3.3)
        if self.type in INTEGER_TYPES:
            return "INTEGER"
        if self.type in REAL_TYPES:
            return "REAL"
        return "TEXT"


@dataclass(slots=True)
class Key:
    schema_name: str
    attributes: list[str]


@dataclass(slots=True)
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column]
    change_tracking: bool = True
    is_activity: bool = False
    is_custom: bool = False
    is_view: bool = False  # activitypointer: a read-only union of every activity table
    object_type_code: int = 10000
    keys: list[Key] = field(default_factory=list)

    @property
    def metadata_id(self) -> str:
        return str(uuid.uuid5(METADATA_NAMESPACE, self.logical_name))

    @property
    def sql_name(self) -> str:
        return f"t_{self.logical_name}"

    @property
    def schema_name(self) -> str:
        return self.logical_name if self.is_custom else self.logical_name.capitalize()

    def column_by_property(self, name: str) -> Column | None:
        """A column by its JSON name (``_parentcustomerid_value`` or ``emailaddress1``)."""
        if name.startswith("_") and name.endswith("_value"):
            column = self.columns.get(name[1:-6])
            return column if column is not None and column.type == "Lookup" else None
        column = self.columns.get(name)
        return column if column is not None and column.type != "Lookup" else None

    def navigation(self, nav_name: str) -> tuple[Column, str] | None:
        """The lookup column and target table of a single-valued navigation property."""
        for column in self.columns.values():
            for target, nav in column.targets.items():
                if nav == nav_name:
                    return column, target
        return None


def _column_from_spec(name: str, spec: dict[str, Any]) -> Column:
    options: dict[int, str] = {}
    status_state: dict[int, int] = {}
    for value, label in spec.get("options", {}).items():
        if isinstance(label, list):
            options[int(value)], status_state[int(value)] = label[0], int(label[1])
        else:
            options[int(value)] = label
    return Column(
        name=name,
        type=spec["type"],
        max_length=spec.get("max_length"),
        required=spec.get("required", "None"),
        options=options,
        status_state=status_state,
        labels=(str(spec.get("labels", ["No", "Yes"])[0]), str(spec.get("labels", ["No", "Yes"])[1])),
        targets=dict(spec.get("targets", {})),
        computed_from=tuple(spec.get("computed_from", ())),
        read_only=bool(spec.get("read_only", False) or spec.get("computed_from")),
        default=spec.get("default"),
    )


def _column_spec(column: Column) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": column.type}
    if column.max_length is not None:
        spec["max_length"] = column.max_length
    if column.required != "None":
        spec["required"] = column.required
    if column.options:
        spec["options"] = {
            str(v): ([label, column.status_state[v]] if v in column.status_state else label)
            for v, label in column.options.items()
        }
    if column.type == "Boolean":
        spec["labels"] = list(column.labels)
    if column.targets:
        spec["targets"] = column.targets
    if column.computed_from:
        spec["computed_from"] = list(column.computed_from)
    if column.default is not None:
        spec["default"] = column.default
    return spec


def table_from_spec(spec: dict[str, Any]) -> Table:
    logical = spec["logical_name"]
    is_activity = bool(spec.get("is_activity", False))
    primary_id = "activityid" if is_activity else f"{logical}id"
    columns: dict[str, Column] = {primary_id: Column(primary_id, "Uniqueidentifier", read_only=True)}
    if is_activity:
        columns.update(_activity_columns(logical))
    for name, column_spec in spec.get("columns", {}).items():
        columns[name] = _column_from_spec(name, column_spec)
    columns.setdefault("statecode", Column("statecode", "State", options={0: "Active", 1: "Inactive"}))
    columns.setdefault(
        "statuscode", Column("statuscode", "Status", options={1: "Active", 2: "Inactive"}, status_state={1: 0, 2: 1})
    )
    for name in ("createdon", "modifiedon"):
        columns[name] = Column(name, "DateTime", read_only=True)
    columns["versionnumber"] = Column("versionnumber", "BigInt", read_only=True)
    return Table(
        logical_name=logical,
        entity_set=spec.get("entity_set", f"{logical}s"),
        primary_id=primary_id,
        primary_name=spec.get("primary_name", "subject" if is_activity else f"{logical}name"),
        columns=columns,
        change_tracking=bool(spec.get("change_tracking", True)),
        is_activity=is_activity,
        is_custom=bool(spec.get("is_custom", "_" in logical)),
        is_view=bool(spec.get("is_view", False)),
        object_type_code=int(spec.get("object_type_code", 10000)),
        keys=[Key(k["schema_name"], list(k["attributes"])) for k in spec.get("alternate_keys", [])],
    )


def _activity_columns(logical: str) -> dict[str, Column]:
    """Columns every activity inherits from activitypointer (§5.6)."""
    return {
        "subject": Column("subject", "String", max_length=400),
        "description": Column("description", "Memo", max_length=2000),
        "regardingobjectid": Column(
            "regardingobjectid",
            "Lookup",
            targets={
                "contact": f"regardingobjectid_contact_{logical}",
                "account": f"regardingobjectid_account_{logical}",
            },
        ),
        "scheduledstart": Column("scheduledstart", "DateTime"),
        "scheduledend": Column("scheduledend", "DateTime"),
        "actualend": Column("actualend", "DateTime"),
        "activitytypecode": Column("activitytypecode", "String", max_length=64, read_only=True, default=logical),
        "statecode": Column("statecode", "State", options={0: "Open", 1: "Completed", 2: "Canceled"}),
        "statuscode": Column(
            "statuscode", "Status", options={1: "Open", 2: "Completed", 3: "Canceled"}, status_state={1: 0, 2: 1, 3: 2}
        ),
    }


def table_spec(table: Table) -> dict[str, Any]:
    generated = {table.primary_id, "createdon", "modifiedon", "versionnumber"}
    return {
        "logical_name": table.logical_name,
        "entity_set": table.entity_set,
        "primary_name": table.primary_name,
        "change_tracking": table.change_tracking,
        "is_activity": table.is_activity,
        "is_custom": table.is_custom,
        "is_view": table.is_view,
        "object_type_code": table.object_type_code,
        "columns": {n: _column_spec(c) for n, c in table.columns.items() if n not in generated},
        "alternate_keys": [{"schema_name": k.schema_name, "attributes": k.attributes} for k in table.keys],
    }


class Schema:
    """All hosted tables, by logical name and by entity set name."""

    def __init__(self, tables: list[Table]) -> None:
        self.tables: dict[str, Table] = {}
        for table in tables:
            self.add(table)

    def add(self, table: Table) -> None:
        self.tables[table.logical_name] = table

    def by_set(self, entity_set: str) -> Table | None:
        # Entity set names are case-sensitive: "Contacts" is a 404 (§2.2).
        return next((t for t in self.tables.values() if t.entity_set == entity_set), None)

    def to_json(self) -> str:
        return json.dumps({"tables": [table_spec(t) for t in self.tables.values()]})

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls([table_from_spec(spec) for spec in json.loads(text)["tables"]])

    def activity_tables(self) -> list[Table]:
        return [t for t in self.tables.values() if t.is_activity and not t.is_view]


def load_default_schema() -> Schema:
    text = resources.files("crmbridge.emulators.dynamics").joinpath("tables.json").read_text(encoding="utf-8")
    return Schema.from_json(text)
