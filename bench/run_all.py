"""Run every benchmark, then write docs/performance.md from their results (issue 11).

    .venv/bin/python -m bench.run_all [--quick] [--only NAME,NAME] [--report-only]

Each benchmark runs as its own process (``python -m bench.NAME``, full size by default, reduced sizes with
``--quick``) and writes ``bench/results/NAME.json``; a benchmark that fails is listed as failed, not hidden. The
page gives each figure, its target from the flow issues (where the issue sets one), whether it is met or by how
much it is missed, the machine (``nproc``, CPU model, Python, load average) and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAGE = ROOT / "docs" / "performance.md"
OUTCOMES = RESULTS / "run_all.json"  # what the last run did (exit codes, times, load), for --report-only


@dataclass(frozen=True)
class Run:
    """One invocation of a benchmark module; ``result`` is the JSON file it writes."""

    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None  # None: skipped by --quick
    result: str = ""

    @property
    def result_name(self) -> str:
        return self.result or self.module


NO_LATENCY = ("--dynamics-latency", "0", "--campaign-latency", "0", "--name", "tables_sync_no_latency")
RUNS: tuple[Run, ...] = (
    Run("dynamics_emulator", (), ("--contacts", "20000")),
    Run("campaign_emulator", (), ("--profiles", "20000", "--pages", "5", "--scan-rows", "5000")),
    Run("acs_events", (), ("--targets", "5000")),
    Run("campaign_client", (), ("--profiles", "2000", "--upserts", "200", "--delivery", "500")),
    Run("dataverse_stream", (), ("--rows", "50000")),
    Run("dataverse_throttle", (), ("--operations", "300", "--limit", "100", "--window", "5")),
    Run("http_limiter", (), ("--requests", "500")),
    Run("state_store", (), ("--batches", "10", "--links", "1000")),
    Run("tables_sync", ("--rebaseline",), ("--contacts", "2000", "--rebaseline")),
    Run("tables_sync", NO_LATENCY, ("--contacts", "2000", *NO_LATENCY), result="tables_sync_no_latency"),
    Run(
        "tables_sync",
        ("--contacts", "20000", "--lookup-first", "--name", "tables_sync_lookup_first"),
        ("--contacts", "2000", "--lookup-first", "--name", "tables_sync_lookup_first"),
        result="tables_sync_lookup_first",
    ),
    Run(
        "tables_sync",
        ("--contacts", "1000000", "--rebaseline", "--name", "tables_sync_1m"),
        None,  # about 20 minutes: full runs only
        result="tables_sync_1m",
    ),
    Run("reconcile", (), ("--contacts", "2000")),
    Run("events_flow", ("--events", "200000", "--contacts", "20000"), ("--events", "5000", "--contacts", "1000")),
    Run(
        "events_flow",
        ("--events", "20000", "--contacts", "5000", "--limits", "window_s=10,max_execution_ms=20000"),
        ("--events", "3000", "--contacts", "1000", "--limits", "window_s=5,max_execution_ms=10000"),
        result="events_flow_limits",
    ),
    Run("optout_latency", (), ("--changes", "200", "--duration", "30")),
)


QUICK_NOTE = [
    "",
    "At reduced sizes, throughput figures include start-up costs (connections, tokens, the adaptive limiters'",
    "slow start) spread over few records; the issues' targets are stated for the full sizes (`make bench`).",
]


@dataclass(frozen=True)
class Target:
    """``value <op> bound``; ``text`` is how the issue states it."""

    op: str  # ">=", "<=", "<", "=="
    bound: float
    text: str

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "no value"
        met = {
            ">=": value >= self.bound,
            "<=": value <= self.bound,
            "<": value < self.bound,
            "==": value == self.bound,
        }[self.op]
        if met:
            return "met"
        if self.bound == 0:
            return f"missed ({value:g} vs {self.bound:g})"
        return f"missed by {abs(value - self.bound) / abs(self.bound):.0%}"


@dataclass(frozen=True)
class Figure:
    result: str
    label: str
    read: Callable[[dict[str, Any]], Any]
    unit: str = ""
    target: Target | None = None


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(data: dict[str, Any]) -> Any:
        value: Any = data
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return read


def _runs(mode: str, key: str) -> Callable[[dict[str, Any]], Any]:
    def read(data: dict[str, Any]) -> Any:
        return next((r.get(key) for r in data.get("runs", []) if r.get("mode") == mode), None)

    return read


def _rss_growth(data: dict[str, Any]) -> Any:
    start, end = data.get("rss_at_10pct_mb"), data.get("rss_at_100pct_mb")
    return None if start is None or end is None else round(end - start, 1)


def _slowest_way(data: dict[str, Any]) -> Any:
    values = [_get(way, "p95_s")(data) for way in ("dynamics->campaign", "campaign->dynamics")]
    return None if None in values else max(values)


def _rebaseline_figures(result: str) -> tuple[Figure, ...]:
    """The second pass of ``tables_sync --rebaseline``: an expired delta token, a full read and a sweep for deletes."""
    return (
        Figure(result, "expired-token re-baseline", _get("rebaseline", "records_per_s"), "records/s"),
        Figure(result, "re-baseline: deletions found", _get("rebaseline", "deleted"), ""),
        Figure(result, "re-baseline: deletions made in Dynamics", _get("rebaseline", "deleted_in_dynamics"), ""),
    )


FIGURES: tuple[Figure, ...] = (
    Figure("dynamics_emulator", "last 5,000-row page of a full read", _get("last_page_seconds"), "s",
           Target("<", 0.5, "< 0.5 s (issue 3)")),
    Figure("dynamics_emulator", "change-tracking read", _get("change_tracking_rows_per_second"), "rows/s"),
    Figure("dynamics_emulator", "emulator peak RSS", _get("emulator_peak_rss_mb"), "MB"),
    Figure("campaign_emulator", "page at _lineCount=1000, median", _get("page_1000_ms_median"), "ms"),
    Figure("campaign_emulator", "lastModified desc scan", _get("last_modified_desc_rows_per_s"), "rows/s"),
    Figure("campaign_emulator", "peak RSS", _get("peak_rss_mb"), "MB"),
    Figure("acs_events", "journal read", _get("journal_events_per_s"), "events/s"),
    Figure("campaign_client", "profile paging", _get("paging_rows_per_s"), "rows/s"),
    Figure("campaign_client", "journal consumer", _get("journal_events_per_s"), "events/s"),
    Figure("dataverse_stream", "streamed rows", _get("rows_per_s"), "rows/s"),
    Figure("dataverse_stream", "RSS growth from 10% to 100% of the stream", _rss_growth, "MB"),
    Figure("dataverse_throttle", "achieved share of the binding limit", _get("ratio"), "",
           Target(">=", 0.9, ">= 0.90 (issue 4)")),
    Figure("dataverse_throttle", "failed operations", _get("failed_operations"), "",
           Target("==", 0, "0 (issue 4)")),
    Figure("http_limiter", "adaptive limiter", _runs("adaptive", "requests_per_s"), "req/s"),
    Figure("http_limiter", "fixed concurrency", _runs("fixed", "requests_per_s"), "req/s"),
    Figure("state_store", "SQLite commit", _get("sqlite", "commit_rows_per_second"), "rows/s"),
    Figure("state_store", "PostgreSQL commit", _get("postgresql", "commit_rows_per_second"), "rows/s"),
    Figure("tables_sync", "contacts end to end, latency on", _get("records_per_s"), "records/s",
           Target(">=", 500, ">= 500 records/s (issue 7)")),
    Figure("tables_sync", "sync process peak RSS", _get("peak_rss_mb"), "MB", Target("<", 200, "< 200 MB (issue 7)")),
    Figure("tables_sync", "CPU per record", _get("cpu_ms_per_record"), "ms"),
    Figure("tables_sync", "ACS engine calls", _get("acs_engine_calls"), ""),
    Figure("tables_sync", "Dataverse requests", _get("dataverse_requests"), ""),
    *_rebaseline_figures("tables_sync"),
    Figure("tables_sync_no_latency", "contacts end to end, latency off", _get("records_per_s"), "records/s"),
    Figure("tables_sync_no_latency", "CPU per record", _get("cpu_ms_per_record"), "ms"),
    Figure("tables_sync_no_latency", "sync process peak RSS", _get("peak_rss_mb"), "MB",
           Target("<", 200, "< 200 MB (issue 7)")),
    Figure("tables_sync_lookup_first", "contacts, a lookup before each create", _get("records_per_s"), "records/s"),
    Figure("tables_sync_lookup_first", "ACS engine calls", _get("acs_engine_calls"), ""),
    Figure("tables_sync_1m", "1,000,000 contacts end to end, latency on", _get("records_per_s"), "records/s",
           Target(">=", 500, ">= 500 records/s (issue 7)")),
    Figure("tables_sync_1m", "sync process peak RSS (both passes)", _get("peak_rss_mb"), "MB",
           Target("<", 200, "< 200 MB (issue 7)")),
    *_rebaseline_figures("tables_sync_1m"),
    Figure("reconcile", "compare", _get("rows_per_second"), "rows/s"),
    Figure("reconcile", "peak RSS", _get("peak_rss_mb"), "MB"),
    Figure("events_flow", "events to activities, limits off", _get("events_per_s"), "events/s",
           Target(">=", 2000, ">= 2,000 events/s (issue 8)")),
    Figure("events_flow", "failed events, limits off", _get("failed_events"), "", Target("==", 0, "0 (issue 8)")),
    Figure("events_flow", "run time with a Dataverse request in flight", _get("dataverse_busy_s"), "s"),
    Figure("events_flow", "run time with a Campaign request in flight", _get("campaign_busy_s"), "s"),
    Figure("events_flow", "whole events pass", _get("seconds"), "s"),
    Figure("events_flow", "publication → row in Dynamics, p50", _get("latency_p50_s"), "s"),
    Figure("events_flow", "publication → row in Dynamics, p95", _get("latency_p95_s"), "s"),
    Figure("events_flow_limits", "share of the binding limit", _get("share_of_limit"), "",
           Target(">=", 0.9, ">= 0.90 (issue 8)")),
    Figure("events_flow_limits", "failed events, limits on", _get("failed_events"), "", Target("==", 0, "0 (issue 8)")),
    Figure("events_flow_limits", "Dataverse 429 answers", _get("dataverse_429"), ""),
    Figure("events_flow_limits", "publication → row in Dynamics, p50", _get("latency_p50_s"), "s"),
    Figure("events_flow_limits", "publication → row in Dynamics, p95", _get("latency_p95_s"), "s"),
    Figure("optout_latency", "Dynamics → Campaign, p50", _get("dynamics->campaign", "p50_s"), "s"),
    Figure("optout_latency", "Dynamics → Campaign, p95", _get("dynamics->campaign", "p95_s"), "s",
           Target("<", 15, "< 15 s (issue 9)")),
    Figure("optout_latency", "Campaign → Dynamics, p50", _get("campaign->dynamics", "p50_s"), "s"),
    Figure("optout_latency", "Campaign → Dynamics, p95", _get("campaign->dynamics", "p95_s"), "s",
           Target("<", 15, "< 15 s (issue 9)")),
    Figure("optout_latency", "slowest way, p95", _slowest_way, "s"),
)  # fmt: skip


def run_benchmark(run: Run, quick: bool) -> dict[str, Any]:
    """Run one benchmark; what happened (exit code, seconds, its last output line)."""
    args = run.full if not quick or run.quick is None else run.quick
    command = [sys.executable, "-m", f"bench.{run.module}", *args]
    (RESULTS / f"{run.result_name}.json").unlink(missing_ok=True)  # a failed run must not show an old result
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    outcome = {
        "result": run.result_name,
        "command": " ".join([".venv/bin/python -m", f"bench.{run.module}", *args]),
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "last_line": lines[-1] if lines else "",
    }
    print(f"[{outcome['seconds']:>7} s] {run.result_name}: exit {done.returncode}: {outcome['last_line']}", flush=True)
    return outcome


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }


def _format(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        value = int(value)
    text = f"{value:,}" if isinstance(value, int | float) else str(value)
    return f"{text} {unit}".strip()


def _machine_note(before: dict[str, Any]) -> list[str]:
    """Whether other work shared the cores: judged by the 1-minute load average when the run began."""
    load = before["load_average"][0]
    if load < 1.0:
        return [
            f"The machine was otherwise idle when this began (1-minute load average {load}): the emulators and the",
            "code measured had the 2 cores to themselves, as the issues' targets assume.",
        ]
    return [
        f"**The machine was shared** (1-minute load average {load} when this began) with other builds and tests, so",
        "the figures are lower bounds for the machine, and latencies include waiting for a core.",
    ]


def render(outcomes: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any], quick: bool) -> str:
    by_result = {o["result"]: o for o in outcomes}
    results = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in by_result if _has(name)}
    size = "reduced sizes (`--quick`)" if quick else "full sizes (the issues' sizes)"
    lines = [
        "# Performance",
        "",
        f"Generated by `.venv/bin/python -m bench.run_all{' --quick' if quick else ''}` on "
        f"{after.get('at', 'an unrecorded time')}, at {size}. The table of commands below gives the exact command",
        "that reproduces each benchmark's figures (run from the repository root after `make test` created `.venv`).",
        "",
        *_machine_note(before),
        *(QUICK_NOTE if quick else []),
        "",
        f"- CPU: {before['cpu']}, `nproc` = {before['nproc']}",
        f"- Python {before['python']} on {before['platform']}",
        f"- load average (1, 5, 15 min) at the start: {', '.join(map(str, before['load_average']))}; "
        f"at the end: {', '.join(map(str, after['load_average']))}",
        "",
        "| benchmark | figure | value | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for figure in FIGURES:
        if figure.result not in by_result:
            continue
        data = results.get(figure.result)
        value = figure.read(data) if data is not None else None
        target = figure.target.text if figure.target else "—"
        verdict = _verdict(figure, value, failed=data is None)
        lines.append(f"| {figure.result} | {figure.label} | {_format(value, figure.unit)} | {target} | {verdict} |")
    lines += ["", "## Commands", "", "| benchmark | exit | seconds | command |", "|---|---|---|---|"]
    for o in outcomes:
        command = o["command"] or results.get(o["result"], {}).get("command", "")
        lines.append(f"| {o['result']} | {o['exit_code']} | {o['seconds']} | `{command}` |")
    failed = [o for o in outcomes if o["exit_code"] != 0]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{o['result']}`: {o['last_line'] or 'no output'}" for o in failed]
    lines += ["", "## How the figures are measured", "", *_method_notes(results), ""]
    return "\n".join(lines)


def _verdict(figure: Figure, value: Any, *, failed: bool) -> str:
    if failed:
        return "benchmark failed"
    return figure.target.verdict(value) if figure.target else "reported"


def _has(name: str) -> bool:
    return (RESULTS / f"{name}.json").exists()


def _method_notes(results: dict[str, Any]) -> list[str]:
    notes = [
        "- Every benchmark's docstring (`bench/NAME.py`) says what it measures; its JSON is in `bench/results/`.",
        "- Emulators run as child processes on the same 2 cores as the code measured.",
    ]
    if "events_flow" in results:
        flow = results["events_flow"]
        notes.append(f"- events_flow latency clock: {flow.get('latency_clock')}.")
        notes.append(
            f"- events_flow: of the {flow.get('seconds')} s pass, a Dataverse request was in flight "
            f"{flow.get('dataverse_busy_s')} s and a Campaign (journal) request {flow.get('campaign_busy_s')} s "
            "(reading, writing and committing overlap); CPU ms per event written, by process: "
            f"{flow.get('cpu_ms_per_event')}."
        )
    if "events_flow_limits" in results:
        limits = results["events_flow_limits"]
        notes.append(
            f"- events_flow_limits: binding facet `{limits.get('binding_limit')}`, allowed "
            f"{limits.get('allowed_events_per_s')} events/s, achieved {limits.get('steady_events_per_s')} events/s "
            f"after the first window; {limits.get('dataverse_429')} answers 429 and a Dataverse request in flight "
            f"{limits.get('dataverse_busy_s')} s of {limits.get('seconds')} s: the rest is the whole-service pause "
            "for Retry-After. Rows counted: two per activity (created, then closed) and one per task. Execution "
            "time is charged when a request ends, so requests admitted just under the limit overshoot it: the "
            "share can exceed 1."
        )
    if "optout_latency" in results:
        notes.append(f"- optout_latency clock: {results['optout_latency'].get('latency_clock')}.")
    return notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: minutes instead of hours")
    parser.add_argument("--only", default="", help="comma-separated result names to run (default: all)")
    parser.add_argument(
        "--report-only", action="store_true", help="do not run; rewrite the page from the last run's results"
    )
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    runs = [run for run in RUNS if (not only or run.result_name in only) and not (args.quick and run.quick is None)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads(OUTCOMES.read_text())
        before, after, outcomes, quick = saved["before"], saved["after"], saved["outcomes"], saved["quick"]
    else:
        before, quick = machine(), args.quick
        outcomes = [run_benchmark(run, quick) for run in runs]
        after = machine()
        saved = {"before": before, "after": after, "outcomes": outcomes, "quick": quick}
        OUTCOMES.write_text(json.dumps(saved, indent=2) + "\n")
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(outcomes, before, after, quick), encoding="utf-8")
    failed = sum(1 for o in outcomes if o["exit_code"] != 0)
    print(
        f"run_all: {len(outcomes)} benchmarks, {failed} failed; wrote {PAGE.relative_to(ROOT)} (nproc {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
