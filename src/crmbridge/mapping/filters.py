"""Filters over any source column, evaluated client-side (change tracking forbids ``$filter``).

A condition is (column, op, value); a mapping's conditions combine with ``all`` or ``any``. No conditions means
every row passes. String comparisons ignore case, as Dataverse's default collation does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = ["FilterCondition", "FilterOp", "RowPredicate", "compile_filter"]

FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "null", "not_null"]
RowPredicate = Callable[[Mapping[str, Any]], bool]

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class FilterCondition(Protocol):
    """What a filter condition in the configuration provides."""

    @property
    def column(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def value(self) -> Any: ...


def _comparable(value: Any) -> Any:
    """Bring a value to a form that compares sensibly: case-folded text, datetimes, numbers as they are."""
    if isinstance(value, str):
        if _ISO.match(value):
            text = value.replace(" ", "T").replace("Z", "+00:00")
            if len(text) == 10:
                text += "T00:00:00+00:00"
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return value.casefold()  # date-shaped but not a date (month 13): compared as the text it is
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # Dataverse datetimes are UTC
        return value.casefold()
    return value


def _ordered(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    a, b = _comparable(left), _comparable(right)
    try:
        if op == "lt":
            return bool(a < b)
        if op == "le":
            return bool(a <= b)
        if op == "gt":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        return False  # a text column compared with a number never matches, as a typed query would refuse it


def _is_one_of(value: Any, options: set[Any]) -> bool:
    try:
        return value in options
    except TypeError:
        return False  # a list or object value (unhashable) is none of the scalar options


def _condition(cond: FilterCondition) -> RowPredicate:
    column, op, expected = cond.column, cond.op, cond.value
    if op == "null":
        return lambda row: row.get(column) is None
    if op == "not_null":
        return lambda row: row.get(column) is not None
    if op in ("eq", "ne"):
        target = _comparable(expected)
        if op == "eq":
            return lambda row: _comparable(row.get(column)) == target
        return lambda row: _comparable(row.get(column)) != target
    if op in ("lt", "le", "gt", "ge"):
        return lambda row: _ordered(op, row.get(column), expected)
    if op == "in":
        options = {_comparable(v) for v in (expected if isinstance(expected, list | tuple | set) else [expected])}
        return lambda row: _is_one_of(_comparable(row.get(column)), options)
    if op in ("contains", "startswith"):
        needle = str(expected).casefold()

        def text_test(row: Mapping[str, Any]) -> bool:
            value = row.get(column)
            if value is None:
                return False
            hay = str(value).casefold()
            return needle in hay if op == "contains" else hay.startswith(needle)

        return text_test
    raise ValueError(f"unknown filter operator {op!r}")


def compile_filter(conditions: Sequence[FilterCondition], match: str = "all") -> RowPredicate:
    """Compile conditions into one predicate over a source row (column -> value)."""
    if not conditions:
        return lambda row: True
    tests = [_condition(c) for c in conditions]
    if match == "any":
        return lambda row: any(test(row) for test in tests)
    if match != "all":
        raise ValueError(f"filter match must be 'all' or 'any', not {match!r}")
    return lambda row: all(test(row) for test in tests)
