"""Compiled mappings: literal rows in, literal ACS payloads out (expected values written by hand)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmbridge.mapping import MappingError, compile_filter, compile_mapping, to_acs_value
from crmbridge.mapping.values import format_acs_datetime


@dataclass(frozen=True)
class Field:
    campaign: str
    dynamics: str
    apply_updates: bool = True
    replacements: dict[str, Any] = field(default_factory=dict)
    picklist: str | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Cond:
    column: str
    op: str
    value: Any = None


CONTACT = {
    "contactid": "5f0c6a1e-0000-4000-8000-000000000001",
    "firstname": "Zoë",
    "lastname": "O'Brien",
    "emailaddress1": "zoe+news@example.com",
    "address1_city": "Zürich",
    "address1_postalcode": "8001",
    "gendercode": 2,
    "gendercode@OData.Community.Display.V1.FormattedValue": "Female",
    "birthdate": "1980-05-01",
    "modifiedon": "2023-04-07T21:59:01Z",
    "donotbulkemail": True,
    "creditlimit": 20000.0,
}


def contact_mapping(**overrides: Any) -> Any:
    fields = [
        Field("firstName", "firstname"),
        Field("lastName", "lastname"),
        Field("email", "emailaddress1", apply_updates=False),
        Field("location.city", "address1_city"),
        Field("location.zipCode", "address1_postalcode"),
        Field("gender", "gendercode", picklist="label", replacements={"Female": "female", "Male": "male"}),
        Field("birthDate", "birthdate"),
        Field("blackListEmail", "donotbulkemail"),
    ]
    return compile_mapping(
        name="contacts", source_key="contactid", campaign_key="externalId", fields=fields, **overrides
    )


def test_contact_row_maps_to_nested_acs_profile_payload() -> None:
    record = contact_mapping().map(CONTACT)
    assert record.key == "5f0c6a1e-0000-4000-8000-000000000001"
    assert record.create_values == {
        "externalId": "5f0c6a1e-0000-4000-8000-000000000001",
        "firstName": "Zoë",
        "lastName": "O'Brien",
        "email": "zoe+news@example.com",
        "location": {"city": "Zürich", "zipCode": "8001"},
        "gender": "female",
        "birthDate": "1980-05-01",
        "blackListEmail": True,
    }


def test_fields_without_apply_updates_are_left_out_of_updates_and_of_the_hash() -> None:
    mapping = contact_mapping()
    record = mapping.map(CONTACT)
    assert "email" not in record.update_values
    changed_email = mapping.map({**CONTACT, "emailaddress1": "new@example.com"})
    assert changed_email.values_hash == record.values_hash
    changed_city = mapping.map({**CONTACT, "address1_city": "Genève"})
    assert changed_city.values_hash != record.values_hash


def test_picklist_as_value_sends_the_integer() -> None:
    mapping = compile_mapping(
        name="m",
        source_key="contactid",
        campaign_key="externalId",
        fields=[Field("genderCode", "gendercode", picklist="value")],
    )
    assert mapping.map(CONTACT).create_values["genderCode"] == 2


def test_replacement_matches_booleans_by_their_text() -> None:
    mapping = compile_mapping(
        name="m",
        source_key="contactid",
        campaign_key="externalId",
        fields=[Field("vip", "donotbulkemail", replacements={"true": "no", "false": "yes"})],
    )
    assert mapping.map(CONTACT).create_values["vip"] == "no"


def test_datetimes_become_acs_format_and_types_are_coerced() -> None:
    assert to_acs_value("2023-04-07T21:59:01Z") == "2023-04-07 21:59:01.000Z"
    assert to_acs_value("2023-04-07T21:59:01.25+02:00") == "2023-04-07 19:59:01.250Z"
    assert to_acs_value("1980-05-01") == "1980-05-01"
    assert to_acs_value("2023-04-07T21:59:01Z", "date") == "2023-04-07"
    assert to_acs_value("1", "boolean") is True
    assert to_acs_value("42", "integer") == 42
    assert to_acs_value(20000.0, "integer") == 20000
    assert to_acs_value("3.5", "number") == 3.5
    assert to_acs_value(True, "string") == "true"
    assert format_acs_datetime(datetime(2019, 9, 25, 23, 20, 35, tzinfo=UTC)) == "2019-09-25 23:20:35.000Z"


@pytest.mark.parametrize(
    ("value", "acs_type", "message"),
    [
        ("abc", "integer", "is not a number"),
        (float("inf"), "integer", "is not a finite number"),
        ("-inf", "number", "is not a finite number"),
        ("3.5", "integer", "is not a whole number"),
        ("maybe", "boolean", "is not a boolean"),
        ("yesterday", "datetime", "is not a date-time"),
        ("x" * 31, "string", "longer than its maximum of 30"),
    ],
)
def test_values_that_cannot_be_written_raise_a_record_error_naming_the_field(
    value: Any, acs_type: Any, message: str
) -> None:
    with pytest.raises(MappingError, match=message) as info:
        to_acs_value(value, acs_type, field="firstName", max_length=30)
    assert "firstName" in str(info.value)


def test_row_without_key_is_a_record_error() -> None:
    with pytest.raises(MappingError, match="no contactid"):
        contact_mapping().map({"firstname": "x"})


def test_same_campaign_field_mapped_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="mapped twice: email"):
        compile_mapping(
            name="m",
            source_key="contactid",
            campaign_key="externalId",
            fields=[Field("email", "emailaddress1"), Field("email", "emailaddress2")],
        )


def test_source_columns_select_key_and_mapped_columns_once() -> None:
    assert contact_mapping().source_columns == [
        "contactid",
        "firstname",
        "lastname",
        "emailaddress1",
        "address1_city",
        "address1_postalcode",
        "gendercode",
        "birthdate",
        "donotbulkemail",
    ]


@pytest.mark.parametrize(
    ("conditions", "match", "expected"),
    [
        ([], "all", True),
        ([Cond("lastname", "eq", "o'brien")], "all", True),  # case-insensitive, as Dataverse compares
        ([Cond("lastname", "ne", "O'Brien")], "all", False),
        ([Cond("gendercode", "in", [1, 2])], "all", True),
        ([Cond("emailaddress1", "contains", "+NEWS")], "all", True),
        ([Cond("emailaddress1", "startswith", "anna")], "all", False),
        ([Cond("telephone1", "null")], "all", True),
        ([Cond("telephone1", "not_null")], "all", False),
        ([Cond("creditlimit", "ge", 20000)], "all", True),
        ([Cond("creditlimit", "gt", 20000)], "all", False),
        ([Cond("modifiedon", "lt", "2023-05-01")], "all", True),
        ([Cond("birthdate", "le", "1979-12-31")], "all", False),
        ([Cond("creditlimit", "lt", "abc")], "all", False),
        ([Cond("lastname", "eq", "x"), Cond("firstname", "eq", "zoë")], "any", True),
        ([Cond("lastname", "eq", "x"), Cond("firstname", "eq", "zoë")], "all", False),
    ],
)
def test_filters_over_any_column(conditions: list[Cond], match: str, expected: bool) -> None:
    assert compile_filter(conditions, match)(CONTACT) is expected


def test_filters_reject_unknown_operators_and_combinators() -> None:
    with pytest.raises(ValueError, match="unknown filter operator"):
        compile_filter([Cond("a", "like", "x")])
    with pytest.raises(ValueError, match="'all' or 'any'"):
        compile_filter([Cond("a", "eq", "x")], "some")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3),
    max_leaves=5,
)


@given(
    value=json_values, acs_type=st.sampled_from(["auto", "string", "boolean", "integer", "number", "date", "datetime"])
)
def test_any_json_value_converts_or_raises_a_mapping_error(value: Any, acs_type: Any) -> None:
    with contextlib.suppress(MappingError):
        to_acs_value(value, acs_type, field="f", max_length=50)


def test_empty_values_are_left_out_of_creates_and_clear_fields_on_updates() -> None:
    mapping = compile_mapping(
        name="m",
        source_key="contactid",
        campaign_key="externalId",
        fields=[Field("phone", "telephone1"), Field("gender", "gendercode", replacements={"null": "unknown"})],
    )
    record = mapping.map({"contactid": "c1", "telephone1": None, "gendercode": None})
    assert record.create_values == {"externalId": "c1", "gender": "unknown"}
    assert record.update_values == {"externalId": "c1", "phone": None, "gender": "unknown"}
