"""``$filter`` and ``$orderby`` of the Dataverse emulator: odata-query's grammar, our own SQL (§3.3, §3.4).

The parser is odata-query's; the SQL comes from a small visitor over its AST, because Dataverse semantics differ
from a generic OData-to-SQL mapping: lookups are filtered as ``_x_value``, ``contains`` keeps ``%`` and ``_`` as
wildcards, booleans are stored as integers and datetimes as ISO strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from crmbridge.dynamics.odata import format_datetime, format_string_literal, parse_datetime
from crmbridge.emulators.dynamics.protocol import ODataError, invalid_property
from crmbridge.emulators.dynamics.schema import Column, Table

__all__ = ["OrderBy", "parse_orderby", "translate_filter"]

_COMPARATORS: dict[type[ast._Node], str] = {
    ast.Eq: "=",
    ast.NotEq: "<>",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_IN_FUNCTION = re.compile(
    r"Microsoft\.Dynamics\.CRM\.In\(\s*PropertyName\s*=\s*'([^']+)'\s*,\s*PropertyValues\s*=\s*\[(.*?)\]\s*\)"
)
_LIST_ITEM = re.compile(r"\"((?:[^\"\\]|\\.)*)\"|'((?:[^']|'')*)'")


@dataclass(frozen=True, slots=True)
class OrderBy:
    column: str  # SQL column
    descending: bool


def _rewrite_in_function(text: str) -> str:
    """``Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=["a","b"])`` -> ``x in ('a','b')``."""

    def replace(match: re.Match[str]) -> str:
        items = []
        for item in _LIST_ITEM.finditer(match.group(2)):
            value = item.group(1) if item.group(1) is not None else item.group(2).replace("''", "'")
            items.append(format_string_literal(value))
        if len(items) == 1:  # the OData grammar reads ('a') as a parenthesised value, not a list
            return f"{match.group(1)} eq {items[0]}"
        return f"{match.group(1)} in ({','.join(items)})"

    return _IN_FUNCTION.sub(replace, text)


def translate_filter(table: Table, text: str) -> tuple[str, list[Any]]:
    """The SQL ``WHERE`` clause and its parameters for a ``$filter`` on ``table``."""
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(_rewrite_in_function(text)))
    except ODataException as exc:
        raise ODataError(400, "0x80060888", f"Syntax error in $filter: {exc}") from exc  # code (inferred)
    params: list[Any] = []
    return _Visitor(table, params).visit(tree), params


class _Visitor:
    def __init__(self, table: Table, params: list[Any]) -> None:
        self.table = table
        self.params = params

    def visit(self, node: ast._Node) -> str:
        if isinstance(node, ast.BoolOp):
            op = "AND" if isinstance(node.op, ast.And) else "OR"
            return f"({self.visit(node.left)} {op} {self.visit(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(NOT {self.visit(node.operand)})"
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise _unsupported(node)

    def _column(self, node: ast._Node) -> Column:
        if not isinstance(node, ast.Identifier) or node.namespace:
            raise _unsupported(node)
        column = self.table.column_by_property(node.name)
        if column is None:
            raise invalid_property(self.table, node.name)
        return column

    def _compare(self, node: ast.Compare) -> str:
        column = self._column(node.left)
        if isinstance(node.comparator, ast.In):
            if not isinstance(node.right, ast.List):
                raise _unsupported(node.right)
            self.params.extend(_literal(column, item) for item in node.right.val)
            return f"{column.name} IN ({', '.join('?' for _ in node.right.val)})"
        sql_op = _COMPARATORS.get(type(node.comparator))
        if sql_op is None:
            raise _unsupported(node)
        if isinstance(node.right, ast.Identifier):
            return f"{column.name} {sql_op} {self._column(node.right).name}"
        if isinstance(node.right, ast.Null):
            if sql_op not in ("=", "<>"):
                raise _unsupported(node)
            return f"{column.name} IS {'NOT ' if sql_op == '<>' else ''}NULL"
        self.params.append(_literal(column, node.right))
        if sql_op == "<>":
            # Dataverse's "ne" also matches empty values, like Advanced Find's "Does Not Equal" (inferred).
            return f"({column.name} <> ? OR {column.name} IS NULL)"
        return f"{column.name} {sql_op} ?"

    def _call(self, node: ast.Call) -> str:
        name = node.func.name
        if name not in ("contains", "startswith", "endswith") or node.func.namespace or len(node.args) != 2:
            raise _unsupported(node)
        column = self._column(node.args[0])
        if column.type not in ("String", "Memo") or not isinstance(node.args[1], ast.String):
            raise ODataError(400, "0x0", f"The function '{name}' requires a string property and a string literal.")
        value = node.args[1].val
        if (name == "startswith" and value.startswith("%")) or (name == "endswith" and value.endswith("%")):
            # "Trailing wildcards" defeat the function's anchoring and are not supported (§3.3); message (inferred).
            raise ODataError(400, "0x0", f"The wildcard in '{value}' is not supported by {name}.")
        pattern = {"contains": f"%{value}%", "startswith": f"{value}%", "endswith": f"%{value}"}[name]
        self.params.append(pattern)
        # %, _ inside the value stay wildcards, as documented for Dataverse (§3.3).
        return f"{column.name} LIKE ?"


def _literal(column: Column, node: ast._Node) -> Any:
    if isinstance(node, ast.String):
        return node.val
    if isinstance(node, ast.GUID):
        return node.val.lower()
    if isinstance(node, ast.Boolean):
        return 1 if node.val == "true" else 0
    if isinstance(node, ast.Integer):
        return int(node.val)
    if isinstance(node, ast.Float):
        return float(node.val)
    if isinstance(node, ast.DateTime):
        return format_datetime(parse_datetime(node.val))
    if isinstance(node, ast.Date):
        if column.type == "DateTime":
            return f"{node.val}T00:00:00Z"
        return node.val
    raise _unsupported(node)


def _unsupported(node: Any) -> ODataError:
    # Dataverse supports more (nav-prop paths, lambdas, date functions); the emulator refuses them plainly.
    return ODataError(501, "0x80060888", f"The emulator does not support this $filter element: {node!r}")


def parse_orderby(table: Table, text: str) -> list[OrderBy]:
    orders = []
    for item in text.split(","):
        words = item.strip().split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ODataError(400, "0x0", f"Invalid $orderby expression: '{item.strip()}'.")
        column = table.column_by_property(words[0])
        if column is None:
            raise invalid_property(table, words[0])
        # Choice columns sort by value (§3.4); lookups sort here by GUID, not by the related primary name.
        orders.append(OrderBy(column.name, len(words) == 2 and words[1] == "desc"))
    return orders
