"""CampaignClient, journal consumer and export reader against the in-process Campaign emulator.

Run: .venv/bin/python -m bench.campaign_client [--profiles 20000] [--upserts 1000] [--delivery 2000]
Writes bench/results/campaign_client.json and prints a one-line summary. Requests go in-process (ASGI), so the
numbers are client + emulator CPU time on this machine, not network latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
from starlette.requests import Request
from starlette.responses import Response

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider
from crmbridge.campaign.client import CampaignClient
from crmbridge.campaign.exports import ExportReader, FolderSource
from crmbridge.campaign.journal import JournalConsumer
from crmbridge.campaign.payload import PayloadMapping
from crmbridge.emulators.campaign import CampaignEmulatorSettings, ImsClientConfig, create_app
from crmbridge.emulators.campaign.events import (
    DeliverySpec,
    EventsHub,
    ExportSettings,
    JournalRegistration,
    journal_routes,
)
from crmbridge.emulators.campaign.ims import TokenInfo, verify_bearer
from crmbridge.emulators.faults import asgi_transport

T = TypeVar("T")
RESULT = Path(__file__).parent / "results" / "campaign_client.json"
BASE = "http://127.0.0.1"
SCOPES = ("openid", "AdobeID", "campaign_sdk", "adobeio_api")
REGISTRATION = JournalRegistration("1", "2", "bench-registration", "bench", "0123456789ABCDEF01234567@AdobeOrg")
MAPPING = PayloadMapping(
    {
        "event_type": "type",
        "occurred_at": "data.timestamp",
        "external_id": "data.profile.externalId",
        "delivery_id": "data.deliveryID",
        "broadlog_id": "data.broadlogID",
        "tracking_log_id": "data.trackinglogID",
        "url": "data.url",
    }
)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


async def _timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - started


async def run(profiles: int, upserts: int, delivery: int, folder: Path) -> dict[str, object]:
    settings = CampaignEmulatorSettings(
        clients=(ImsClientConfig("bench", "bench-secret", scopes=SCOPES, ims_org=REGISTRATION.ims_org_id),),
        pkey_salt="bench",
        big_table_threshold=1_000,
        seed_profiles=profiles,
    )
    hub = EventsHub(":memory:", clock=settings.clock.now, exports=ExportSettings(folder=folder, compress=True))

    async def bearer(request: Request) -> TokenInfo | Response:
        return verify_bearer(request)

    app = create_app(settings, extra_routes=journal_routes(bearer, hub, REGISTRATION))
    results: dict[str, object] = {"profiles": profiles, "upserts": upserts, "delivery_targets": delivery}
    async with httpx.AsyncClient(transport=asgi_transport(app), base_url=BASE, timeout=60) as http:
        auth = ImsTokenProvider(http, ImsCredentials("bench", "bench-secret", scopes=SCOPES, ims_url=BASE))
        client = CampaignClient.for_tenant(http, auth, organization="acme", base_url=BASE, page_size=1_000)

        async def page_all() -> int:
            return sum([1 async for _ in client.iter_records("profile")])

        count, seconds = await _timed(page_all())
        results["paging_rows_per_s"] = _rate(count, seconds)

        async def upsert_all(suffix: str) -> None:
            for index in range(upserts):
                values = {"email": f"bench{index}@example.com", "firstName": suffix}
                await client.upsert_by_key("profile", "externalId", f"bench-{index}", values)

        for phase in ("create", "update", "unchanged"):
            _, seconds = await _timed(upsert_all("B" if phase != "create" else "A"))
            results[f"upsert_{phase}_per_s"] = _rate(upserts, seconds)
        results["engine_calls"] = client.stats.engine_calls

        since = datetime.now(UTC) - timedelta(minutes=10)

        async def poll() -> int:
            return sum([1 async for _ in client.iter_modified_since("profile", since, timedelta(seconds=5))])

        count, seconds = await _timed(poll())
        results["modified_since_rows"] = count
        results["modified_since_rows_per_s"] = _rate(count, seconds)

        spec = DeliverySpec("Bench", "Bench", "DM1", "Bench", settings.clock.now(), seed=1)
        targets = app.state.campaign.storage.delivery_targets(count=delivery)
        hub.simulate_delivery(spec, targets)
        settings.clock.advance(4 * 86400)
        hub.release_due()
        journal_auth = ImsTokenProvider(http, ImsCredentials("bench", "bench-secret", scopes=SCOPES, ims_url=BASE))
        journal = JournalConsumer(
            http,
            journal_auth,
            journal_url=BASE + REGISTRATION.path,
            ims_org_id=REGISTRATION.ims_org_id,
            mapping=MAPPING,
            start="oldest",
            limit=500,
            clock=settings.clock.now,
        )

        async def consume() -> int:
            return sum([len(batch.events) async for batch in journal.batches(None)])

        count, seconds = await _timed(consume())
        results["journal_events"] = count
        results["journal_events_per_s"] = _rate(count, seconds)

    reader = ExportReader(FolderSource(folder, "*.txt*"), settle_seconds=0)

    async def read_exports() -> int:
        return sum([len(batch.events) + batch.skipped async for batch in reader.batches()])

    count, seconds = await _timed(read_exports())
    results["export_rows"] = count
    results["export_rows_per_s"] = _rate(count, seconds)
    hub.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--upserts", type=int, default=1_000)
    parser.add_argument("--delivery", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = asyncio.run(run(args.profiles, args.upserts, args.delivery, Path(folder)))
    command = " ".join([".venv/bin/python -m bench.campaign_client", *sys.argv[1:]])
    results.update({"nproc": os.cpu_count(), "command": command, "note": "shared machine; in-process ASGI"})
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        f"campaign_client: paging {results['paging_rows_per_s']} rows/s, upsert create "
        f"{results['upsert_create_per_s']}/s update {results['upsert_update_per_s']}/s unchanged "
        f"{results['upsert_unchanged_per_s']}/s, journal {results['journal_events_per_s']} events/s, exports "
        f"{results['export_rows_per_s']} rows/s (nproc={os.cpu_count()}, {command})"
    )


if __name__ == "__main__":
    main()
