"""Renders the key-by-key reference of crmbridge.yaml from the models, for docs/configuration.md."""

from __future__ import annotations

import json
import types
import typing
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from crmbridge.config.model import CrmbridgeConfig

__all__ = ["BEGIN_MARKER", "END_MARKER", "render_reference", "sections"]

BEGIN_MARKER = "<!-- BEGIN GENERATED REFERENCE (python -m crmbridge.config.reference) -->"
END_MARKER = "<!-- END GENERATED REFERENCE -->"


def sections(root: type[BaseModel] = CrmbridgeConfig, path: str = "") -> list[tuple[str, type[BaseModel]]]:
    """Every model reachable from ``root`` with its YAML path (``mappings[].fields[]``), parents first."""
    found: list[tuple[str, type[BaseModel]]] = [(path or "(top level)", root)]
    for name, field in root.model_fields.items():
        nested, is_list = _nested_model(field.annotation)
        if nested is not None:
            child = f"{path}.{name}" if path else name
            found.extend(sections(nested, child + ("[]" if is_list else "")))
    return found


def render_reference() -> str:
    parts = [BEGIN_MARKER, ""]
    for path, model in sections():
        parts.append(f"### `{path}`\n")
        parts.append((model.__doc__ or "").strip().splitlines()[0] + "\n")
        parts.append("| Key | Type | Default | Meaning |")
        parts.append("|---|---|---|---|")
        for name, field in model.model_fields.items():
            meaning = (field.description or _section_summary(field)).replace("|", "\\|")
            parts.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |")
        parts.append("")
    parts.append(END_MARKER)
    return "\n".join(parts) + "\n"


def _section_summary(field: FieldInfo) -> str:
    nested, _ = _nested_model(field.annotation)
    if nested is None:
        return ""
    return (nested.__doc__ or "").strip().splitlines()[0]


def _options(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return tuple(option for arg in typing.get_args(annotation) for option in _options(arg))
    return (annotation,)


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    for option in _options(annotation):
        if typing.get_origin(option) is list:
            inner, _ = _nested_model(typing.get_args(option)[0])
            if inner is not None:
                return inner, True
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option, False
    return None, False


def _type_name(annotation: Any) -> str:
    options = [option for option in _options(annotation) if option is not type(None)]
    if {str, int, float, bool} <= set(options):  # a YAML scalar
        rest = [option for option in options if option not in (str, int, float, bool)]
        names = ["text, number or boolean", *(_one_type(option) for option in rest)]
    else:
        names = [_one_type(option) for option in options]
    text = " or ".join(dict.fromkeys(names))
    return text + (" (optional)" if type(None) in _options(annotation) else "")


def _one_type(option: Any) -> str:
    origin = typing.get_origin(option)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(option))
    if origin is list:
        return "list of " + _type_name(typing.get_args(option)[0]).removesuffix(" (optional)")
    if origin is dict:
        return "map of text to " + _type_name(typing.get_args(option)[1])
    if isinstance(option, type):
        if issubclass(option, BaseModel):
            return "section"
        if issubclass(option, Enum):
            return " \\| ".join(f"`{member.value}`" for member in option)
        simple = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}
        if option in simple:
            return simple[option]
        if option is SecretStr:
            return "secret text"
        if option is timedelta:
            return "duration"
    return str(option)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "(see section)"
    if isinstance(value, timedelta):
        return f"`{_short_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, list | dict):
        if not value:
            return "empty"
        return "`" + json.dumps(value, default=str, ensure_ascii=False).replace("|", "\\|") + "`"
    return f"`{json.dumps(value, ensure_ascii=False)}`" if isinstance(value, str) else f"`{value}`"


def _short_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


if __name__ == "__main__":
    print(render_reference(), end="")
