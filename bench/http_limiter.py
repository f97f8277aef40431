"""Benchmark: AdaptiveLimiter + RetryPolicy against a service that throttles above a fixed concurrency.

The in-process service answers 429 (Retry-After: 1) whenever more than ``--capacity`` requests are in flight,
like Dataverse's concurrent-request limit. Compares an adaptive limiter with a fixed concurrency of
``--workers``. Run: ``.venv/bin/python -m bench.http_limiter [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from crmbridge.emulators.faults import asgi_transport
from crmbridge.http import Action, AdaptiveLimiter, HttpStats, RetryPolicy
from crmbridge.logs import configure_logging

RESULT = Path(__file__).parent / "results" / "http_limiter.json"


class ConcurrencyLimitedService:
    """ASGI app: 200 after ``latency`` seconds, or 429 when more than ``capacity`` requests are in flight."""

    def __init__(self, capacity: int, latency: float) -> None:
        self.capacity = capacity
        self.latency = latency
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.in_flight += 1
        try:
            if self.in_flight > self.capacity:
                status, headers = 429, [(b"retry-after", b"1")]
            else:
                await asyncio.sleep(self.latency)
                status, headers = 200, []
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"{}"})
        finally:
            self.in_flight -= 1


def classify(response: httpx.Response) -> Action:
    return Action.PAUSE if response.status_code == 429 else Action.SUCCESS


async def run(requests: int, workers: int, capacity: int, latency: float, adaptive: bool) -> dict[str, Any]:
    service = ConcurrencyLimitedService(capacity, latency)
    limiter = AdaptiveLimiter(initial=4, maximum=workers, increase_every=10) if adaptive else None
    retry = RetryPolicy(max_elapsed=600.0)
    stats = HttpStats()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(requests):
        queue.put_nowait(number)

    async with httpx.AsyncClient(transport=asgi_transport(service), base_url="http://service.test") as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                request = client.build_request("GET", "/rows")
                await retry.send(client, request, classify=classify, idempotent=True, limiter=limiter, stats=stats)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        seconds = time.perf_counter() - started
    return {
        "mode": "adaptive" if adaptive else "fixed",
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "throttled": stats.throttled,
        "attempts": stats.requests,
        "final_limit": limiter.limit if limiter else workers,
        "peak_in_flight": limiter.peak_in_flight if limiter else workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    configure_logging("json", level="ERROR")  # one pause line per 429 would drown the summary
    results = [
        asyncio.run(run(args.requests, args.workers, args.capacity, args.latency, adaptive))
        for adaptive in (True, False)
    ]
    command = " ".join([".venv/bin/python -m bench.http_limiter", *sys.argv[1:]])
    report = {"benchmark": "http_limiter", "nproc": os.cpu_count(), "command": command, **vars(args), "runs": results}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    summary = ", ".join(
        f"{r['mode']}: {r['requests_per_s']} req/s, {r['throttled']} x 429, limit {r['final_limit']}" for r in results
    )
    print(f"http_limiter: {summary} (nproc={os.cpu_count()}, {command})")


if __name__ == "__main__":
    main()
