"""Benchmark: contacts from the Dataverse emulator to the Campaign emulator, with per-request latency.

Both emulators run as child processes on this machine (as they would be separate services); the sync runs in
this process, so its CPU time and peak RSS are crmbridge's own. Reports records/s end to end, CPU per record,
ACS "engine calls" (the 1/1/2 rule: campaign-standard-api.md §8) and Dataverse requests.

    .venv/bin/python -m bench.tables_sync --contacts 100000 --dynamics-latency 50 --campaign-latency 150
    .venv/bin/python -m bench.tables_sync --contacts 1000000 --rebaseline   # then an expired-token re-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from crmbridge.config import load_config
from crmbridge.demo import demo_config_text
from crmbridge.emulators.launch import start_campaign, start_dynamics
from crmbridge.engine.runner import Runner, Services
from crmbridge.event_loop import run as run_event_loop

RESULTS = Path(__file__).parent / "results"
_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process, from /proc/PID/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Rebaseline:
    """Between the passes: Dynamics changes and deletes some contacts, then its clock passes the change-tracking
    retention, so the second pass finds its delta link expired and re-baselines (full read + sweep for deletes)."""

    operator_url: str  # the Dataverse emulator's /_emulator base
    ca_path: Path
    updates: int
    deletes: int

    async def prepare(self) -> dict[str, int]:
        verify = ssl.create_default_context(cafile=str(self.ca_path))
        async with httpx.AsyncClient(base_url=self.operator_url, verify=verify, timeout=600, trust_env=False) as op:
            changed = await op.post("/mutate", json={"updates": self.updates, "deletes": self.deletes, "seed": 7})
            changed.raise_for_status()
            moved = await op.post("/clock", json={"advance_days": 8})  # past ExpireChangeTrackingInDays (7)
            moved.raise_for_status()
        body = changed.json()
        return {"updated_in_dynamics": len(body["updated"]), "deleted_in_dynamics": len(body["deleted"])}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def _pass(runner: Runner) -> dict[str, object]:
    cpu = _cpu_seconds()
    started = time.perf_counter()
    totals = {"read": 0, "written": 0, "created": 0, "updated": 0, "deleted": 0, "skipped": 0, "filtered": 0}
    kinds = []
    for stats in await runner.tables_pass(only="contacts"):
        kinds.append(stats.kind)
        totals["written"] += stats.written
        for name in ("read", "created", "updated", "deleted", "skipped", "filtered"):
            totals[name] += int(getattr(stats, name))
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    read = totals["read"]
    return {
        "kind": ",".join(kinds),
        "records": read,
        **{name: value for name, value in totals.items() if name != "read"},
        "seconds": round(seconds, 2),
        "records_per_s": round(read / seconds, 1) if seconds else None,
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_record": round(1000 * cpu / read, 3) if read else None,
        "peak_rss_mb": _peak_rss_mb(),
    }


async def _sync(config_path: Path, rebaseline: Rebaseline | None) -> dict[str, object]:
    config = load_config(config_path)
    async with Services.open(config) as services:
        runner = Runner(services)
        result = await _pass(runner)
        campaign = services.campaign.stats
        dataverse_requests = services.dataverse.session.stats.requests if services.dataverse.session.stats else 0
        result |= {
            "acs_engine_calls": campaign.engine_calls,
            "acs_requests": campaign.http.requests,  # HTTP attempts: lookups and retries too, which engine calls omit
            "dataverse_requests": dataverse_requests,
        }
        limiter = services.campaign.limiter
        if limiter is not None:  # enough requests in flight? 500 records/s at 150 ms needs 75+
            result |= {"acs_limit": limiter.limit, "acs_peak_in_flight": limiter.peak_in_flight}
        if rebaseline is not None:
            prepared = await rebaseline.prepare()
            result["rebaseline"] = prepared | await _pass(runner)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--dynamics-latency", type=float, default=50.0, help="ms per Dataverse request")
    parser.add_argument("--campaign-latency", type=float, default=150.0, help="ms per ACS request")
    # At 150 ms per ACS request, 128 in flight cap a sync at 853 records/s before any page boundary; 256 is
    # the configuration's maximum (the limiter still halves it on a 429).
    parser.add_argument("--campaign-concurrency", type=int, default=256)
    parser.add_argument(
        "--lookup-first", action="store_true", help="keys_are_identification_keys off: a lookup before each create"
    )
    parser.add_argument(
        "--rebaseline",
        action="store_true",
        help="then update and delete 1%% of the contacts, expire the delta token and time the re-baseline pass",
    )
    parser.add_argument("--workdir", type=Path, default=Path(".crmbridge/bench-tables"))
    parser.add_argument("--name", default="tables_sync")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    seed_started = time.perf_counter()
    dynamics = start_dynamics(
        args.workdir, seed=args.contacts, latency_ms=args.dynamics_latency, limits="enabled=false"
    )
    campaign = start_campaign(args.workdir, latency_ms=args.campaign_latency)
    seeded = time.perf_counter() - seed_started
    try:
        config_path = args.workdir / "crmbridge.yaml"
        text = demo_config_text(
            dynamics.base_url,
            dynamics.ca_path or Path(),
            campaign.base_url,
            (args.workdir / "state.db").resolve(),
            events=False,
            optouts=False,
            campaign_concurrency=args.campaign_concurrency,
            dynamics_concurrency=8,
        )
        if args.lookup_first:
            text = text.replace("keys_are_identification_keys: true", "keys_are_identification_keys: false")
        config_path.write_text(text)
        emulators = {"dynamics": dynamics.process.pid, "campaign": campaign.process.pid}
        cpu_before = {name: _process_cpu_seconds(pid) for name, pid in emulators.items()}
        rebaseline = None
        if args.rebaseline:
            assert dynamics.ca_path is not None
            share = max(1, args.contacts // 100)
            rebaseline = Rebaseline(f"{dynamics.base_url}/_emulator", dynamics.ca_path, share, share)
        result = run_event_loop(_sync(config_path, rebaseline))
        # Which side binds: the emulators' CPU during the sync, next to the sync's own.
        for name, pid in emulators.items():
            result[f"{name}_emulator_cpu_s"] = round(_process_cpu_seconds(pid) - cpu_before[name], 2)
    finally:
        dynamics.stop()
        campaign.stop()
    result |= {
        "contacts_seeded": args.contacts,
        "seed_and_start_s": round(seeded, 1),
        "dynamics_latency_ms": args.dynamics_latency,
        "campaign_latency_ms": args.campaign_latency,
        "campaign_concurrency": args.campaign_concurrency,
        "lookup_first": args.lookup_first,
        "nproc": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.tables_sync", *sys.argv[1:]]),
        "target": ">= 500 records/s with latency on; peak RSS < 200 MB",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    again = result.get("rebaseline")
    if isinstance(again, dict):
        print(
            f"tables_sync re-baseline ({again['kind']}): {again['records']} records in {again['seconds']} s = "
            f"{again['records_per_s']} records/s, {again['cpu_ms_per_record']} ms CPU/record; updated "
            f"{again['updated']}, deleted {again['deleted']} (Dynamics: {again['updated_in_dynamics']} updated, "
            f"{again['deleted_in_dynamics']} deleted)"
        )
    print(
        f"tables_sync: {result['records']} records in {result['seconds']} s = {result['records_per_s']} records/s, "
        f"{result['cpu_ms_per_record']} ms CPU/record, {result['acs_engine_calls']} ACS engine calls, "
        f"{result['acs_requests']} ACS requests, peak {result.get('acs_peak_in_flight')} in flight, "
        f"peak RSS {result['peak_rss_mb']} MB; CPU s sync {result['cpu_s']}, dynamics emulator "
        f"{result['dynamics_emulator_cpu_s']}, campaign emulator {result['campaign_emulator_cpu_s']} "
        f"(nproc {result['nproc']}; {result['command']})"
    )


if __name__ == "__main__":
    main()
