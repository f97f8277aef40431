"""Benchmark: how close the Dataverse client runs to the emulator's binding service protection limit.

The emulator is served over HTTPS (uvicorn in a thread) with its limits scaled down; the client is built from
settings exactly as in production (MSAL, RetryPolicy, AdaptiveLimiter) and writes as fast as it may:

- ``--mode requests``: single updates (PATCH); the request-count limit binds (``--limit`` per ``--window`` s).
- ``--mode execution``: ``CreateMultiple`` of ``--bulk`` rows; the execution-time limit binds (the emulator charges
  ``request_ms`` per call plus ``row_write_ms`` per row written, ``--limit`` ms per window).

Achieved rate is measured after the first window (the first window allows an initial burst that a sustained
sync never gets again) and compared with what the limit allows in steady state. Zero failed operations is
required. Run: ``.venv/bin/python -m bench.dataverse_throttle [--mode requests|execution] [--operations N]``.
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

from bench.served_emulator import Served, served_emulator
from crmbridge.dynamics.client import DataverseClient
from crmbridge.dynamics.reader import TableRef
from crmbridge.logs import configure_logging

RESULT = Path(__file__).parent / "results" / "dataverse_throttle.json"
CONTACTS = TableRef("contact", "contacts", "contactid")


async def _updates(client: DataverseClient, ids: list[str], operations: int, workers: int) -> tuple[list[float], int]:
    done: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(operations):
        queue.put_nowait(number)

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            number = queue.get_nowait()
            try:
                await client.update("contacts", ids[number % len(ids)], {"jobtitle": f"bench {number}"})
                done.append(time.perf_counter())
            except Exception:  # counted: the benchmark's claim is zero failed operations
                failures += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, failures


async def _bulk_creates(client: DataverseClient, rows: int, bulk: int) -> tuple[list[float], int]:
    done: list[float] = []
    failures = 0

    async def one_call(start: int) -> None:
        nonlocal failures
        batch = [{"lastname": f"Bench {start + i}", "firstname": "Row"} for i in range(min(bulk, rows - start))]
        results = await client.writer.create_multiple(CONTACTS, batch)
        failures += sum(1 for r in results if not r.ok)
        now = time.perf_counter()
        done.extend(now for r in results if r.ok)  # a row counts when its call succeeded

    await asyncio.gather(*(one_call(start) for start in range(0, rows, bulk)))
    return done, failures


def _steady_rate(done: list[float], started: float, window: float) -> tuple[float, float]:
    finished = max(done) - started
    after_first_window = [t - started for t in done if t - started > window]
    if finished <= window or not after_first_window:
        return float("nan"), finished
    return len(after_first_window) / (finished - window), finished


async def run(args: argparse.Namespace, served: Served) -> dict[str, Any]:
    limits = served.app.state.emulator.limits
    if args.mode == "requests":
        limits.configure(max_requests=args.limit, window_s=args.window, max_execution_ms=1e12)
        allowed = args.limit / args.window  # operations (requests) per second
    else:
        limits.configure(max_requests=10**9, window_s=args.window, max_execution_ms=args.limit)
        cfg = limits.settings
        per_row_ms = cfg.row_write_ms + cfg.request_ms / args.bulk
        allowed = args.limit / args.window / per_row_ms  # rows per second
    async with DataverseClient.from_settings(served.settings(max_concurrency=args.workers)) as client:
        await client.who_am_i()  # token and connection warm before the clock starts
        rows = [row async for row in client.reader.iter_rows("contacts", select=["contactid"])]
        ids = [row["contactid"] for row in rows]
        started = time.perf_counter()
        if args.mode == "requests":
            done, failures = await _updates(client, ids, args.operations, args.workers)
        else:
            done, failures = await _bulk_creates(client, args.operations, args.bulk)
        stats = client.session.stats
        limiter = client.session.limiter
        assert limiter is not None
    rate, seconds = _steady_rate(done, started, args.window)
    return {
        "operations": args.operations,
        "failed_operations": failures,
        "seconds": round(seconds, 2),
        "achieved_per_s": round(rate, 2),
        "allowed_per_s": round(allowed, 2),
        "ratio": round(rate / allowed, 3),
        "throttled_429": stats.throttled,
        "http_attempts": stats.requests,
        "peak_in_flight": limiter.peak_in_flight,
        "emulator_throttled": dict(limits.throttled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("requests", "execution"), default="requests")
    parser.add_argument("--operations", type=int, default=1200, help="updates, or rows created in execution mode")
    parser.add_argument("--limit", type=float, default=200, help="requests (or execution ms) per window")
    parser.add_argument("--window", type=float, default=10.0, help="sliding window in seconds")
    parser.add_argument("--workers", type=int, default=16, help="max_concurrency of the client")
    parser.add_argument("--bulk", type=int, default=50, help="rows per CreateMultiple call (execution mode)")
    args = parser.parse_args()
    configure_logging("json", level="ERROR")  # one pause line per 429 would drown the summary
    with served_emulator(seed_contacts=200, seed=1) as served:
        result = asyncio.run(run(args, served))
    command = " ".join([".venv/bin/python -m bench.dataverse_throttle", *sys.argv[1:]])
    report = {"benchmark": "dataverse_throttle", "nproc": os.cpu_count(), "command": command, **vars(args), **result}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    unit = "ops" if args.mode == "requests" else "rows"
    print(
        f"dataverse_throttle[{args.mode}]: {result['achieved_per_s']} {unit}/s of {result['allowed_per_s']} allowed "
        f"({result['ratio']:.0%}), {result['failed_operations']} failed, {result['throttled_429']} x 429 "
        f"(nproc={os.cpu_count()}, {command})"
    )


if __name__ == "__main__":
    main()
