"""Table mappings (jobs 1 and 2): which Dynamics table goes to which Campaign resource, field by field."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from crmbridge.config.types import ColumnName, FieldPath, PositiveDuration, Strict

__all__ = [
    "FieldMapping",
    "FilterCondition",
    "FilterOp",
    "Filters",
    "LinkMapping",
    "MappingKey",
    "TableMapping",
]

Scalar = str | int | float | bool | None


def _text_keys(value: object) -> object:
    """YAML reads `1:` and `true:` as numbers and booleans; replacements compare against their text form."""
    if isinstance(value, dict):
        return {(str(key).lower() if isinstance(key, bool) else str(key)): item for key, item in value.items()}
    return value


class FieldMapping(Strict):
    """One Dynamics column written to one Campaign field."""

    campaign: FieldPath = Field(description="ACS field; dotted paths reach sub-objects, e.g. location.city.")
    dynamics: ColumnName = Field(description="Dataverse column logical name, e.g. address1_city.")
    apply_updates: bool = Field(default=True, description="False: written on create and replay only.")
    replacements: Annotated[dict[str, Scalar], BeforeValidator(_text_keys)] = Field(
        default_factory=dict,
        description="Dynamics value (as text; booleans as true/false) -> value written to Campaign.",
    )
    picklist: Literal["label", "value"] | None = Field(
        default=None, description="For choice columns: send the display label or the integer value."
    )
    max_length: Annotated[int, Field(ge=1)] | None = Field(default=None, description="Longest text Campaign takes.")


class FilterOp(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IN = "in"
    CONTAINS = "contains"
    STARTSWITH = "startswith"
    NULL = "null"
    NOT_NULL = "not_null"


def _null_op(value: object) -> object:
    # YAML reads an unquoted `op: null` as nothing at all; the user meant the null test.
    return FilterOp.NULL if value is None else value


_ORDERED_OPS = frozenset({FilterOp.LT, FilterOp.LE, FilterOp.GT, FilterOp.GE})
_TEXT_OPS = frozenset({FilterOp.CONTAINS, FilterOp.STARTSWITH})
_NULL_OPS = frozenset({FilterOp.NULL, FilterOp.NOT_NULL})


class FilterCondition(Strict):
    """One test on a Dynamics column (any column of the table, mapped or not)."""

    column: ColumnName = Field(description="Dataverse column logical name.")
    op: Annotated[FilterOp, BeforeValidator(_null_op)] = Field(description="Comparison operator.")
    value: Scalar | list[Scalar] = Field(
        default=None, description="Compared value; a list for `in`; none for null tests."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterCondition:
        if self.op in _NULL_OPS:
            if self.value is not None:
                raise ValueError(f"{self.op.value} takes no value: remove `value`")
        elif self.op is FilterOp.IN:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("in needs a non-empty list, e.g. value: [1, 2]")
        elif isinstance(self.value, list):
            raise ValueError(f"{self.op.value} compares with one value, not a list (use op: in for a list)")
        elif self.op in _TEXT_OPS and not isinstance(self.value, str):
            raise ValueError(f"{self.op.value} needs a text value")
        elif self.op in _ORDERED_OPS and (self.value is None or isinstance(self.value, bool)):
            raise ValueError(f"{self.op.value} needs a number, a date or a text value")
        return self


class Filters(Strict):
    """Which rows are synced; evaluated client-side because change tracking forbids $filter."""

    match: Literal["all", "any"] = Field(default="all", description="all = AND, any = OR.")
    conditions: list[FilterCondition] = Field(default_factory=list)
    on_filtered_out: Literal["keep", "delete"] = Field(
        default="keep", description="What happens in Campaign to a record that leaves the filter."
    )


class MappingKey(Strict):
    """How a row is matched on both sides: the Dynamics id column and the Campaign field holding it."""

    dynamics: ColumnName = Field(description="Primary id column, e.g. contactid.")
    campaign: FieldPath = Field(description="Campaign identification key field, e.g. externalId or vehicleId.")


class LinkMapping(Strict):
    """A lookup column that becomes a Campaign link to the row synced from the parent mapping."""

    lookup: ColumnName = Field(description="Lookup column logical name, e.g. new_contactid.")
    mapping: str = Field(min_length=1, description="Name of the parent mapping.")
    campaign_link: FieldPath = Field(description="Campaign link field, e.g. profile.")
    max_wait: PositiveDuration = Field(
        default=timedelta(hours=1), description="How long a child waits for its parent before it is a dead letter."
    )
    on_parent_deleted: Literal["delete", "keep"] = Field(
        default="delete",
        description="When crmbridge deletes the parent in Campaign (deleted in Dynamics, or left the parent "
        "mapping's filter): delete = delete this mapping's rows linked to it (ACS hides a child whose 1-cardinality "
        "link points nowhere); keep = leave them and count them as orphaned in the pass.",
    )


class TableMapping(Strict):
    """One Dynamics table synced to one Campaign resource."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Unique name (used by the CLI and the state).")
    table: ColumnName = Field(description="Dataverse table logical name, e.g. contact or new_vehicle.")
    entity_set: ColumnName | None = Field(default=None, description="Entity set name; default: from metadata.")
    resource: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
        description="profileAndServicesExt for contact profiles, or a custom resource such as cusVehicle.",
    )
    key: MappingKey
    fields: list[FieldMapping] = Field(default_factory=list)
    filters: Filters = Field(default_factory=Filters)
    deletes: Literal["propagate", "ignore"] = Field(default="ignore", description="Dynamics deletions.")
    links: list[LinkMapping] = Field(default_factory=list)
    enabled: bool = Field(default=True, description="False: the mapping is not synced.")
    interval: PositiveDuration | None = Field(default=None, description="Sync interval; default service.interval.")

    @field_validator("fields")
    @classmethod
    def _one_source_per_campaign_field(cls, fields: list[FieldMapping]) -> list[FieldMapping]:
        seen: dict[str, int] = {}
        for index, field in enumerate(fields):
            if field.campaign in seen:
                raise ValueError(
                    f"fields[{seen[field.campaign]}] and fields[{index}] both write {field.campaign}; keep one"
                )
            seen[field.campaign] = index
        return fields

    @model_validator(mode="after")
    def _key_is_not_a_field(self) -> TableMapping:
        for index, field in enumerate(self.fields):
            if field.campaign == self.key.campaign:
                raise ValueError(
                    f"fields[{index}] writes the key field {field.campaign}, which key.dynamics fills; remove it"
                )
        return self
