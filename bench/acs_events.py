"""Benchmark of the ACS events emulator: simulating a delivery, publishing it, paging the journal, exporting.

Run: ``.venv/bin/python -m bench.acs_events [--targets N] [--limit L]``. Writes bench/results/acs_events.json
and prints a one-line summary. The journal is read through the in-process ASGI transport (no socket), with
the documented request headers, following ``Link: rel="next"`` until 204.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request

from crmbridge.emulators.campaign.events import (
    DeliverySpec,
    DeliveryTarget,
    EventsHub,
    ExportSettings,
    JournalRegistration,
    ManualClock,
    journal_routes,
)

RESULT = Path(__file__).parent / "results" / "acs_events.json"
REGISTRATION = JournalRegistration("23294", "54108", "bench-registration", "bench-client", "BENCH@AdobeOrg")
HEADERS = {"Authorization": "Bearer t", "x-api-key": "bench-client", "x-ims-org-id": "BENCH@AdobeOrg"}


@dataclass(frozen=True)
class Token:
    client_id: str
    scopes: tuple[str, ...]


def bearer(request: Request) -> Token:
    return Token("bench-client", ("adobeio_api",))


def next_link(response: httpx.Response) -> str:
    (link,) = [value for value in response.headers.get_list("link") if 'rel="next"' in value]
    return link.split(">", 1)[0][1:]


async def page_journal(hub: EventsHub, limit: int) -> tuple[int, int, float]:
    app = Starlette(routes=journal_routes(bearer, hub, REGISTRATION))
    transport = httpx.ASGITransport(app=app)
    events = pages = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
        url = f"{REGISTRATION.path}?limit={limit}"
        while (response := await client.get(url, headers=HEADERS)).status_code == 200:
            events += response.json()["_page"]["count"]
            pages += 1
            url = next_link(response)
    return events, pages, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=100_000, help="profiles the delivery is sent to")
    parser.add_argument("--limit", type=int, default=1000, help="journal page size")
    args = parser.parse_args()

    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    targets = [DeliveryTarget(f"@pk{i:07d}", f"contact-{i:07d}", f"user{i}@example.com") for i in range(args.targets)]
    with tempfile.TemporaryDirectory() as folder:
        hub = EventsHub(Path(folder) / "events.db", clock=clock, exports=ExportSettings(folder=Path(folder) / "out"))
        started = time.perf_counter()
        report = hub.simulate_delivery(DeliverySpec("CAMP", "Camp", "DM1", "Delivery", clock(), seed=1), targets)
        simulate_s = time.perf_counter() - started
        clock.advance(timedelta(days=4))
        started = time.perf_counter()
        hub.release_due(run_due_export=False)
        release_s = time.perf_counter() - started
        started = time.perf_counter()
        files = hub.run_export()
        export_s = time.perf_counter() - started
        export_bytes = sum(path.stat().st_size for path in files)
        events, pages, read_s = asyncio.run(page_journal(hub, args.limit))
        hub.close()

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = " ".join([".venv/bin/python -m bench.acs_events", *sys.argv[1:]])
    result = {
        "command": command,
        "nproc": os.cpu_count(),
        "targets": args.targets,
        "events": sum(report.counts.values()),
        "simulate_and_schedule_s": round(simulate_s, 3),
        "publish_s": round(release_s, 3),
        "export_s": round(export_s, 3),
        "export_bytes_gzip": export_bytes,
        "journal_events_read": events,
        "journal_pages": pages,
        "journal_read_s": round(read_s, 3),
        "journal_events_per_s": round(events / read_s) if read_s else None,
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"acs_events: {result['events']} events from {args.targets} targets; simulate {simulate_s:.2f}s, "
        f"publish {release_s:.2f}s, export {export_s:.2f}s, journal {result['journal_events_per_s']} events/s "
        f"(limit {args.limit}), peak RSS {peak_rss_mb:.0f} MB; nproc={os.cpu_count()}; {command}"
    )


if __name__ == "__main__":
    main()
