"""SIGKILL the real sync at seeded random points while it writes email events to Dynamics, restart it, and check
that no activity or task was lost or duplicated and the roll-ups equal a clean run's (issues 8 and 11).

Write kill points sit in a TLS-terminating proxy in front of the Dataverse emulator: the k-th write (an
UpsertMultiple of activities, their closing UpdateMultiple, the tasks, the roll-ups) is applied by the emulator,
then the process dies before the answer reaches it. Time kill points land anywhere (the tables pass before, a
journal read, a state commit). The journal repeats, swaps and holds back events meanwhile.
10 kill points in the default suite, 100 under ``pytest -m slow``; ``CRMBRIDGE_KILL_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from crmbridge.emulators.dynamics.tls import make_tls_files
from tests.e2e.events_harness import EventsWorld
from tests.e2e.events_oracle import EnabledTypes, event_differences, read_dynamics_events
from tests.e2e.harness import Org, cli_env, events_section, run_sync
from tests.e2e.kill import ForkServer, KillHarness, KillProxy

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]
SEED = int(os.environ.get("CRMBRIDGE_KILL_SEED", "20261126"))
TYPES = "{send: true, open: true, click: true, bounce: hard}"


class _Marketer:
    """Between runs that finished before their kill point: another delivery, and half an hour passes in Campaign
    (its sends and quick reactions are published). Short, so that even the slow variant's many deliveries stay
    within the journal's 7-day retention and a clean run can read them all again."""

    def __init__(self, world: EventsWorld) -> None:
        self.world = world

    def __call__(self, rnd: random.Random) -> None:
        number = len(self.world.deliveries)
        self.world.deliver(
            f"DM{400 + number}", rnd.choice(["2026WinterCamp", "2027NewYear"]), seed=rnd.randrange(1 << 20)
        )
        self.world.publish(days=0.02)


def _kill_and_check(make_org: MakeOrg, tmp_path: Path, kill_points: int) -> None:
    world = EventsWorld.create(make_org, tmp_path / "org", contacts=40, seed=SEED % 1000, types=TYPES, sync=False)
    emulators = world.org.emulators
    assert emulators.dynamics.ca_path is not None
    proxy_tls = make_tls_files(tmp_path / "proxy-tls")
    bundle = tmp_path / "ca-bundle.pem"  # the client trusts both: the proxy (Web API) and the emulator (tokens)
    bundle.write_bytes(emulators.dynamics.ca_path.read_bytes() + proxy_tls.ca_path.read_bytes())
    with KillProxy(emulators.dynamics.base_url, tls=proxy_tls, upstream_ca=emulators.dynamics.ca_path) as proxy:
        section = events_section(emulators.campaign.base_url, types=TYPES)
        config = emulators.write_config(
            tmp_path / "killed", dynamics_url=proxy.base_url, ca_path=bundle, events=section
        )
        world.config = config
        run_sync(config, command_name="provision")
        run_sync(config, "--json")  # profiles carry externalId: deliveries can target them
        world.deliver("DM400", "2026WinterCamp", seed=SEED % 7919)
        world.publish(days=3.1)
        launcher = ForkServer(cli_env())
        try:
            harness = KillHarness(
                ["sync", "-c", str(config)],
                proxy,
                launcher,
                seed=SEED,
                workdir=config.parent,
                max_writes=30,
                max_seconds=0.8,
            )
            print(f"kill harness seed={SEED}")
            world.org.dynamics_faults(drop_after_rate=0.03, seed=SEED)  # some answers of applied writes lost too
            harness.kill_points(kill_points, more_work=_Marketer(world))
            world.org.dynamics_faults(drop_after_rate=0.0)
            with emulators.dynamics_operator() as operator:
                print("Dataverse faults injected:", operator.get("/stats").json()["faults"]["injected"])
            world.publish(days=3.1)  # the rest of every delivery's opens and clicks
            harness.quiet_pass()
        finally:
            launcher.close()
    report = harness.report.describe()
    print(report)
    expected = world.expected(EnabledTypes())
    after_kills = read_dynamics_events(world.org.dataverse)
    problems = event_differences(expected, after_kills)
    assert problems == [], report + "\n" + "\n".join(problems)

    # A clean run: a new state file reads the whole journal (still within its retention) and writes everything
    # again onto the same rows; the roll-ups it computes from its own ledger must be the killed runs' ones.
    assert world.journal_kept_everything(), "events expired from the journal: a clean run could not read them"
    clean = run_sync(world.config_with_fresh_state(tmp_path / "clean"), "--json").report()["events"]
    assert clean["written"] == expected.written(), report
    assert read_dynamics_events(world.org.dataverse).values() == after_kills.values(), report


def test_events_sync_killed_at_10_random_points_loses_and_duplicates_no_activity(
    make_org: MakeOrg, tmp_path: Path
) -> None:
    _kill_and_check(make_org, tmp_path, kill_points=int(os.environ.get("CRMBRIDGE_EVENTS_KILL_POINTS", "10")))


@pytest.mark.slow
def test_events_sync_killed_at_100_random_points_loses_and_duplicates_no_activity(
    make_org: MakeOrg, tmp_path: Path
) -> None:
    _kill_and_check(make_org, tmp_path, kill_points=100)
