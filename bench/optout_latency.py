"""Benchmark: opt-out propagation latency both ways with a fixed poll interval (issue 9: p95 < 15 s each way).

Both emulators run as child processes, the opt-out flow (bidirectional, ``donotbulkemail`` ↔ ``blackListEmail``)
runs in this process. After the contacts are synced and the flow has taken its baseline, a thread makes
``--changes`` opt-outs at seeded random times over ``--duration`` seconds, alternating sides, each on its own
contact, through the emulators' operator endpoints (``POST /_emulator/mutate`` in Dataverse, what a CRM user's
edit does; ``POST /_emulator/optouts`` in Campaign, what a denylist landing page does). Meanwhile
``Runner.optouts_pass`` runs every ``--interval`` seconds on a fixed schedule.

Latency of a change: from this process's wall clock just before the operator call, to the wall clock at the end
of the pass whose audit log (the state store's ``optout_log``) first holds the write of that contact on the other
side. The pass end is a slight overestimate of the write time; one clock is used on both ends.

    .venv/bin/python -m bench.optout_latency --changes 1000 --duration 120 --interval 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.demo import demo_config_text
from crmbridge.emulators.launch import EmulatorProcess, start_campaign, start_dynamics
from crmbridge.engine.runner import Runner, Services

RESULTS = Path(__file__).parent / "results"
TO_CAMPAIGN, TO_DYNAMICS = "dynamics->campaign", "campaign->dynamics"


@dataclass(frozen=True)
class PlannedChange:
    offset_s: float
    contact_id: str
    direction: str


@dataclass
class Observations:
    made: dict[tuple[str, str], float] = field(default_factory=dict)  # (contact, side written) -> change time
    written: dict[tuple[str, str], float] = field(default_factory=dict)  # (contact, side written) -> pass end
    failed_changes: int = 0
    passes: list[dict[str, Any]] = field(default_factory=list)


def plan_changes(contact_ids: list[str], changes: int, duration_s: float, seed: int) -> list[PlannedChange]:
    """Each change on its own contact, at a uniform random time, alternating directions."""
    rng = random.Random(seed)
    chosen = rng.sample(contact_ids, changes)
    directions = (TO_CAMPAIGN, TO_DYNAMICS)
    planned = [PlannedChange(rng.uniform(0, duration_s), cid, directions[i % 2]) for i, cid in enumerate(chosen)]
    return sorted(planned, key=lambda change: change.offset_s)


def side_written(direction: str) -> str:
    return "campaign" if direction == TO_CAMPAIGN else "dynamics"


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.999999) - 1))]


def make_changes(
    plan: list[PlannedChange],
    started: float,
    dynamics: EmulatorProcess,
    campaign: EmulatorProcess,
    seen: Observations,
) -> None:
    """Runs in a thread so that the flow's CPU time does not delay the changes (their times are recorded anyway)."""
    verify = ssl.create_default_context(cafile=str(dynamics.ca_path)) if dynamics.ca_path else True
    with (
        httpx.Client(base_url=dynamics.base_url, verify=verify, timeout=60.0, trust_env=False) as dyn,
        httpx.Client(base_url=campaign.base_url, timeout=60.0, trust_env=False) as acs,
    ):
        for change in plan:
            time.sleep(max(0.0, started + change.offset_s - time.time()))
            at = time.time()
            if change.direction == TO_CAMPAIGN:
                body: dict[str, Any] = {
                    "table": "contact",
                    "ids": [change.contact_id],
                    "changes": {"donotbulkemail": True},
                }
                answer = dyn.post("/_emulator/mutate", json=body)
            else:
                body = {"externalId": change.contact_id, "flags": {"blackListEmail": True}}
                answer = acs.post("/_emulator/optouts", json=body)
            if answer.status_code == 200:
                seen.made[(change.contact_id, side_written(change.direction))] = at
            else:
                seen.failed_changes += 1


def new_writes(state_db: Path, after_id: int) -> tuple[list[tuple[str, str]], int]:
    """(contact, side written) of audit-log lines after ``after_id``; the last id read."""
    with sqlite3.connect(state_db) as db:
        rows = db.execute(
            "SELECT id, contact_id, side_written FROM optout_log WHERE id > ? ORDER BY id", (after_id,)
        ).fetchall()
    return [(str(r[1]), str(r[2])) for r in rows], max([after_id, *(int(r[0]) for r in rows)])


async def poll(
    runner: Runner, state_db: Path, started: float, until: float, interval: float, seen: Observations
) -> None:
    last_id = new_writes(state_db, 0)[1]
    tick = 1
    while (due := started + tick * interval) <= until:
        await asyncio.sleep(max(0.0, due - time.time()))
        stats = await runner.optouts_pass()
        ended = time.time()
        assert stats is not None, "the configuration has an opt-out pair"
        writes, last_id = new_writes(state_db, last_id)
        for key in writes:
            seen.written.setdefault(key, ended)
        seen.passes.append({"at_s": round(due - started, 1), "seconds": round(stats.seconds, 3), **stats.counts()})
        tick += 1


async def contact_ids(config: CrmbridgeConfig) -> list[str]:
    """Sync the contacts, take the opt-out baseline; the active contacts not opted out yet."""
    async with Services.open(config) as services:
        runner = Runner(services)
        await runner.tables_pass(only="contacts")
        await runner.optouts_pass()  # the baseline: later changes are the ones propagated
        rows = services.dataverse.reader.iter_rows("contacts", select=["contactid", "donotbulkemail", "statecode"])
        return [str(r["contactid"]) async for r in rows if not r.get("donotbulkemail") and r.get("statecode") == 0]


async def measure(
    config: CrmbridgeConfig, plan: list[PlannedChange], args: argparse.Namespace, emulators: Any
) -> Observations:
    seen = Observations()
    state_db = Path(str(config.state.url).removeprefix("sqlite:///"))
    async with Services.open(config) as services:
        runner = Runner(services)
        started = time.time()
        changer = threading.Thread(target=make_changes, args=(plan, started, *emulators, seen), daemon=True)
        changer.start()
        # Passes go on two intervals past the last change, enough for it to arrive (or to count as missing).
        await poll(runner, state_db, started, started + args.duration + 2 * args.interval, args.interval, seen)
        changer.join()
    return seen


def summarise(seen: Observations) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for direction, side in ((TO_CAMPAIGN, "campaign"), (TO_DYNAMICS, "dynamics")):
        made = {key: at for key, at in seen.made.items() if key[1] == side}
        latencies = [seen.written[key] - at for key, at in made.items() if key in seen.written]
        result[direction] = {
            "changes": len(made),
            "propagated": len(latencies),
            "missing": len(made) - len(latencies),
            "p50_s": _rounded(percentile(latencies, 0.5)),
            "p95_s": _rounded(percentile(latencies, 0.95)),
            "max_s": _rounded(max(latencies, default=None)),
        }
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=1000, help="opt-outs made, half on each side")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds over which the changes are made")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between opt-out passes")
    parser.add_argument("--contacts", type=int, default=0, help="contacts seeded (default: 2 x changes)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=Path(".crmbridge/bench-optouts"))
    args = parser.parse_args()
    contacts = args.contacts or 2 * args.changes
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    dynamics = start_dynamics(args.workdir, seed=contacts, limits="enabled=false")
    campaign = start_campaign(args.workdir)
    try:
        config_path = args.workdir / "crmbridge.yaml"
        text = demo_config_text(
            dynamics.base_url,
            dynamics.ca_path or Path(),
            campaign.base_url,
            (args.workdir / "state.db").resolve(),
            events=False,
            optouts=True,
        )
        config_path.write_text(text)
        config = load_config(config_path)
        ids = asyncio.run(contact_ids(config))
        plan = plan_changes(ids, min(args.changes, len(ids)), args.duration, args.seed)
        seen = asyncio.run(measure(config, plan, args, (dynamics, campaign)))
    finally:
        dynamics.stop()
        campaign.stop()
    result = summarise(seen) | {
        "changes_planned": len(plan),
        "failed_changes": seen.failed_changes,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "contacts": contacts,
        "latency_clock": "this process's wall clock: before the operator call -> end of the pass that wrote it",
        "passes": seen.passes,
        "nproc": os.cpu_count(),
        "command": " ".join([".venv/bin/python -m bench.optout_latency", *sys.argv[1:]]),
        "target": "p95 < 15 s each way, with a 10 s poll interval",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "optout_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    to_c, to_d = result[TO_CAMPAIGN], result[TO_DYNAMICS]
    print(
        f"optout_latency: {len(plan)} changes, interval {args.interval:g} s; D->C p50 {to_c['p50_s']} s p95 "
        f"{to_c['p95_s']} s ({to_c['missing']} missing); C->D p50 {to_d['p50_s']} s p95 {to_d['p95_s']} s "
        f"({to_d['missing']} missing) (nproc {os.cpu_count()}; {result['command']})"
    )


if __name__ == "__main__":
    main()
