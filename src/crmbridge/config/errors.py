"""Turns pydantic's validation errors into messages that say what to fix, in the words of crmbridge.yaml."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from crmbridge.config.model import CrmbridgeConfig

__all__ = ["describe_error"]

# Messages for the patterns of crmbridge.config.types, keyed by the pattern pydantic reports.
_PATTERN_HINTS = {
    r"^[a-z][a-z0-9_]*$": "a Dataverse logical name: lowercase letters, digits and underscores (e.g. address1_city)",
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$": "a Campaign field name, dotted for sub-fields "
    "(e.g. location.city)",
    r"^[A-Za-z0-9]+@AdobeOrg$": "an IMS org id such as 4CC7D9704674CFB2138A2C54@AdobeOrg",
    r"^[0-9A-Fa-f]{40}$": "a SHA-1 thumbprint: 40 hexadecimal digits",
}


def describe_error(error: ErrorDetails) -> str:
    """One line about one pydantic error; never quotes the input (it may be a secret)."""
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "missing":
        return f"required: add `{loc[-1]}`" if loc else "required"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(ctx.get("pattern")))
        return f"expected {hint}" if hint else str(error["msg"])
    if kind in ("value_error", "assertion_error"):
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message
    if kind == "model_type" or kind == "dict_type":
        return "expected a mapping of keys (key: value lines), not a single value or a list"
    if kind == "list_type":
        return "expected a list (lines starting with '- ')"
    return str(error["msg"])


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    name = str(loc[-1]) if loc else ""
    allowed = _keys_at(CrmbridgeConfig, loc[:-1])
    if not allowed:
        return "unknown key: remove it"
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"unknown key: did you mean `{close[0]}`?"
    return f"unknown key: remove it; allowed keys here: {', '.join(allowed)}"


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model nested at ``loc`` accepts (empty when loc does not lead to a model)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    found = _model_in(annotation)
    return list(found.model_fields) if found is not None else []


def _step(annotation: Any, part: int | str) -> Any:
    if isinstance(part, int):
        for option in _options(annotation):
            if typing.get_origin(option) is list:
                return typing.get_args(option)[0]
        return None
    found = _model_in(annotation)
    if found is None or part not in found.model_fields:
        return None
    return found.model_fields[part].annotation


def _options(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return tuple(option for arg in typing.get_args(annotation) for option in _options(arg))
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None
