"""Campaign resource metadata (``resourceType``) as typed values, for ``crmbridge check`` (§2.4).

Also the privacy request body (§7.1). Pure parsing; the client does the GET/POST.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crmbridge.exceptions import ProtocolError

__all__ = [
    "FieldInfo",
    "PrivacyRequest",
    "PrivacyRequestType",
    "ResourceMetadata",
    "parse_resource_metadata",
]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a resource as ``resourceType`` describes it."""

    name: str  # apiName
    type: str  # high-level type: string, boolean, datetime, link, collection, enumeration, ...
    res_type: str = ""  # technical type, e.g. "string", "int64", "memo"
    label: str = ""
    target: str = ""  # resTarget of links and collections
    length: int | None = None
    enum_values: tuple[str, ...] = ()  # the value *names*, which the API exchanges (§4.8)
    sortable: bool = False

    @property
    def is_link(self) -> bool:
        return self.type == "link"


@dataclass(frozen=True, slots=True)
class ResourceMetadata:
    name: str
    label: str
    schema: str
    fields: Mapping[str, FieldInfo] = field(default_factory=dict)
    filters_href: str | None = None

    def missing(self, names: list[str]) -> list[str]:
        """The names (top-level part of dotted paths) that the resource does not have."""
        return [name for name in names if name.split(".", 1)[0] not in self.fields]


def parse_resource_metadata(body: Any, resource: str) -> ResourceMetadata:
    """Read a ``resourceType`` answer: ``{"content": {<field>: {...}}, "label", "name", "schema", "filters"}``."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        raise ProtocolError(f"resourceType answer for {resource} has no 'content' field map")
    fields = {}
    for key, node in body["content"].items():
        if isinstance(node, dict):
            info = _field_info(str(node.get("apiName") or key), node)
            fields[info.name] = info
    filters = body.get("filters")
    return ResourceMetadata(
        name=str(body.get("name") or resource),
        label=str(body.get("label") or ""),
        schema=str(body.get("schema") or ""),
        fields=fields,
        filters_href=filters.get("href") if isinstance(filters, dict) else None,
    )


def _field_info(name: str, node: Mapping[str, Any]) -> FieldInfo:
    values = node.get("values")
    if isinstance(values, dict):
        enum_values = tuple(str(v.get("name", k)) if isinstance(v, dict) else str(k) for k, v in values.items())
    elif isinstance(values, list):
        enum_values = tuple(str(v.get("name")) if isinstance(v, dict) else str(v) for v in values)
    else:
        enum_values = ()
    length = node.get("length")
    return FieldInfo(
        name=name,
        type=str(node.get("type") or ""),
        res_type=str(node.get("resType") or ""),
        label=str(node.get("label") or ""),
        target=str(node.get("resTarget") or node.get("target") or ""),
        length=int(length) if isinstance(length, int | str) and str(length).isdigit() else None,
        enum_values=enum_values,
        sortable=bool(node.get("sortable", False)),
    )


class PrivacyRequestType(StrEnum):
    ACCESS = "access"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    """A GDPR/CCPA request for ``POST /privacy/privacyTool`` (§7.1)."""

    name: str  # unique internal name
    reconciliation_value: str  # e.g. the email, per the namespace's reconciliation key
    type: PrivacyRequestType
    regulation: str = "gdpr"  # gdpr, ccpa, pdpa, lgpd
    namespace: str = "defaultNamespace1"
    label: str = ""

    def body(self) -> dict[str, str]:
        # The docs' prose says "namespace", their example and Fides send "namespaceName" (§7.1): follow the example.
        return {
            "name": self.name,
            "namespaceName": self.namespace,
            "reconciliationValue": self.reconciliation_value,
            "regulation": self.regulation,
            "label": self.label or self.name,
            "type": self.type.value,
        }
