"""Metadata reads of the Dataverse emulator (§8): service document, CSDL, ``EntityDefinitions`` and ``WhoAmI``."""

from __future__ import annotations

import re
import uuid
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from crmbridge.emulators.dynamics.protocol import ApiRequest, ApiResponse, ODataError, json_response
from crmbridge.emulators.dynamics.queries import _split_top_level
from crmbridge.emulators.dynamics.schema import METADATA_NAMESPACE, Column, Schema, Table
from crmbridge.emulators.dynamics.service import Org

__all__ = ["csdl", "entity_definitions", "service_document", "who_am_i"]

_ENUM_LITERAL = re.compile(r"Microsoft\.Dynamics\.CRM\.\w+'([^']*)'")
ATTRIBUTE_METADATA_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "DateOnly": "DateTimeAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Uniqueidentifier": "AttributeMetadata",
}


def service_document(org: Org, req: ApiRequest) -> ApiResponse:
    sets = [
        {"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set} for t in org.storage.schema.tables.values()
    ]
    sets.append({"name": "EntityDefinitions", "kind": "EntitySet", "url": "EntityDefinitions"})
    return json_response(200, {"@odata.context": f"{req.base_url}$metadata", "value": sets})


def who_am_i(org: Org, req: ApiRequest) -> ApiResponse:
    body = {
        "@odata.context": f"{req.base_url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
        "BusinessUnitId": org.business_unit_id,
        "UserId": org.user_id(req.user),
        "OrganizationId": org.organization_id,
    }
    return json_response(200, body)


def organizations(org: Org, req: ApiRequest) -> ApiResponse:
    """The one organization row, for ``organizations?$select=expirechangetrackingindays`` (§4.5; query inferred)."""
    row = {
        "@odata.etag": 'W/"1"',
        "organizationid": org.organization_id,
        "name": "crmbridge emulator",
        "expirechangetrackingindays": org.expire_change_tracking_in_days,
    }
    select = req.query.get("$select")
    if select:
        wanted = {s.strip() for s in select.split(",")} | {"@odata.etag", "organizationid"}
        row = {k: v for k, v in row.items() if k in wanted}
    return json_response(200, {"@odata.context": f"{req.base_url}$metadata#organizations", "value": [row]})


# --- CSDL ------------------------------------------------------------------------------------------------------


def csdl(schema: Schema) -> ApiResponse:
    """Minimal CSDL of the hosted tables, change-tracked sets annotated (§8.1, §9 item 2)."""
    types, sets = [], []
    for table in schema.tables.values():
        lines = [f'<EntityType Name="{table.logical_name}">', f'<Key><PropertyRef Name="{table.primary_id}" /></Key>']
        for column in table.columns.values():
            lines.append(f'<Property Name="{column.property_name}" Type="{column.edm_type}" />')
        for column in table.columns.values():
            for target, nav in column.targets.items():
                lines.append(f'<NavigationProperty Name="{nav}" Type="mscrm.{target}">')
                referenced = schema.tables[target].primary_id if target in schema.tables else f"{target}id"
                lines.append(
                    f'<ReferentialConstraint Property="{column.property_name}" ReferencedProperty="{referenced}" />'
                )
                lines.append("</NavigationProperty>")
        lines.append("</EntityType>")
        types.append("".join(lines))
        entity_set = f'<EntitySet Name="{table.entity_set}" EntityType="Microsoft.Dynamics.CRM.{table.logical_name}">'
        if table.change_tracking:
            entity_set += (
                '<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record>'
                '<PropertyValue Property="Supported" Bool="true" /></Record></Annotation>'
            )
        sets.append(entity_set + "</EntitySet>")
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(types)
        + '<EntityContainer Name="System">'
        + "".join(sets)
        + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
    return ApiResponse(200, [("Content-Type", "application/xml")], xml.encode())


# --- EntityDefinitions ------------------------------------------------------------------------------------


def label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def _managed(value: Any, name: str) -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": False, "ManagedPropertyLogicalName": name}


def entity_metadata(table: Table) -> dict[str, Any]:
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
        "MetadataId": table.metadata_id,
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "IsActivity": table.is_activity,
        "IsCustomEntity": table.is_custom,
        "IsPrivate": False,
        "IsOptimisticConcurrencyEnabled": True,
        "ChangeTrackingEnabled": table.change_tracking,
        "CanChangeTrackingBeEnabled": _managed(True, "canchangetrackingbeenabled"),
        "DisplayName": label(table.logical_name),
    }


def attribute_id(table: Table, column: Column) -> str:
    return str(uuid.uuid5(METADATA_NAMESPACE, f"{table.logical_name}.{column.name}"))


def attribute_metadata(table: Table, column: Column) -> dict[str, Any]:
    meta_type = ATTRIBUTE_METADATA_TYPES[column.type]
    system = column.name in (table.primary_id, "createdon", "modifiedon", "versionnumber")
    body: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{meta_type}",
        "MetadataId": attribute_id(table, column),
        "LogicalName": column.name,
        "SchemaName": column.name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": column.type if column.type != "DateOnly" else "DateTime",
        "AttributeTypeName": {"Value": f"{column.type if column.type != 'DateOnly' else 'DateTime'}Type"},
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == table.primary_name,
        "IsCustomAttribute": column.name.startswith("new_"),
        "IsValidForRead": True,
        "IsValidForCreate": not column.read_only or column.name == table.primary_id,
        "IsValidForUpdate": not column.read_only and not system,
        "RequiredLevel": {"Value": "SystemRequired" if system else column.required, "CanBeChanged": not system},
        "DisplayName": label(column.name),
    }
    if column.max_length is not None:
        body["MaxLength"] = column.max_length
    if column.type == "Lookup":
        body["Targets"] = list(column.targets)
    if column.type in ("DateTime", "DateOnly"):
        body["Format"] = "DateOnly" if column.type == "DateOnly" else "DateAndTime"
        body["DateTimeBehavior"] = {"Value": "DateOnly" if column.type == "DateOnly" else "UserLocal"}
    return body


def option_set(column: Column) -> dict[str, Any]:
    if column.type == "Boolean":
        return {
            "OptionSetType": "Boolean",
            "FalseOption": {"Value": 0, "Label": label(column.labels[0])},
            "TrueOption": {"Value": 1, "Label": label(column.labels[1])},
        }
    options = []
    for value, text in column.options.items():
        option: dict[str, Any] = {"Value": value, "Label": label(text)}
        if column.type == "Status":
            option["State"] = column.status_state.get(value)
        options.append(option)
    kind = {"State": "State", "Status": "Status"}.get(column.type, "Picklist")
    return {"OptionSetType": kind, "IsGlobal": False, "Options": options}


def key_metadata(table: Table) -> list[dict[str, Any]]:
    return [
        {
            "@odata.type": "#Microsoft.Dynamics.CRM.EntityKeyMetadata",
            "MetadataId": str(uuid.uuid5(METADATA_NAMESPACE, f"{table.logical_name}.key.{key.schema_name}")),
            "SchemaName": key.schema_name,
            "LogicalName": key.schema_name.lower(),
            "EntityLogicalName": table.logical_name,
            "KeyAttributes": key.attributes,
            # Real keys pass Pending/InProgress while the index builds; the emulator builds it at once (inferred).
            "EntityKeyIndexStatus": "Active",
        }
        for key in table.keys
    ]


def relationships(table: Table, schema: Schema) -> list[dict[str, Any]]:
    out = []
    for column in table.columns.values():
        for target, nav in column.targets.items():
            referenced = schema.tables.get(target)
            out.append(
                {
                    "@odata.type": "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
                    "SchemaName": f"{table.logical_name}_{column.name}_{target}",
                    "ReferencingEntity": table.logical_name,
                    "ReferencingAttribute": column.name,
                    "ReferencedEntity": target,
                    "ReferencedAttribute": referenced.primary_id if referenced else f"{target}id",
                    "ReferencingEntityNavigationPropertyName": nav,
                }
            )
    return out


def _select(item: dict[str, Any], select: str | None, expand: str | None = None) -> dict[str, Any]:
    """Selected properties plus the always-returned ids and whatever ``$expand`` added."""
    if not select:
        return item
    expanded = {part.partition("(")[0].strip() for part in _split_top_level(expand or "", ",")}
    wanted = {s.strip() for s in select.split(",")} | {"MetadataId", "@odata.type"} | expanded
    return {k: v for k, v in item.items() if k in wanted}


def _matches(item: dict[str, Any], text: str | None) -> bool:
    """``$filter`` over metadata: comparisons of top-level scalar properties with and/or/not."""
    if not text:
        return True
    # Enum literals such as Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist' compare as their member name (§8.3).
    text = _ENUM_LITERAL.sub(r"'\1'", text)
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise ODataError(400, "0x0", f"Syntax error in $filter: {exc}") from exc
    return bool(_evaluate(item, tree))


def _evaluate(item: dict[str, Any], node: Any) -> Any:
    if isinstance(node, ast.BoolOp):
        left, right = _evaluate(item, node.left), _evaluate(item, node.right)
        return (left and right) if isinstance(node.op, ast.And) else (left or right)
    if isinstance(node, ast.UnaryOp):
        return not _evaluate(item, node.operand)
    if isinstance(node, ast.Compare) and isinstance(node.comparator, ast.Eq | ast.NotEq):
        left, right = _evaluate(item, node.left), _evaluate(item, node.right)
        return (left == right) == isinstance(node.comparator, ast.Eq)
    if isinstance(node, ast.Identifier):
        value = item.get(node.name)
        return value.get("Value") if isinstance(value, dict) else value
    if isinstance(node, ast.Boolean):
        return node.val == "true"
    if isinstance(node, ast.String | ast.Integer):
        return node.val if isinstance(node, ast.String) else int(node.val)
    raise ODataError(501, "0x0", f"The emulator does not support this metadata $filter element: {node!r}")


def _expand_entity(org: Org, table: Table, body: dict[str, Any], expand: str | None) -> dict[str, Any]:
    for item in _split_top_level(expand or "", ","):
        name, _, rest = item.partition("(")
        options = dict(o.split("=", 1) for o in _split_top_level(rest.rstrip(")"), ";") if "=" in o)
        children = _children(org, table, name.strip())
        body[name.strip()] = [
            _select(c, options.get("$select")) for c in children if _matches(c, options.get("$filter"))
        ]
    return body


def _children(org: Org, table: Table, name: str) -> list[dict[str, Any]]:
    if name == "Attributes":
        return [attribute_metadata(table, c) for c in table.columns.values()]
    if name == "Keys":
        return key_metadata(table)
    if name == "ManyToOneRelationships":
        return relationships(table, org.storage.schema)
    raise ODataError(
        400, "0x0", f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'."
    )


def find_table(org: Org, key_text: str) -> Table:
    text = key_text.strip()
    for table in org.storage.schema.tables.values():
        if text in (f"LogicalName='{table.logical_name}'", table.metadata_id):
            return table
    name = text.split("=", 1)[-1].strip("'")
    raise ODataError(404, "0x80040217", f"Could not find entity with name '{name}'.")  # message (inferred)


def entity_definitions(org: Org, req: ApiRequest, key_text: str | None, rest: list[str]) -> ApiResponse:
    """``EntityDefinitions``, ``EntityDefinitions(LogicalName='x')`` and its ``/Attributes``, ``/Keys``, ...."""
    query = req.query
    context = f"{req.base_url}$metadata#EntityDefinitions"
    if key_text is None:
        items = [entity_metadata(t) for t in org.storage.schema.tables.values()]
        items = [i for i in items if _matches(i, query.get("$filter"))]
        tables = {t.metadata_id: t for t in org.storage.schema.tables.values()}
        values = [
            _select(
                _expand_entity(org, tables[i["MetadataId"]], i, query.get("$expand")),
                query.get("$select"),
                query.get("$expand"),
            )
            for i in items
        ]
        return json_response(200, {"@odata.context": context, "value": values})
    table = find_table(org, key_text)
    if not rest:
        body = _expand_entity(org, table, entity_metadata(table), query.get("$expand"))
        return json_response(
            200, {"@odata.context": f"{context}/$entity", **_select(body, query.get("$select"), query.get("$expand"))}
        )
    return _entity_child(org, table, rest, req, context)


def _entity_child(org: Org, table: Table, rest: list[str], req: ApiRequest, context: str) -> ApiResponse:
    query = req.query
    head, _, key = rest[0].partition("(")
    cast = rest[1].removeprefix("Microsoft.Dynamics.CRM.") if len(rest) > 1 else None
    children = _children(org, table, head)
    if head == "Attributes":
        columns = list(table.columns.values())
        if cast:
            columns = [c for c in columns if ATTRIBUTE_METADATA_TYPES[c.type] == cast]
            children = [attribute_metadata(table, c) for c in columns]
        if "OptionSet" in (query.get("$expand") or ""):
            for child, column in zip(children, columns, strict=True):
                if column.type in ("Picklist", "State", "Status", "Boolean"):
                    child["OptionSet"] = option_set(column)
        if key:
            name = key.rstrip(")").split("=", 1)[-1].strip("'")
            matches = [c for c in children if c["LogicalName"] == name or c["MetadataId"] == name]
            if not matches:
                raise ODataError(404, "0x80040217", f"Could not find attribute '{name}' on '{table.logical_name}'.")
            return json_response(
                200,
                {
                    "@odata.context": f"{context}/$entity",
                    **_select(matches[0], query.get("$select"), query.get("$expand")),
                },
            )
    values = [
        _select(c, query.get("$select"), query.get("$expand")) for c in children if _matches(c, query.get("$filter"))
    ]
    return json_response(200, {"@odata.context": f"{context}({table.metadata_id})/{head}", "value": values})
