"""Benchmark of the events flow: Campaign email events from the I/O Events journal to Dynamics activities.

Both emulators run as child processes (Dataverse over HTTPS with MSAL, Campaign with IMS and the journal), as in
``crmbridge demo``; the flow runs in this process. Steps: seed contacts in Dataverse, provision the activity
tables, sync the contacts to Campaign (profiles then carry ``externalId``), simulate deliveries to them until at
least ``--events`` events are scheduled, move the Campaign clock 4 days on and publish what is due
(``POST /_emulator/journal/release``), then run one events pass and time it.

- Without ``--limits`` the Dataverse service protection limits are off: events/s is the flow's own speed.
- With ``--limits`` (the emulator's ``--limits`` syntax, e.g. ``window_s=10,max_execution_ms=20000``) the
  limits are scaled down; the rate after the first window (whose initial burst a sustained sync never gets
  again) is compared with what the binding facet allows: requests per window times rows per request, or
  execution time per window over the charge per row (``row_write_ms`` + ``request_ms`` per request, shared).
  Rows are every row write the flow needs: an activity is two (created open, then closed: Dataverse does not
  take a completed state on create), a follow-up task one. Requests admitted just below the limit are charged
  when they finish, so the last ones may overshoot it: keep the run several windows long, or the share reads high.

Latency is from journal publication to the row in Dynamics: this process's wall clock when the release call
returns, to the wall clock when the batch holding the event was acknowledged (the flow's progress callback).
Where the time goes: ``dataverse_busy_s`` and ``campaign_busy_s`` are the seconds with at least one request in
flight to that service (they overlap: the flow reads the next page while earlier batches are written), and
``cpu_ms_per_event`` the CPU each process (crmbridge, the Dataverse and the Campaign emulator, all on the same
cores) spent per activity written during the pass, from /proc: on a shared machine, CPU is the stable figure.
All events are published at once, so this is the latency of draining a backlog, not of a trickle. The flow's
own ``EventStats.latencies`` (occurred→written) are not used: "occurred" comes from the Campaign emulator's
clock, which this benchmark moves 4 days on so that opens and clicks fall due, so they say nothing here.

    .venv/bin/python -m bench.events_flow --events 200000 --contacts 20000
    .venv/bin/python -m bench.events_flow --events 20000 --contacts 5000 --limits window_s=10,max_execution_ms=20000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import os
import shutil
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.demo import demo_config_text
from crmbridge.emulators.dynamics.limits import LimitSettings
from crmbridge.emulators.launch import EmulatorProcess, start_campaign, start_dynamics
from crmbridge.engine.events import EventStats
from crmbridge.engine.provision import provision
from crmbridge.engine.runner import Runner, Services

RESULTS = Path(__file__).parent / "results"


@dataclass
class Progress:
    """Wall-clock time each batch was acknowledged, with the running count of activities written."""

    marks: list[tuple[float, int]] = field(default_factory=list)

    def __call__(self, stats: EventStats) -> None:
        self.marks.append((time.time(), stats.written))


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def publication_latencies(marks: list[tuple[float, int]], published_at: float) -> list[float]:
    """One latency per written event: when its batch was acknowledged minus when the journal published it."""
    latencies: list[float] = []
    previous = 0
    for at, written in marks:
        latencies.extend([at - published_at] * (written - previous))
        previous = written
    return latencies


def steady_rate(marks: list[tuple[float, int]], started: float, window_s: float) -> float | None:
    """Events per second written after the first window (None when the run did not outlast it)."""
    after = [(at - started, written) for at, written in marks if at - started > window_s]
    if not after:
        return None
    before = max((written for at, written in marks if at - started <= window_s), default=0)
    finished, total = after[-1]
    return (total - before) / (finished - window_s) if finished > window_s else None


def allowed_rate(limits: LimitSettings, requests: int, rows: int, events: int) -> dict[str, float]:
    """Events per second each facet allows, from this run's rows per request and rows per event."""
    if not rows or not requests or not events:
        return {}
    rows_per_request, rows_per_event = rows / requests, rows / events
    per_row_ms = limits.row_write_ms + limits.request_ms / rows_per_request
    by_requests = limits.max_requests / limits.window_s * rows_per_request / rows_per_event
    by_execution = limits.max_execution_ms / limits.window_s / per_row_ms / rows_per_event
    return {"requests": by_requests, "execution_time": by_execution}


def publish_events(campaign: EmulatorProcess, contacts: int, wanted: int) -> tuple[int, int]:
    """Deliveries to every synced profile until ``wanted`` events are scheduled; publish them. (events, deliveries)."""
    scheduled = deliveries = 0
    with httpx.Client(base_url=campaign.base_url, timeout=600.0, trust_env=False) as http:
        while scheduled < wanted:
            deliveries += 1
            answer = http.post(
                "/_emulator/deliveries",
                json={
                    "campaign": {"id": "BENCH", "label": "Benchmark"},
                    "delivery": {"id": f"DM{deliveries}", "label": f"Benchmark delivery {deliveries}"},
                    "target": {"count": contacts, "seed": deliveries},
                    "seed": deliveries,
                },
            )
            answer.raise_for_status()
            scheduled += sum(int(n) for n in answer.json()["counts"].values())
        # Opens and clicks come over the next days: move the clock past all of them, then publish.
        http.post("/_emulator/clock", json={"advanceSeconds": 4 * 86400}).raise_for_status()
        http.post("/_emulator/journal/release").raise_for_status()
    return scheduled, deliveries


async def prepare(config: CrmbridgeConfig) -> int:
    """Activity tables provisioned, contacts synced to Campaign; returns the contacts synced."""
    async with Services.open(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
        runner = Runner(services)
        return sum(stats.written for stats in await runner.tables_pass(only="contacts"))


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by ``pid`` (from /proc), or by this process."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5) fields 14, 15)


@dataclass
class CpuMeter:
    """CPU seconds of this process and the emulator processes between ``start`` and ``stop``: where the work goes."""

    pids: dict[str, int]
    used: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {"crmbridge": cpu_seconds(), **{name: cpu_seconds(pid) for name, pid in self.pids.items()}}

    def start(self) -> None:
        self.used = {name: -value for name, value in self._now().items()}

    def stop(self) -> None:
        self.used = {name: round(self.used[name] + value, 2) for name, value in self._now().items()}


class BusyTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; adds up the time at least one request was in flight (requests overlap)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.busy_s = 0.0
        self._since = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.in_flight == 0:
            self._since = time.perf_counter()
        self.in_flight += 1
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.busy_s += time.perf_counter() - self._since

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run_events(
    config: CrmbridgeConfig, cpu: CpuMeter, profile: Path | None = None
) -> tuple[EventStats, Progress, float, int, dict[str, float]]:
    progress = Progress()
    ca = config.dynamics.ca_bundle
    dynamics = BusyTransport(
        httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(ca)) if ca else True)
    )
    campaign = BusyTransport(httpx.AsyncHTTPTransport())
    async with Services.open(config, dynamics_transport=dynamics, campaign_transport=campaign) as services:
        await services.dataverse.who_am_i()  # token and connection warm before the clock starts
        stats_before = services.dataverse.session.stats
        requests_before = stats_before.requests if stats_before else 0
        throttled_before = stats_before.throttled if stats_before else 0  # HttpStats is mutable: copy the counts
        started = time.time()
        cpu.start()
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        stats = await Runner(services).events_pass(progress=progress)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        cpu.stop()
        after = services.dataverse.session.stats
        requests = (after.requests - after.throttled if after else 0) - requests_before
        throttled = (after.throttled if after else 0) - throttled_before
    assert stats is not None, "the configuration has an events section"
    busy = {
        "dataverse_busy_s": round(dynamics.busy_s, 2),
        "campaign_busy_s": round(campaign.busy_s, 2),
        "dataverse_429": throttled,
    }
    return stats, progress, started, requests, busy


def summarise(
    stats: EventStats, progress: Progress, started: float, published_at: float, requests: int, limits: LimitSettings
) -> dict[str, Any]:
    latencies = publication_latencies(progress.marks, published_at)
    seconds = stats.seconds
    result: dict[str, Any] = {
        "events_read": stats.read,
        "activities_written": stats.written,
        "tasks_written": stats.tasks,
        "duplicates": stats.duplicates,
        "not_enabled": stats.not_enabled,
        "unmatched": stats.unmatched,
        "rejected": stats.rejected,
        "failed_events": stats.failed,
        "batches": stats.batches,
        "dataverse_requests": requests,
        "seconds": round(seconds, 2),
        "events_per_s": round(stats.written / seconds, 1) if seconds else None,
        "latency_clock": "this process's wall clock: journal release returned -> batch acknowledged (backlog drain)",
        "latency_p50_s": _rounded(percentile(latencies, 0.5)),
        "latency_p95_s": _rounded(percentile(latencies, 0.95)),
    }
    if limits.enabled:
        # Rows the flow must write: each activity is upserted open and then closed by a second row write (Dataverse
        # refuses a completed statecode on create: see DataverseActivitySink._upsert_closed), plus the tasks.
        allowed = allowed_rate(limits, requests, 2 * stats.written + stats.tasks, stats.written)
        rate = steady_rate(progress.marks, started, limits.window_s)
        binding = min(allowed, key=allowed.__getitem__) if allowed else None
        result |= {
            "limits": limits.as_dict(),
            "allowed_events_per_s": {k: round(v, 1) for k, v in allowed.items()},
            "binding_limit": binding,
            "steady_events_per_s": _rounded(rate),
            "share_of_limit": round(rate / allowed[binding], 3) if rate is not None and binding else None,
        }
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events to publish (issue 8: 200,000)")
    parser.add_argument("--contacts", type=int, default=5_000, help="contacts seeded and synced; deliveries repeat")
    parser.add_argument("--limits", default="", help="scaled-down service protection limits; default: limits off")
    parser.add_argument("--dynamics-concurrency", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path(".crmbridge/bench-events"))
    parser.add_argument("--name", default="", help="result name (default events_flow or events_flow_limits)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the events pass here")
    args = parser.parse_args()
    limits = LimitSettings.parse(args.limits) if args.limits else LimitSettings(enabled=False)
    name = args.name or ("events_flow_limits" if args.limits else "events_flow")
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    # Seeding and the initial sync run without limits; the scaled-down ones are set just before the events pass.
    dynamics = start_dynamics(args.workdir, seed=args.contacts, limits="enabled=false")
    campaign = start_campaign(args.workdir)
    try:
        config_path = args.workdir / "crmbridge.yaml"
        text = demo_config_text(
            dynamics.base_url,
            dynamics.ca_path or Path(),
            campaign.base_url,
            (args.workdir / "state.db").resolve(),
            events=True,
            optouts=False,
            dynamics_concurrency=args.dynamics_concurrency,
        )
        # No batch-size option: events.batch_size reaches only the export reader, not the journal (runner.py).
        config_path.write_text(text)
        config = load_config(config_path)
        synced = asyncio.run(prepare(config))
        scheduled, deliveries = publish_events(campaign, args.contacts, args.events)
        published_at = time.time()
        _set_limits(dynamics, limits)
        cpu = CpuMeter({"dynamics_emulator": dynamics.process.pid, "campaign_emulator": campaign.process.pid})
        load_before = os.getloadavg()
        stats, progress, started, requests, busy = asyncio.run(run_events(config, cpu, args.profile))
        load_after = os.getloadavg()
    finally:
        dynamics.stop()
        campaign.stop()
    result = summarise(stats, progress, started, published_at, requests, limits)
    written = max(1, stats.written)
    result |= busy | {
        "cpu_s": cpu.used,
        "cpu_ms_per_event": {name: round(1000 * seconds / written, 3) for name, seconds in cpu.used.items()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "contacts_synced": synced,
        "deliveries": deliveries,
        "events_scheduled": scheduled,
        "nproc": os.cpu_count(),
        "command": " ".join([".venv/bin/python -m bench.events_flow", *sys.argv[1:]]),
        "target": ">= 90% of the binding limit, 0 failed" if limits.enabled else ">= 2000 events/s, 0 failed",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    share = f", {result['share_of_limit']} of the {result['binding_limit']} limit" if limits.enabled else ""
    print(
        f"{name}: {stats.written} activities from {stats.read} events in {result['seconds']} s = "
        f"{result['events_per_s']} events/s{share}, {stats.failed} failed, {stats.unmatched} unmatched, "
        f"publication->written p50 {result['latency_p50_s']} s p95 {result['latency_p95_s']} s; "
        f"CPU ms/event {result['cpu_ms_per_event']}; load {result['load_average_before'][0]} -> "
        f"{result['load_average_after'][0]} (nproc {os.cpu_count()}; {result['command']})"
    )


def _set_limits(dynamics: EmulatorProcess, limits: LimitSettings) -> None:
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=str(dynamics.ca_path)) if dynamics.ca_path else True
    )
    with httpx.Client(base_url=dynamics.base_url, verify=verify, timeout=60.0, trust_env=False) as http:
        http.put("/_emulator/limits", json=limits.as_dict()).raise_for_status()


if __name__ == "__main__":
    main()
