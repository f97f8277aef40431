"""SIGKILL the real sync at seeded random points while people opt out and in on both sides (issue 11, opt-outs).

Bidirectional mode, adobe rule. Between runs (after a kill too) a few contacts change on one side, chosen among
those whose two sides already hold what the rule implied so far; ``_People`` keeps, written by hand from the
issue's rules, what each contact must end with. After the kill points a quiet pass must leave every contact with
that value on both sides: no lost opt-out, no reversed opt-out, no opt-in undone. A further pass writes nothing.

10 kill points in the default suite, 100 under ``pytest -m slow``. ``CRMBRIDGE_KILL_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import ForkedCli, OptOutsSection, Org, cli_env
from tests.e2e.kill import ForkServer, KillHarness, KillProxy
from tests.e2e.oracle import both_flags

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]
SEED = int(os.environ.get("CRMBRIDGE_KILL_SEED", "20261126"))
BIDIRECTIONAL = OptOutsSection("bidirectional")


class _People:
    """Opt-outs and opt-ins between runs, and what the adobe rule implies each contact ends with.

    One change per chosen contact, on a contact whose sides agree on the value implied so far:
    * not opted out → opts out on either side: both sides end opted out (one side changed: it propagates);
    * opted out → opts in on Campaign: both end opted in (the Campaign change is the newer one, and it wins;
      made in a later second than the Dynamics row's modifiedon, Dataverse's precision, so that it provably is);
    * opted out → opts in on Dynamics: both end opted out (Campaign is not newer: opt-out = true wins).
    Other settled contacts are renamed as well, so the tables flow rewrites their profiles (lastModified moves).
    Only settled ones: Adobe's rule dates the Dynamics side by the record (modifiedon), so renaming a contact
    whose Campaign opt-in has not travelled yet would make Dynamics the newer side and the opt-out would win.

    The emulator's dropped responses (``drop_rate``) are off while people act: they are meant for crmbridge.
    """

    def __init__(self, org: Org, implied: dict[str, bool], *, drop_rate: float) -> None:
        self.org = org
        self.implied = dict(implied)
        self.drop_rate = drop_rate
        self.changes = 0
        self.actions: dict[str, list[str]] = {contact: [] for contact in implied}  # for failure messages

    def __call__(self, rnd: random.Random) -> None:
        self.org.campaign_faults(drop_after_rate=0.0)
        try:
            self._act(rnd)
        finally:
            self.org.campaign_faults(drop_after_rate=self.drop_rate)

    def _act(self, rnd: random.Random) -> None:
        contacts = sorted(self.implied)
        now = both_flags(self.org.dataverse, self.org.campaign, contacts)
        settled = [c for c in contacts if now[c] == (self.implied[c], self.implied[c])]
        chosen = rnd.sample(settled, min(4, len(settled)))
        for contact in chosen:
            self.changes += 1
            if not self.implied[contact]:
                side = rnd.choice(["dynamics", "campaign"])
                if side == "dynamics":
                    self.org.update("contact", [contact], {"donotbulkemail": True})
                else:
                    self.org.campaign_optout(contact, {"blackListEmail": True})
                self.implied[contact] = True
                action = f"opt-out in {side}"
            elif rnd.random() < 0.5:
                self._after_the_dynamics_second(contact)
                self.org.campaign_optout(contact, {"blackListEmail": False})
                self.implied[contact] = False
                action = "opt-in in campaign"
            else:
                self.org.update("contact", [contact], {"donotbulkemail": False})
                action = "opt-in in dynamics"
            self.actions[contact].append(f"{datetime.now(UTC):%H:%M:%S.%f} {action} -> {self.implied[contact]}")
        others = [c for c in settled if c not in chosen]
        renamed = rnd.sample(others, min(2, len(others)))
        self.org.update("contact", renamed, {"lastname": rnd.choice(["Łukasz", "O'Neil", "Nakamura"])})

    def _after_the_dynamics_second(self, contact: str) -> None:
        """Wait, if needed, until Campaign's clock is past the second of the contact's last Dynamics change."""
        row = next(
            r for r in self.org.dataverse.rows("contacts", ["contactid", "modifiedon"]) if r["contactid"] == contact
        )
        modified = datetime.fromisoformat(str(row["modifiedon"]).replace("Z", "+00:00"))
        with self.org.emulators.campaign_operator() as operator:
            campaign_now = datetime.strptime(operator.get("/clock").json()["now"], "%Y-%m-%d %H:%M:%S.%fZ")
        wait = (modified + timedelta(seconds=1) - campaign_now.replace(tzinfo=UTC)).total_seconds()
        assert wait < 2, f"the emulators' clocks disagree: Dynamics row at {modified}, Campaign at {campaign_now}"
        if wait > 0:
            time.sleep(wait)


def _kill_and_check(make_org: MakeOrg, forked_cli: ForkedCli, tmp_path: Path, kill_points: int) -> None:
    org = make_org(contacts=40, vehicles_share=0.0, seed=SEED % 1000, optouts=BIDIRECTIONAL)
    with KillProxy(org.emulators.campaign.base_url) as proxy:
        config = org.emulators.write_config(tmp_path / "killed", campaign_url=proxy.base_url, optouts=BIDIRECTIONAL)
        forked_cli.sync(config)  # profiles created with their flags, opt-out baseline taken
        active = [str(c["contactid"]) for c in org.dataverse.rows("contacts", ["contactid", "statecode"])]
        active = [c for c in active if c in {str(p) for p in _profiles(org)}]
        first = both_flags(org.dataverse, org.campaign, active)
        assert all(d == c for d, c in first.values()), first
        people = _People(org, {contact: bool(d) for contact, (d, _) in first.items()}, drop_rate=0.02)
        org.campaign_faults(seed=SEED)
        launcher = ForkServer(cli_env())
        try:
            harness = KillHarness(
                ["sync", "-c", str(config)],
                proxy,
                launcher,
                seed=SEED,
                workdir=config.parent,
                max_writes=4,
                max_seconds=1.0,
            )
            print(f"kill harness seed={SEED}")
            people(harness.rnd)
            harness.kill_points(kill_points, more_work=people, after_kills_too=True)
            people.drop_rate = 0.0
            org.campaign_faults(drop_after_rate=0.0)
            harness.quiet_pass()
        finally:
            launcher.close()
        report = harness.report.describe() + f"\n{people.changes} opt-out changes"
        print(report)
        final = both_flags(org.dataverse, org.campaign, active)
        wrong = {
            contact: {"implied": people.implied[contact], "dynamics": d, "campaign": c}
            for contact, (d, c) in final.items()
            if (d, c) != (people.implied[contact], people.implied[contact])
        }
        assert wrong == {}, report + "\n" + "\n".join(f"{c}: {done}" for c, done in _actions(people, wrong))
        counts = forked_cli.sync(config).report()["optouts"]
        assert counts["written_dynamics"] == 0 and counts["written_campaign"] == 0, (counts, report)


def _actions(people: _People, wrong: Iterable[str]) -> list[tuple[str, list[str]]]:
    return [(contact, people.actions[contact]) for contact in wrong]


def _profiles(org: Org) -> list[str]:
    from tests.e2e.oracle import campaign_flags

    return list(campaign_flags(org.campaign))


def test_opt_outs_killed_at_10_random_points_lose_and_reverse_nothing(
    make_org: MakeOrg, forked_cli: ForkedCli, tmp_path: Path
) -> None:
    points = int(os.environ.get("CRMBRIDGE_KILL_POINTS", "10"))
    _kill_and_check(make_org, forked_cli, tmp_path, kill_points=points)


@pytest.mark.slow
def test_opt_outs_killed_at_100_random_points_lose_and_reverse_nothing(
    make_org: MakeOrg, forked_cli: ForkedCli, tmp_path: Path
) -> None:
    _kill_and_check(make_org, forked_cli, tmp_path, kill_points=100)
