"""What ``crmbridge config validate`` says about a file: a one-line summary, or every problem on its own line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crmbridge.config.loader import ConfigFileUnreadable, load_config
from crmbridge.config.model import CrmbridgeConfig
from crmbridge.exceptions import ConfigError
from crmbridge.redaction import redact

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNREADABLE", "ValidationReport", "summarize", "validate_file"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


@dataclass(frozen=True, slots=True)
class ValidationReport:
    exit_code: int
    lines: list[str]  # to stdout when OK, to stderr otherwise


def validate_file(path: Path) -> ValidationReport:
    try:
        config = load_config(path)
    except ConfigFileUnreadable as error:
        return ValidationReport(EXIT_UNREADABLE, [redact(str(problem)) for problem in error.problems])
    except ConfigError as error:
        lines = [redact(str(problem)) for problem in error.problems]
        lines.append(f"{path}: {len(error.problems)} problem{'s' if len(error.problems) != 1 else ''}")
        return ValidationReport(EXIT_INVALID, lines)
    return ValidationReport(EXIT_OK, [f"OK: {summarize(config)}"])


def summarize(config: CrmbridgeConfig) -> str:
    """One line: mappings, event source, opt-out mode, state backend."""
    count = len(config.mappings)
    names = ", ".join(
        f"{m.name} ({m.table} → {m.resource}{'' if m.enabled else ', disabled'})" for m in config.mappings
    )
    parts = [f"{count} mapping{'' if count == 1 else 's'}" + (f": {names}" if names else "")]
    if config.events is None or not config.events.enabled:
        parts.append("events off")
    else:
        parts.append("events from " + ("the journal" if config.events.source.journal else "export files"))
    if config.optouts.mode == "disabled":
        parts.append("opt-outs off")
    else:
        pairs = len(config.optouts.pairs)
        parts.append(f"opt-outs {config.optouts.mode} ({pairs} pair{'' if pairs == 1 else 's'})")
    parts.append("state " + config.state.url.split(":", 1)[0])
    return "; ".join(parts)
