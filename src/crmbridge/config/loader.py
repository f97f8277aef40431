"""Reads crmbridge.yaml: YAML with line numbers, ``${ENV}`` interpolation, validation, every problem at once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from crmbridge.config.checks import Loc, find_cross_problems, format_path
from crmbridge.config.errors import describe_error
from crmbridge.config.model import CrmbridgeConfig
from crmbridge.exceptions import ConfigError, ConfigProblem
from crmbridge.redaction import register_secret

__all__ = ["ConfigFileUnreadable", "load_config", "parse_config"]

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URL_KEYS = frozenset({"url", "proxy"})  # a password in a URL (proxy or PostgreSQL) is a secret too
# Aliases can make a small file expand enormously ("billion laughs"); a real config has a few hundred values.
_MAX_NODES = 100_000
_SECRET_KEYS = frozenset({"client_secret", "passphrase", "password", "private_key_passphrase", "dashboard_token"})


class ConfigFileUnreadable(ConfigError):
    """The file could not be read or is not well-formed YAML (``config validate`` exits 2, not 1)."""


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> CrmbridgeConfig:
    """Load and validate a crmbridge.yaml; raises :class:`ConfigError` listing every problem found."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigFileUnreadable(
            f"cannot read {file}", [ConfigProblem(path="", message=f"cannot read the file: {reason}", file=file)]
        ) from None
    return parse_config(text, source=file, environ=environ)


def parse_config(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None) -> CrmbridgeConfig:
    """Validate configuration text; ``source`` names it in problems (a file name)."""
    tree = _parse_yaml(text, source)
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    if _node_count(tree) > _MAX_NODES:
        raise ConfigFileUnreadable(
            f"{source}: too large",
            [
                ConfigProblem(
                    path="",
                    message=f"the file expands to more than {_MAX_NODES} values (YAML aliases?)",
                    line=1,
                    file=source,
                )
            ],
        )
    data = _interpolate(tree, (), env, problems, source, tree, set())
    _register_raw_secrets(data)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: not a configuration",
            [
                ConfigProblem(
                    path="", message="the file must be a mapping of keys such as version:", line=1, file=source
                )
            ],
        )
    config: CrmbridgeConfig | None = None
    try:
        config = CrmbridgeConfig.model_validate(data, context={"skip_cross_checks": True})
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            problems.append(_problem(tuple(item["loc"]), describe_error(item), tree, source))
    for cross in find_cross_problems(data):
        message = cross.message
        if cross.related is not None:
            related_line = _line_of(tree, cross.related)
            if related_line is not None:
                message += f" (line {related_line})"
        problems.append(_problem(cross.loc, message, tree, source))
    if problems or config is None:
        problems.sort(key=lambda problem: problem.line or 0)
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    _register_model_secrets(config)
    return config


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = error.problem or error.context or "invalid YAML"
        raise ConfigFileUnreadable(
            f"{source}: not valid YAML",
            [ConfigProblem(path="", message=f"YAML syntax error: {reason}", line=line, file=source)],
        ) from None
    except (YAMLError, ValueError, RecursionError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        raise ConfigFileUnreadable(
            f"{source}: not valid YAML",
            [
                ConfigProblem(
                    path="",
                    message=f"YAML syntax error: {type(error).__name__}",
                    line=line + 1 if isinstance(line, int) else None,
                    file=source,
                )
            ],
        ) from None


def _interpolate(
    node: Any,
    loc: Loc,
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    source: str,
    tree: Any,
    active: set[int],
) -> Any:
    """A plain copy of the YAML tree with ``${VAR}`` / ``${VAR:-default}`` replaced in every string value."""
    if isinstance(node, dict | list):
        if id(node) in active:  # an alias that contains itself
            problems.append(_problem(loc, "a YAML alias refers to itself; expand it", tree, source))
            return None
        active.add(id(node))
        try:
            if isinstance(node, dict):
                return {
                    _key_text(key): _interpolate(value, (*loc, _key_text(key)), env, problems, source, tree, active)
                    for key, value in node.items()
                }
            return [
                _interpolate(item, (*loc, index), env, problems, source, tree, active)
                for index, item in enumerate(node)
            ]
        finally:
            active.discard(id(node))
    if isinstance(node, str):
        return _substitute(str(node), loc, env, problems, source, tree)
    if isinstance(node, bool | int | float) or node is None:
        return _plain_scalar(node)
    return str(node)  # dates and timestamps YAML recognised: let the models parse their text


def _plain_scalar(value: bool | int | float | None) -> bool | int | float | None:
    # ruamel's ScalarFloat / ScalarBoolean subclasses would leak into the models; hand over the builtins.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return None


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _substitute(
    text: str, loc: Loc, env: Mapping[str, str], problems: list[ConfigProblem], source: str, tree: Any
) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            _problem(
                loc,
                f"environment variable {name} is not set; set it, or write ${{{name}:-default}} for a default",
                tree,
                source,
            )
        )
        return ""

    return _ENV_REFERENCE.sub(replace, text)


def _register_raw_secrets(data: Any) -> None:
    """Register secret values before validation, so no problem message can ever show them."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _SECRET_KEYS and isinstance(value, str):
                register_secret(value)
            elif key in _URL_KEYS and isinstance(value, str):
                register_secret(_url_password(value))
            else:
                _register_raw_secrets(value)
    elif isinstance(data, list):
        for item in data:
            _register_raw_secrets(item)


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _node_count(tree: Any) -> int:
    """Values in the tree, counting every alias expansion, stopping early once over the limit."""
    count = 0
    stack = [tree]
    while stack and count <= _MAX_NODES:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _register_model_secrets(node: Any) -> None:
    if isinstance(node, SecretStr):
        register_secret(node.get_secret_value())
    elif hasattr(node, "__pydantic_fields__"):
        for name in type(node).model_fields:
            _register_model_secrets(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            _register_model_secrets(item)
    elif isinstance(node, dict):
        for item in node.values():
            _register_model_secrets(item)


def _problem(loc: Loc, message: str, tree: Any, source: str) -> ConfigProblem:
    return ConfigProblem(path=format_path(loc), message=message, line=_line_of(tree, loc), file=source)


def _line_of(tree: Any, loc: Loc) -> int | None:
    """1-based line of the deepest node of ``loc`` present in the YAML tree (the parent's line for a missing key)."""
    node = tree
    line: int | None = _own_line(tree)
    for part in loc:
        if isinstance(node, CommentedMap):
            key = _find_key(node, part)
            if key is None:
                break
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _own_line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else None


def _find_key(node: CommentedMap, part: str | int) -> Any:
    for key in node:
        if key == part or _key_text(key) == str(part):
            return key
    return None
