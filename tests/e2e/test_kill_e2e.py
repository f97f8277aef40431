"""SIGKILL the real sync at seeded random points, restart it, and check nothing was lost or duplicated (issue 7).

20 kill points in the default suite, 200 under ``pytest -m slow``. ``CRMBRIDGE_KILL_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import Org, cli_env
from tests.e2e.kill import ForkServer, KillHarness, KillProxy
from tests.e2e.oracle import differences, expected_campaign, read_campaign, stored_rows

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]
SEED = int(os.environ.get("CRMBRIDGE_KILL_SEED", "20261125"))


class _DynamicsUser:
    """Changes between runs, as CRM users make them: new contacts, edits, deletes, filter transitions.

    Deletes and deactivations only touch contacts without vehicles, so every vehicle Campaign stores is
    visible through the API, and counting stored rows finds duplicates as well as orphans.
    """

    def __init__(self, org: Org) -> None:
        self.org = org

    def __call__(self, rnd: random.Random) -> None:
        contacts = self.org.dataverse.rows("contacts", ["contactid", "statecode"])
        vehicles = self.org.dataverse.rows("new_vehicles", ["new_vehicleid", "_new_contactid_value"])
        owners = {str(v["_new_contactid_value"]) for v in vehicles}
        free = [str(c["contactid"]) for c in contacts if str(c["contactid"]) not in owners]
        rnd.shuffle(free)
        with self.org.emulators.dynamics_operator() as operator:
            operator.post(
                "/seed", json={"contacts": 8, "accounts": 0, "vehicles_share": 0.5, "seed": rnd.randrange(1 << 30)}
            )
        ids = [str(c["contactid"]) for c in contacts]
        self.org.update("contact", rnd.sample(ids, 6), {"lastname": rnd.choice(["Łukasz", "O'Neil", "Smith"])})
        self.org.delete("contact", free[:2])
        for contact in free[2:4]:
            state = next(c["statecode"] for c in contacts if str(c["contactid"]) == contact)
            self.org.update("contact", [contact], {"statecode": 1 - state, "statuscode": 2 - state})
        moved = rnd.sample([str(v["new_vehicleid"]) for v in vehicles], 3)
        self.org.update("new_vehicle", moved, {"new_model": rnd.choice(["Model Y", "Zoe", "ID.3"])})


def _kill_and_check(make_org: MakeOrg, tmp_path: Path, kill_points: int) -> None:
    org = make_org(contacts=60, vehicles_share=0.4, seed=SEED % 1000)
    with KillProxy(org.emulators.campaign.base_url) as proxy:
        config = org.emulators.write_config(tmp_path / "killed", campaign_url=proxy.base_url)
        org.campaign_faults(drop_after_rate=0.02, seed=SEED)
        launcher = ForkServer(cli_env())
        try:
            harness = KillHarness(
                ["sync", "-c", str(config)],
                proxy,
                launcher,
                seed=SEED,
                workdir=config.parent,
                max_writes=12,
                max_seconds=1.5,
            )
            print(f"kill harness seed={SEED}")
            harness.kill_points(kill_points, more_work=_DynamicsUser(org))
            org.campaign_faults(drop_after_rate=0.0)
            harness.quiet_pass()
        finally:
            launcher.close()
    report = harness.report.describe()
    print(report)
    expected = expected_campaign(org.dataverse)
    actual = read_campaign(org.campaign)
    problems = differences(expected, actual)
    assert problems == [], report + "\n" + "\n".join(problems)
    with org.emulators.campaign_operator() as operator:
        stored = stored_rows(operator)
    assert stored["profile"] == len(expected.profiles), report
    assert stored["cusVehicle"] == len(expected.vehicles), report


def test_sync_killed_at_20_random_points_loses_and_duplicates_nothing(make_org: MakeOrg, tmp_path: Path) -> None:
    _kill_and_check(make_org, tmp_path, kill_points=int(os.environ.get("CRMBRIDGE_KILL_POINTS", "20")))


@pytest.mark.slow
def test_sync_killed_at_200_random_points_loses_and_duplicates_nothing(make_org: MakeOrg, tmp_path: Path) -> None:
    _kill_and_check(make_org, tmp_path, kill_points=200)
