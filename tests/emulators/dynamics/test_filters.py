"""§3.3 $filter semantics checked as properties against an independent oracle (plain Python over the rows)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmbridge.dynamics.odata import format_string_literal
from crmbridge.emulators.dynamics.filters import translate_filter
from crmbridge.emulators.dynamics.protocol import ODataError
from crmbridge.emulators.dynamics.storage import Storage

NAMES = ["O'Brien", "o'brien", "Müller", "MÜLLER", "50% off", "a_b", "Smith", "smith ", "", "Nguyễn"]


@pytest.fixture(scope="module")
def storage() -> Storage:
    store = Storage(":memory:")
    table = store.schema.tables["contact"]
    for index, name in enumerate(NAMES):
        store.insert(
            table, {"contactid": f"00000000-0000-0000-0000-{index:012d}", "lastname": name, "versionnumber": index}
        )
    return store


def ascii_fold(text: str) -> str:
    return "".join(ch.lower() if ch in string.ascii_letters else ch for ch in text)


def matching(storage: Storage, expression: str) -> set[str]:
    table = storage.schema.tables["contact"]
    where, params = translate_filter(table, expression)
    sql = f"SELECT lastname FROM t_contact WHERE {where}"  # noqa: S608 - the clause under test, values bound
    return {r["lastname"] for r in storage.query(sql, params)}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES) | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12))
def test_eq_matches_exactly_the_case_insensitive_equal_names(storage: Storage, value: str) -> None:
    expected = {n for n in NAMES if ascii_fold(n) == ascii_fold(value)}
    assert matching(storage, f"lastname eq {format_string_literal(value)}") == expected


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcmnOoeü' ", min_size=1, max_size=4))
def test_contains_matches_substrings_case_insensitively(storage: Storage, value: str) -> None:
    expected = {n for n in NAMES if ascii_fold(value) in ascii_fold(n)}
    assert matching(storage, f"contains(lastname,{format_string_literal(value)})") == expected


def test_percent_and_underscore_stay_wildcards_in_contains(storage: Storage) -> None:
    # Documented Dataverse behaviour (§3.3): % and _ inside values are SQL wildcards.
    assert matching(storage, "contains(lastname,'a_b')") == {"a_b"}
    assert "Smith" in matching(storage, "contains(lastname,'S%h')")


def test_unknown_property_is_the_documented_error(storage: Storage) -> None:
    with pytest.raises(ODataError) as error:
        matching(storage, "LastName eq 'x'")
    assert error.value.message == "Could not find a property named 'LastName' on type 'Microsoft.Dynamics.CRM.contact'."
