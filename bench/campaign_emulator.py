"""Campaign emulator at scale: seed N profiles, page at _lineCount=1000, scan by lastModified desc, peak RSS.

Run: .venv/bin/python -m bench.campaign_emulator [--profiles 1000000] [--pages 20]
Writes bench/results/campaign_emulator.json and prints a one-line summary. Requests go in-process (httpx
ASGITransport), so the numbers measure the emulator (routing, SQL, JSON), not a network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from crmbridge.emulators.campaign import CampaignEmulatorSettings, ImsClientConfig, create_app
from crmbridge.emulators.campaign.seed import seed_profiles

RESULT = Path(__file__).parent / "results" / "campaign_emulator.json"


async def _measure(profiles: int, pages: int, scan_rows: int, db_path: str) -> dict[str, object]:
    settings = CampaignEmulatorSettings(
        db_path=db_path, clients=(ImsClientConfig("bench", "bench-secret"),), pkey_salt="bench"
    )
    app = create_app(settings)
    context = app.state.campaign
    started = time.perf_counter()
    seed_profiles(context.storage, profiles, now=context.now(), seed=1)
    seed_s = time.perf_counter() - started
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        token = (
            await http.post(
                "/ims/token/v3",
                data={"grant_type": "client_credentials", "client_id": "bench", "client_secret": "bench-secret"},
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Api-Key": "bench"}
        base = "/acme/campaign/profileAndServices/profile"
        latencies = []
        url: str | None = f"{base}?_lineCount=1000&_forcePagination=true"
        for _ in range(pages):
            if url is None:
                break
            t0 = time.perf_counter()
            page = (await http.get(url, headers=headers)).json()
            latencies.append((time.perf_counter() - t0) * 1000)
            url = (page.get("next") or {}).get("href")
        scanned, t0 = 0, time.perf_counter()
        url = f"{base}?_lineCount=1000&_order=lastModified%20desc&_forcePagination=true"
        previous = None
        while url and scanned < scan_rows:
            page = (await http.get(url, headers=headers)).json()
            stamps = [row["lastModified"] for row in page["content"]]
            assert stamps == sorted(stamps, reverse=True)
            assert previous is None or stamps[0] <= previous
            previous = stamps[-1] if stamps else previous
            scanned += len(stamps)
            url = (page.get("next") or {}).get("href")
        scan_s = time.perf_counter() - t0
    return {
        "profiles": profiles,
        "seed_seconds": round(seed_s, 2),
        "seed_rows_per_s": round(profiles / seed_s),
        "page_1000_ms_median": round(statistics.median(latencies), 1),
        "page_1000_ms_p95": round(sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)], 1),
        "pages_measured": len(latencies),
        "last_modified_desc_rows_scanned": scanned,
        "last_modified_desc_rows_per_s": round(scanned / scan_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "nproc": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--scan-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(_measure(args.profiles, args.pages, args.scan_rows, str(Path(tmp) / "bench.db")))
    command = (
        f".venv/bin/python -m bench.campaign_emulator --profiles {args.profiles} --pages {args.pages} "
        f"--scan-rows {args.scan_rows}"
    )
    result["command"] = command
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"campaign_emulator: {result['profiles']} profiles seeded at {result['seed_rows_per_s']}/s, "
        f"page(1000) median {result['page_1000_ms_median']} ms, lastModified desc "
        f"{result['last_modified_desc_rows_per_s']} rows/s, peak RSS {result['peak_rss_mb']} MB "
        f"(nproc={result['nproc']}, shared machine) — {command}"
    )


if __name__ == "__main__":
    main()
