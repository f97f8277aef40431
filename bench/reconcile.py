"""Benchmark of ``reconcile``: compare N synced contacts on both sides, then repair planted differences.

Run: ``.venv/bin/python -m bench.reconcile [--contacts N] [--plant K]``. Both emulators run as child processes
on loopback (Dataverse over HTTPS with MSAL, Campaign with IMS), as in ``crmbridge demo``. Writes
bench/results/reconcile.json and prints a one-line summary: rows compared per second, the repair's time, and
this process's peak RSS (the Dynamics side's expected values are held in a dict, so RSS grows with N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crmbridge.config import load_config
from crmbridge.demo import demo_config_text
from crmbridge.emulators.launch import start_campaign, start_dynamics
from crmbridge.engine.reconcile import reconcile
from crmbridge.engine.runner import Runner, Services

RESULT = Path(__file__).parent / "results" / "reconcile.json"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _measure(config_path: Path, plant: int) -> dict[str, Any]:
    config = load_config(config_path)
    async with Services.open(config) as services:
        started = time.perf_counter()
        await Runner(services).tables_pass(only="contacts")
        sync_s = time.perf_counter() - started
        rss_after_sync = _peak_rss_mb()
        profiles = []
        async for row in services.campaign.iter_records("profile"):
            profiles.append(row)
            if len(profiles) >= plant:
                break
        for row in profiles:
            await services.campaign.update("profile", row, {"firstName": "Planted"})
        started = time.perf_counter()
        report = await reconcile(Runner(services), "contacts")
        compare_s = time.perf_counter() - started
        started = time.perf_counter()
        repaired = await reconcile(Runner(services), "contacts", repair=True)
        repair_s = time.perf_counter() - started
    return {
        "dynamics_rows": report.dynamics_rows,
        "campaign_rows": report.campaign_rows,
        "different_found": len(report.of_kind("different")),
        "planted": len(profiles),
        "repaired": repaired.repaired,
        "sync_seconds": round(sync_s, 2),
        "compare_seconds": round(compare_s, 2),
        "rows_per_second": round(report.dynamics_rows / compare_s, 1) if compare_s else None,
        "repair_seconds": round(repair_s, 2),
        "peak_rss_mb_after_sync": round(rss_after_sync, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--plant", type=int, default=50, help="Profiles edited in Campaign before comparing.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmbridge-bench-reconcile-") as temp:
        workdir = Path(temp)
        dynamics = start_dynamics(workdir, seed=args.contacts)
        try:
            campaign = start_campaign(workdir)
            try:
                assert dynamics.ca_path is not None
                config_path = workdir / "crmbridge.yaml"
                text = demo_config_text(dynamics.base_url, dynamics.ca_path, campaign.base_url, workdir / "state.db")
                config_path.write_text(text, encoding="utf-8")
                result = asyncio.run(_measure(config_path, args.plant))
            finally:
                campaign.stop()
        finally:
            dynamics.stop()
    command = " ".join([".venv/bin/python -m bench.reconcile", *sys.argv[1:]])
    result.update({"contacts": args.contacts, "nproc": os.cpu_count(), "command": command})
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        f"reconcile: {result['dynamics_rows']:,} rows compared at {result['rows_per_second']} rows/s, "
        f"{result['different_found']} of {result['planted']} planted differences found, repair "
        f"{result['repair_seconds']} s, peak RSS {result['peak_rss_mb']} MB (nproc={result['nproc']}; {command})"
    )


if __name__ == "__main__":
    main()
