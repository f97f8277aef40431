"""Benchmark: contacts from the Dataverse emulator to the Campaign emulator, with per-request latency.

Both emulators run as child processes on this machine (as they would be separate services); the sync runs in
this process, so its CPU time and peak RSS are crmbridge's own. Reports records/s end to end, CPU per record,
ACS "engine calls" (the 1/1/2 rule: campaign-standard-api.md §8) and Dataverse requests.

    .venv/bin/python -m bench.tables_sync --contacts 100000 --dynamics-latency 50 --campaign-latency 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from crmbridge.config import load_config
from crmbridge.demo import demo_config_text
from crmbridge.emulators.launch import start_campaign, start_dynamics
from crmbridge.engine.runner import Runner, Services

RESULTS = Path(__file__).parent / "results"


async def _sync(config_path: Path, passes: int) -> dict[str, object]:
    config = load_config(config_path)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    read = written = 0
    async with Services.open(config) as services:
        runner = Runner(services)
        for _ in range(passes):
            for stats in await runner.tables_pass(only="contacts"):
                read += stats.read
                written += stats.written
        campaign = services.campaign.stats
        dataverse_requests = services.dataverse.session.stats.requests if services.dataverse.session.stats else 0
        engine_calls = campaign.engine_calls
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "records": read,
        "written": written,
        "seconds": round(seconds, 2),
        "records_per_s": round(read / seconds, 1) if seconds else None,
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_record": round(1000 * cpu / read, 3) if read else None,
        "acs_engine_calls": engine_calls,
        "dataverse_requests": dataverse_requests,
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--dynamics-latency", type=float, default=50.0, help="ms per Dataverse request")
    parser.add_argument("--campaign-latency", type=float, default=150.0, help="ms per ACS request")
    parser.add_argument("--campaign-concurrency", type=int, default=128)
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
        config_path.write_text(text)
        result = asyncio.run(_sync(config_path, passes=1))
    finally:
        dynamics.stop()
        campaign.stop()
    result |= {
        "contacts_seeded": args.contacts,
        "seed_and_start_s": round(seeded, 1),
        "dynamics_latency_ms": args.dynamics_latency,
        "campaign_latency_ms": args.campaign_latency,
        "campaign_concurrency": args.campaign_concurrency,
        "nproc": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.tables_sync", *sys.argv[1:]]),
        "target": ">= 500 records/s with latency on; peak RSS < 200 MB",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    print(
        f"tables_sync: {result['records']} records in {result['seconds']} s = {result['records_per_s']} records/s, "
        f"{result['cpu_ms_per_record']} ms CPU/record, {result['acs_engine_calls']} ACS engine calls, "
        f"peak RSS {result['peak_rss_mb']} MB (nproc {result['nproc']}; {result['command']})"
    )


if __name__ == "__main__":
    main()
