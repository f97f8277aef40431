"""Dataverse table definitions (§8): tables, columns and types, option sets, alternate keys, change tracking, and
provisioning of a custom activity table with its columns and alternate key when they are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crmbridge.dynamics.errors import RequestKind
from crmbridge.dynamics.odata import format_string_literal
from crmbridge.dynamics.reader import TableRef, build_query
from crmbridge.dynamics.session import DataverseSession
from crmbridge.exceptions import RecordError

__all__ = [
    "ActivityTableSpec",
    "AttributeInfo",
    "ColumnSpec",
    "DataverseMetadata",
    "KeyInfo",
    "ProvisionReport",
    "TableInfo",
]

LANGUAGE_CODE = 1033  # labels are created in English; an admin can translate them in the maker portal
_TABLE_COLUMNS = (
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "ChangeTrackingEnabled",
    "IsActivity",
)
# AttributeType -> the metadata cast that exposes its OptionSet (§8.3).
_OPTION_SET_CASTS = {
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "MultiSelectPicklist": "MultiSelectPicklistAttributeMetadata",
}
# Right after a schema change the metadata cache may lag; this header asks for the latest definition (§8.3).
_FRESH = {"Consistency": "Strong"}


@dataclass(frozen=True, slots=True)
class TableInfo:
    logical_name: str
    schema_name: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    change_tracking: bool
    is_activity: bool

    @property
    def ref(self) -> TableRef:
        return TableRef(self.logical_name, self.entity_set, self.primary_id)


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    logical_name: str
    attribute_type: str  # String, Memo, Integer, Boolean, DateTime, Picklist, Lookup, Uniqueidentifier, ...
    required_level: str | None = None
    max_length: int | None = None
    valid_for_create: bool = True
    valid_for_update: bool = True
    targets: tuple[str, ...] = ()  # tables a Lookup points to


@dataclass(frozen=True, slots=True)
class KeyInfo:
    schema_name: str
    attributes: tuple[str, ...]
    status: str | None  # EntityKeyIndexStatus: Pending, InProgress, Active, Failed; only Active keys work


ColumnKind = Literal["string", "memo", "integer", "boolean", "datetime"]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """A column to provision; ``schema_name`` carries the publisher prefix (``cmb_TrackingUrl``)."""

    schema_name: str
    kind: ColumnKind = "string"
    display_name: str | None = None
    max_length: int | None = None  # string and memo only

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True, slots=True)
class ActivityTableSpec:
    """A custom activity table (``IsActivity``): its primary column is always ``subject`` (§5.6)."""

    schema_name: str  # e.g. "cmb_EmailOpen"
    display_name: str
    plural_display_name: str
    description: str = ""
    columns: Sequence[ColumnSpec] = ()
    alternate_key: Sequence[str] = ()  # logical names of the key columns; empty for none
    subject_max_length: int = 400

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()

    @property
    def key_schema_name(self) -> str:
        return f"{self.schema_name}_AltKey"


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What :meth:`DataverseMetadata.ensure_activity_table` created; all empty/False when everything existed."""

    table: TableInfo
    created_table: bool = False
    created_columns: tuple[str, ...] = ()
    created_keys: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.created_table or bool(self.created_columns) or bool(self.created_keys)


def label(text: str) -> dict[str, Any]:
    localized = {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": LANGUAGE_CODE}
    return {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [localized]}


def _label_text(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    user = value.get("UserLocalizedLabel")
    if isinstance(user, Mapping) and isinstance(user.get("Label"), str):
        return str(user["Label"])
    labels = value.get("LocalizedLabels") or []
    return str(labels[0]["Label"]) if labels and isinstance(labels[0], Mapping) else None


def _entity(logical_name: str) -> str:
    return f"EntityDefinitions(LogicalName={format_string_literal(logical_name)})"


def _table_info(body: Mapping[str, Any]) -> TableInfo:
    return TableInfo(
        logical_name=str(body["LogicalName"]),
        schema_name=str(body.get("SchemaName") or body["LogicalName"]),
        entity_set=str(body["EntitySetName"]),
        primary_id=str(body["PrimaryIdAttribute"]),
        primary_name=body.get("PrimaryNameAttribute"),
        change_tracking=bool(body.get("ChangeTrackingEnabled")),
        is_activity=bool(body.get("IsActivity")),
    )


def _attribute_info(body: Mapping[str, Any]) -> AttributeInfo:
    required = body.get("RequiredLevel")
    return AttributeInfo(
        logical_name=str(body["LogicalName"]),
        attribute_type=str(body.get("AttributeType")),
        required_level=str(required.get("Value")) if isinstance(required, Mapping) else None,
        max_length=body.get("MaxLength"),
        valid_for_create=bool(body.get("IsValidForCreate", True)),
        valid_for_update=bool(body.get("IsValidForUpdate", True)),
        targets=tuple(body.get("Targets") or ()),
    )


def column_metadata(column: ColumnSpec) -> dict[str, Any]:
    """The ``AttributeMetadata`` body that creates a column (Web API shapes of the SDK metadata classes)."""
    body: dict[str, Any] = {
        "SchemaName": column.schema_name,
        "DisplayName": label(column.display_name or column.schema_name),
        "RequiredLevel": {"Value": "None"},
    }
    if column.kind == "string":
        body.update({"MaxLength": column.max_length or 400, "FormatName": {"Value": "Text"}})
    elif column.kind == "memo":
        body.update({"MaxLength": column.max_length or 4000, "Format": "TextArea"})
    elif column.kind == "integer":
        body.update({"MinValue": -2147483648, "MaxValue": 2147483647, "Format": "None"})
    elif column.kind == "datetime":
        body.update({"Format": "DateAndTime", "DateTimeBehavior": {"Value": "UserLocal"}})
    elif column.kind == "boolean":
        body["OptionSet"] = {
            "OptionSetType": "Boolean",
            "TrueOption": {"Value": 1, "Label": label("Yes")},
            "FalseOption": {"Value": 0, "Label": label("No")},
        }
    cast = {"string": "String", "memo": "Memo", "integer": "Integer", "datetime": "DateTime", "boolean": "Boolean"}
    return {"@odata.type": f"Microsoft.Dynamics.CRM.{cast[column.kind]}AttributeMetadata", **body}


def activity_table_metadata(spec: ActivityTableSpec) -> dict[str, Any]:
    """The ``EntityMetadata`` body of a custom activity table (properties from Microsoft's custom activity doc)."""
    subject = {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "Subject",
        "IsPrimaryName": True,
        "MaxLength": spec.subject_max_length,
        "FormatName": {"Value": "Text"},
        "RequiredLevel": {"Value": "None"},
        "DisplayName": label("Subject"),
    }
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": spec.schema_name,
        "DisplayName": label(spec.display_name),
        "DisplayCollectionName": label(spec.plural_display_name),
        "Description": label(spec.description or spec.display_name),
        "OwnershipType": "UserOwned",
        "IsActivity": True,
        "IsAvailableOffline": True,
        "HasActivities": False,
        "HasNotes": True,
        "Attributes": [subject],
    }


class DataverseMetadata:
    """Reads table definitions and provisions crmbridge's activity tables."""

    def __init__(self, session: DataverseSession, *, solution: str | None = None) -> None:
        self._session = session
        self._solution = solution  # MSCRM.SolutionUniqueName for created components, if the admin wants one

    async def tables(self) -> list[TableInfo]:
        """Every table that is not private."""
        query = build_query(select=_TABLE_COLUMNS, filter="IsPrivate eq false")
        body = await self._get_json(f"EntityDefinitions?{query}", kind=RequestKind.READ)
        return [_table_info(item) for item in body.get("value", [])]

    async def table(self, logical_name: str, *, fresh: bool = False) -> TableInfo | None:
        """One table's definition, or None when the org has no such table."""
        body = await self._get_optional(f"{_entity(logical_name)}?{build_query(select=_TABLE_COLUMNS)}", fresh)
        return _table_info(body) if body is not None else None

    async def attributes(self, logical_name: str, *, fresh: bool = False) -> list[AttributeInfo]:
        """The table's columns with their types."""
        columns = ("LogicalName", "AttributeType", "RequiredLevel", "IsValidForCreate", "IsValidForUpdate")
        path = f"{_entity(logical_name)}/Attributes?{build_query(select=columns)}"
        body = await self._get_json(path, kind=RequestKind.READ, fresh=fresh)
        return [_attribute_info(item) for item in body.get("value", [])]

    async def option_set(self, logical_name: str, attribute: str, attribute_type: str) -> dict[int, str]:
        """Value -> label of a choice, state, status or yes/no column (``attribute_type`` from :meth:`attributes`)."""
        cast = _OPTION_SET_CASTS.get(attribute_type)
        if cast is None:
            raise ValueError(f"{logical_name}.{attribute} is a {attribute_type} column, which has no option set")
        attribute_segment = f"Attributes(LogicalName={format_string_literal(attribute)})"
        path = f"{_entity(logical_name)}/{attribute_segment}/Microsoft.Dynamics.CRM.{cast}"
        # No $select: the emulator drops expanded members that $select does not name (real Dataverse keeps them).
        path += "?$expand=OptionSet"
        body = await self._get_json(path, kind=RequestKind.READ)
        options = body.get("OptionSet") or {}
        if attribute_type == "Boolean":
            pairs = [options.get("FalseOption") or {}, options.get("TrueOption") or {}]
        else:
            pairs = list(options.get("Options") or [])
        return {int(o["Value"]): _label_text(o.get("Label")) or str(o["Value"]) for o in pairs if "Value" in o}

    async def alternate_keys(self, logical_name: str, *, fresh: bool = False) -> list[KeyInfo]:
        """The table's alternate keys and whether their index is usable yet."""
        query = build_query(select=("SchemaName", "KeyAttributes", "EntityKeyIndexStatus"))
        body = await self._get_json(f"{_entity(logical_name)}/Keys?{query}", kind=RequestKind.READ, fresh=fresh)
        return [
            KeyInfo(str(k["SchemaName"]), tuple(k.get("KeyAttributes") or ()), k.get("EntityKeyIndexStatus"))
            for k in body.get("value", [])
        ]

    async def regarding_navigation_property(self, activity: str, target: str) -> str | None:
        """The nav prop that binds an activity's ``regardingobjectid`` to ``target`` (§5.6: confirm, never guess)."""
        columns = ("ReferencingEntityNavigationPropertyName", "ReferencingAttribute", "ReferencedEntity")
        query = build_query(select=columns)
        body = await self._get_json(f"{_entity(activity)}/ManyToOneRelationships?{query}", kind=RequestKind.READ)
        for relation in body.get("value", []):
            regarding = relation.get("ReferencingAttribute") == "regardingobjectid"
            if regarding and relation.get("ReferencedEntity") == target:
                return str(relation["ReferencingEntityNavigationPropertyName"])
        return None

    async def ensure_activity_table(self, spec: ActivityTableSpec) -> ProvisionReport:
        """Create the activity table, its missing columns and its alternate key; safe to run again and again."""
        table = await self.table(spec.logical_name, fresh=True)
        created_table = table is None
        if table is None:
            await self._post("EntityDefinitions", activity_table_metadata(spec))
            table = await self.table(spec.logical_name, fresh=True)
            if table is None:
                raise RecordError(f"Dataverse accepted table {spec.schema_name} but does not list it yet: run again")
        existing = {a.logical_name for a in await self.attributes(spec.logical_name, fresh=True)}
        created_columns = []
        for column in spec.columns:
            if column.logical_name not in existing:
                await self._post(f"{_entity(spec.logical_name)}/Attributes", column_metadata(column))
                created_columns.append(column.logical_name)
        created_keys = []
        if spec.alternate_key:
            keys = await self.alternate_keys(spec.logical_name, fresh=True)
            if not any(set(k.attributes) == set(spec.alternate_key) for k in keys):
                body = {
                    "SchemaName": spec.key_schema_name,
                    "DisplayName": label(f"{spec.display_name} key"),
                    "KeyAttributes": list(spec.alternate_key),
                }
                await self._post(f"{_entity(spec.logical_name)}/Keys", body)
                created_keys.append(spec.key_schema_name.lower())
        return ProvisionReport(table, created_table, tuple(created_columns), tuple(created_keys))

    async def ensure_columns(self, logical_name: str, columns: Sequence[ColumnSpec]) -> tuple[str, ...]:
        """Add the columns an existing table lacks (e.g. roll-ups on contact); returns the logical names created."""
        existing = {a.logical_name for a in await self.attributes(logical_name, fresh=True)}
        created = []
        for column in columns:
            if column.logical_name not in existing:
                await self._post(f"{_entity(logical_name)}/Attributes", column_metadata(column))
                created.append(column.logical_name)
        return tuple(created)

    async def _post(self, path: str, body: Mapping[str, Any]) -> None:
        headers = {"MSCRM.SolutionUniqueName": self._solution} if self._solution else {}
        # Not repeated blindly: a replay of an applied create is refused as "already exists". Running
        # ensure_activity_table again is the recovery, since it only creates what is missing.
        await self._session.send("POST", path, kind=RequestKind.WRITE, idempotent=False, payload=body, headers=headers)

    async def _get_json(self, path: str, *, kind: RequestKind, fresh: bool = False) -> dict[str, Any]:
        response = await self._session.send("GET", path, kind=kind, idempotent=True, headers=_FRESH if fresh else {})
        body: dict[str, Any] = response.json()
        return body

    async def _get_optional(self, path: str, fresh: bool) -> dict[str, Any] | None:
        try:
            return await self._get_json(path, kind=RequestKind.WRITE, fresh=fresh)
        except RecordError as error:
            if error.details is not None and error.details.status == 404:
                return None
            raise
