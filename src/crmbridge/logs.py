"""Structured logging for crmbridge: JSON lines for machines, a readable console for people, secrets never shown.

Every string that reaches the output — event text, field values, rendered exceptions — passes through
:func:`crmbridge.redaction.redact` in one processor, placed after exceptions are turned into text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from crmbridge.redaction import redact

__all__ = ["LogFormat", "configure_logging", "redact_event"]

LogFormat = Literal["auto", "json", "text"]

_PLAIN_TYPES = (int, float, bool, type(None))


def configure_logging(fmt: LogFormat = "auto", level: str | int = "INFO", *, stream: TextIO | None = None) -> None:
    """Send structlog events to ``stream`` (stderr by default): JSON lines unless ``fmt`` is text or auto on a TTY."""
    output = stream if stream is not None else sys.stderr
    renderer: Processor
    if _wants_json(fmt, output):
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Exceptions become text here, so the redaction below sees them and no renderer formats them again.
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: every string (and every object's text) in the event, nested or not, redacted."""
    return {key: _redact_value(value) for key, value in event_dict.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, Mapping | MutableMapping):
        return {redact(str(key)): _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    # Anything else (exceptions, URLs, models) would be rendered through str()/repr(): redact that text instead.
    return redact(str(value))


def _wants_json(fmt: LogFormat, output: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "text":
        return False
    isatty = getattr(output, "isatty", None)
    return not (callable(isatty) and isatty())


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return number
