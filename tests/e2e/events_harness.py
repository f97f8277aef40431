"""An org ready for the email-events flow: contacts synced to Campaign, activity tables provisioned, and the
operator moves that make Campaign deliver (simulated deliveries, the clock, journal faults), plus the oracle call.

The emulators live for the whole session and the Campaign journal survives ``/_emulator/reset``, so every test
first lets the events of earlier tests' deliveries happen and purges the journal: it then holds only its own.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crmbridge.emulators.launch import CAMPAIGN_CLIENT_ID, CAMPAIGN_CLIENT_SECRET
from tests.e2e.events_oracle import (
    EnabledTypes,
    ExpectedEvents,
    JournalReader,
    expected_events,
    unique_events,
)
from tests.e2e.harness import IMS_ORG, JOURNAL_PATH, Org, events_section, run_sync
from tests.e2e.oracle import PROFILE_PATH

MakeOrg = Callable[..., Org]
DAY_S = 86400
# Rates that give a small delivery every kind of event: hard and soft bounces (some asynchronous, after a send),
# repeat opens, clicks on tracked links, the mirror page and the opt-out link.
RICH_RATES = {
    "bounce_rate": 0.15,
    "hard_bounce_share": 0.5,
    "async_bounce_share": 0.4,
    "open_rate": 0.5,
    "repeat_open_rate": 0.3,
    "click_rate": 0.5,
    "mirror_page_share": 0.2,
    "opt_out_share": 0.1,
}
JOURNAL_FAULTS = {"duplicate_rate": 0.2, "reorder_rate": 0.3, "delay_rate": 0.1, "window": 5}


@dataclass
class EventsWorld:
    org: Org
    config: Path
    seed: int
    types: str
    purged_through: int  # the journal's expiry mark once earlier tests' events were purged
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # the emulator's answer to each delivery
    # Every journal event seen so far, by id: read after each publication, so none is lost to the 7-day retention
    # before the oracle sees it.
    journal: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, make_org: MakeOrg, directory: Path, *, contacts: int, seed: int, types: str, sync: bool = True
    ) -> EventsWorld:
        """A clean org with ``contacts`` contacts, an empty journal with faults on, a config whose events section
        writes ``types`` (its YAML), and (``sync``) the activity tables provisioned, the contacts synced."""
        org = make_org(contacts=contacts, vehicles_share=0.0, seed=seed)
        purged_through = settle_journal(org, seed)
        world = cls(org, Path(), seed, types, purged_through)
        world.config = world.config_with_fresh_state(directory)
        if sync:
            run_sync(world.config, command_name="provision")
            first = run_sync(world.config, "--json").report()
            assert first["events"]["read"] == 0, first
        return world

    def journal_kept_everything(self) -> bool:
        """True while no event of this test has expired from the journal (a fresh state can then read them all)."""
        with self.org.emulators.campaign_operator() as operator:
            return int(operator.get("/journal").json()["expiredThroughSeq"]) == self.purged_through

    def config_with_fresh_state(self, directory: Path) -> Path:
        """The same configuration against the same orgs, with a new (empty) state file in ``directory``."""
        return self.org.emulators.write_config(
            directory, events=events_section(self.org.emulators.campaign.base_url, types=self.types)
        )

    def campaign_profile(self, values: Mapping[str, Any]) -> str:
        """A profile made in Campaign itself, not by the sync (no externalId, or one Dynamics does not know)."""
        reader = self.org.campaign
        answer = reader.http.post(PROFILE_PATH, json=dict(values), headers=reader.headers())
        answer.raise_for_status()
        return str(answer.json()["PKey"])

    def deliver(
        self,
        delivery_id: str,
        campaign_id: str,
        *,
        seed: int,
        pkeys: list[str] | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """A delivery to every targetable profile (or to ``pkeys``), starting a minute from now; its events happen
        over the next days (:meth:`publish`). Nothing is published at once, so the journal retention (7 days)
        counts from the first :meth:`publish`."""
        with self.org.emulators.campaign_operator() as operator:
            now = datetime.fromisoformat(operator.get("/clock").json()["now"])
            answer = operator.post(
                "/deliveries",
                json={
                    "campaign": {"id": campaign_id, "label": f"Campaign {campaign_id}"},
                    "delivery": {"id": delivery_id, "label": f'Delivery {delivery_id} (été, naïve "quotes")'},
                    "target": {"pkeys": pkeys} if pkeys else {"count": 100_000},
                    "start": (now + timedelta(minutes=1)).isoformat(),
                    "seed": seed,
                    "rates": RICH_RATES | dict(rates or {}),
                },
            )
            answer.raise_for_status()
        report = dict(answer.json())
        self.deliveries.append(report)
        return report

    def publish(self, days: float = 4) -> None:
        """Move the Campaign clock on (opens and clicks come up to 3 days after the send) and publish what happened.

        Deliveries published more than 7 days apart would lose the first one's events to the journal retention."""
        with self.org.emulators.campaign_operator() as operator:
            operator.post("/clock", json={"advanceSeconds": days * DAY_S}).raise_for_status()
            operator.post("/journal/release").raise_for_status()
        self.read_journal()

    def read_journal(self) -> None:
        journal = JournalReader(
            self.org.emulators.campaign.base_url, JOURNAL_PATH, CAMPAIGN_CLIENT_ID, CAMPAIGN_CLIENT_SECRET, IMS_ORG
        )
        try:
            events = journal.events()
        finally:
            journal.close()
        for event in unique_events([*self.journal.values(), *events]):
            self.journal.setdefault(str(event["id"]), event)

    def expected(self, types: EnabledTypes) -> ExpectedEvents:
        """The oracle: the journal's unique events through the configuration's rules, checked against what the
        emulator said it delivered."""
        self.read_journal()
        contacts = {str(row["contactid"]) for row in self.org.dataverse.rows("contacts", ["contactid"])}
        expected = expected_events(self.journal.values(), contacts, types)
        delivered: Counter[str] = Counter()
        for report in self.deliveries:
            delivered.update({kind: int(n) for kind, n in report["counts"].items() if n})
        assert expected.by_kind == delivered, f"journal {expected.by_kind} != delivered {delivered}"
        return expected

    def events_checkpoint(self) -> str | None:
        with sqlite3.connect(self.state_path()) as db:
            row = db.execute("SELECT value FROM checkpoints WHERE flow = 'events'").fetchone()
        return None if row is None else str(row[0])

    def rewind_events_checkpoint(self, value: str | None) -> None:
        """What an operator does to replay the journal from an older position: set the stored one back."""
        with sqlite3.connect(self.state_path()) as db:
            changed = db.execute("UPDATE checkpoints SET value = ? WHERE flow = 'events'", (value,)).rowcount
        assert changed == 1

    def state_path(self) -> Path:
        return self.config.parent / "state.db"


def settle_journal(org: Org, seed: int) -> int:
    """Let every event scheduled by earlier tests happen (a week on: async bounces come within 7 days), purge the
    journal, and switch its duplicate, reorder and delay faults on."""
    with org.emulators.campaign_operator() as operator:
        operator.put("/journal/faults", json={"duplicate_rate": 0, "reorder_rate": 0, "delay_rate": 0})
        operator.post("/clock", json={"advanceSeconds": 8 * DAY_S}).raise_for_status()
        for _ in range(2):  # the second round publishes what the previous faults held back
            operator.post("/journal/release").raise_for_status()
        operator.delete("/journal").raise_for_status()
        operator.put("/journal/faults", json=JOURNAL_FAULTS | {"seed": seed}).raise_for_status()
        stats = operator.get("/journal").json()
    assert stats["pendingEvents"] == 0 and stats["events"] == 0, stats
    return int(stats["expiredThroughSeq"])
