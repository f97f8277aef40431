"""The demo's summary: per flow, what every pass did, as a Rich table and as ``summary.json`` next to the config.

The table is for the person who ran the demo; the JSON file is for scripts and the e2e test, which check it against
what the emulators hold. Both come from the same rows, so they cannot disagree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["SUMMARY_COLUMNS", "Totals", "print_summary", "summary_rows", "write_summary_file"]

SUMMARY_COLUMNS = ("read", "written", "skipped", "waiting", "failed", "seconds")


@dataclass
class Totals:
    """Per flow, the counts of every pass of the demo added up."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, flow: str, counts: dict[str, int], seconds: float) -> None:
        row = self.rows.setdefault(flow, {"seconds": 0.0})
        for name, value in counts.items():
            row[name] = row.get(name, 0) + value
        row["seconds"] += seconds


def _summary_row(row: dict[str, float]) -> dict[str, float]:
    """One flow's raw counts folded into the table's columns.

    written: rows created, updated or deleted in the target (both targets for opt-outs). waiting: kept to be
    written later (vehicles whose contact is not synced yet, events whose profile has no contact). failed: refused
    by the target, once per pass that tried (the record's dead letter counts the attempts).
    """
    skipped = row.get("skipped", 0) + row.get("filtered", 0) + row.get("duplicates", 0) + row.get("not_enabled", 0)
    written = row.get("created", 0) + row.get("updated", 0) + row.get("deleted", 0)
    written += row.get("written", 0) + row.get("written_dynamics", 0) + row.get("written_campaign", 0)
    return {
        "read": row.get("read", row.get("dynamics_changes", 0) + row.get("campaign_changes", 0)),
        "written": written,
        "skipped": skipped,
        "waiting": row.get("parked", 0) + row.get("unmatched", 0),
        "failed": row.get("failed", 0),
        "seconds": row["seconds"],
    }


def summary_rows(totals: Totals) -> dict[str, dict[str, float]]:
    return {flow: _summary_row(row) for flow, row in totals.rows.items()}


def print_summary(totals: Totals, console: Console, seconds: float) -> None:
    table = Table(title=f"crmbridge demo: summary ({seconds:.1f} s)", show_lines=False)
    table.add_column("flow")
    for name in SUMMARY_COLUMNS:
        table.add_column(name, justify="right")
    for flow, row in summary_rows(totals).items():
        table.add_row(flow, *(f"{row[name]:,.0f}" for name in SUMMARY_COLUMNS[:-1]), f"{row['seconds']:.1f}")
    console.print(table)
    console.print(
        "[dim]waiting: kept and written later (a vehicle whose contact is not synced, an event whose profile has no"
        " contact); failed: refused by the target (once per pass; the record waits as a dead letter on the"
        " dashboard).[/dim]"
    )


def write_summary_file(path: Path, totals: Totals, seconds: float, **details: Any) -> None:
    """``summary.json``: the table's rows, the raw counts behind them, and ``details`` (addresses, live changes).

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    document = {
        "seconds": round(seconds, 3),
        "summary": summary_rows(totals),
        "counts": totals.rows,
        **details,
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
    os.replace(temporary, path)
