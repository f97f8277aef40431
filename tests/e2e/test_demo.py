"""The README's first command: `crmbridge demo` runs every flow to its summary, and the summary is what the
emulators then hold, read through their own APIs by the independent oracle (tests/e2e/oracle.py).

One demo run (`--keep-running`, so the emulators stay up to be read) serves every check here; it is stopped with
SIGTERM at the end, and the test checks that the demo exits cleanly and leaves no emulator behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmbridge.emulators.launch import (
    CAMPAIGN_CLIENT_ID,
    CAMPAIGN_CLIENT_SECRET,
    DYNAMICS_CLIENT_ID,
    DYNAMICS_CLIENT_SECRET,
    DYNAMICS_TENANT,
)
from tests.e2e.demo_process import RunningDemo, process_running, run_demo_to_its_end, running_demo
from tests.e2e.oracle import (
    ACTIVITY_SETS,
    CampaignReader,
    DataverseReader,
    activity_counts,
    contacts_written_since,
    differences,
    expected_campaign,
    profiles_with_flag_changed_since,
    read_campaign,
    read_state_file,
    stored_rows,
)

pytestmark = pytest.mark.e2e

DEMO_SIZE = 80


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    with running_demo(tmp_path_factory.mktemp("demo") / "demo", size=DEMO_SIZE) as running:
        yield running


@pytest.fixture(scope="module")
def dataverse(demo: RunningDemo) -> Iterator[DataverseReader]:
    side = demo.summary["emulators"]["dynamics"]
    reader = DataverseReader(
        side["url"], Path(side["ca_path"]), DYNAMICS_TENANT, DYNAMICS_CLIENT_ID, DYNAMICS_CLIENT_SECRET
    )
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def campaign(demo: RunningDemo) -> Iterator[CampaignReader]:
    reader = CampaignReader(demo.summary["emulators"]["campaign"]["url"], CAMPAIGN_CLIENT_ID, CAMPAIGN_CLIENT_SECRET)
    yield reader
    reader.close()


def _state_path(demo: RunningDemo) -> Path:
    url = str(demo.summary["state_url"])
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def counts(demo: RunningDemo, flow: str) -> dict[str, Any]:
    return dict(demo.summary["counts"][flow])


def test_printed_summary_table_is_the_summary_file(demo: RunningDemo) -> None:
    printed = demo.printed_summary()
    assert set(printed) == {"tables: contacts", "tables: vehicles", "opt-outs", "email events"}, demo.output()
    for flow, row in demo.summary["summary"].items():
        assert {k: v for k, v in printed[flow].items() if k != "seconds"} == {
            k: float(v) for k, v in row.items() if k != "seconds"
        }, flow
    assert counts(demo, "tables: contacts")["read"] >= DEMO_SIZE
    assert f"Dashboard:   {demo.summary['dashboard']}/" in demo.output()


def test_campaign_holds_what_dynamics_implies_except_the_refused_contact(
    demo: RunningDemo, dataverse: DataverseReader, campaign: CampaignReader
) -> None:
    expected = expected_campaign(dataverse)
    actual = read_campaign(campaign)
    refused = str(demo.summary["problem_contact"])
    assert refused in expected.profiles  # an active contact: only Campaign's refusal keeps it out
    assert differences(expected, actual) == [f"profile {refused}: missing in Campaign"]

    contacts, vehicles = counts(demo, "tables: contacts"), counts(demo, "tables: vehicles")
    with httpx.Client(base_url=demo.summary["emulators"]["campaign"]["url"] + "/_emulator", trust_env=False) as op:
        stored = stored_rows(op)  # vehicles of a deleted contact stay stored, hidden behind their missing link
    # Every row Campaign stores was created by the demo's passes, and every delete removed one.
    assert contacts["created"] - contacts["deleted"] == stored["profile"] == len(expected.profiles) - 1
    assert vehicles["created"] - vehicles["deleted"] == stored["cusVehicle"]
    assert 0 < contacts["updated"] <= len(demo.summary["live_changes"]["edited"])  # an edit may miss mapped fields


def test_email_events_written_are_the_activity_rows_in_dynamics(demo: RunningDemo, dataverse: DataverseReader) -> None:
    events = counts(demo, "email events")
    found = activity_counts(dataverse)
    assert events["written"] > 0
    assert sum(found[kind] for kind in ACTIVITY_SETS) == events["written"]
    for kind in ACTIVITY_SETS:
        assert found[kind] == events.get(f"written:{kind}", 0), kind
    assert found["tasks"] == events["tasks"]


def test_opt_outs_propagated_are_the_flags_changed_on_the_other_side(
    demo: RunningDemo, dataverse: DataverseReader, campaign: CampaignReader
) -> None:
    optouts, changes = counts(demo, "opt-outs"), demo.summary["live_changes"]
    # After the live changes, only crmbridge writes contacts (roll-ups are off) and Campaign flags.
    written_to_dynamics = contacts_written_since(dataverse, int(changes["dynamics_version_mark"]))
    changed_in_campaign = profiles_with_flag_changed_since(
        campaign, "blackListEmail", str(changes["campaign_clock_mark"])
    )
    assert optouts["written_dynamics"] == len(written_to_dynamics)
    assert optouts["written_campaign"] == len(changed_in_campaign)
    # The stimulus: each one-sided opt-out reached the other side; the opt-in over an opt-out was a conflict.
    assert set(changes["campaign_opt_outs"]) <= set(written_to_dynamics)
    assert all(written_to_dynamics[c]["donotbulkemail"] is True for c in changes["campaign_opt_outs"])
    assert set(changes["dynamics_opt_outs"]) <= set(changed_in_campaign)
    assert all(changed_in_campaign[c] is True for c in changes["dynamics_opt_outs"])
    conflicts = read_state_file(_state_path(demo)).conflicts
    assert optouts["conflicts"] == len(conflicts)
    # A random edit in Dynamics may opt somebody in over an opt-out too: that is a conflict of its own.
    assert set(changes["campaign_opt_ins"]) <= {contact for contact, _winner in conflicts}
    assert changes["campaign_opt_ins"], "the demo found no opted-out profile to re-subscribe"


def test_failed_records_are_the_dead_letters_and_waiting_events_are_unmatched(demo: RunningDemo) -> None:
    stored = read_state_file(_state_path(demo))
    summary = demo.summary["summary"]
    # One letter per refused record; each refusal (one per pass that tried it) adds an attempt to it.
    assert [letter[:4] for letter in stored.dead_letters] == [
        ("tables", "contacts", str(demo.summary["problem_contact"]), "open")
    ]
    assert sum(int(row["failed"]) for row in summary.values()) == sum(letter[4] for letter in stored.dead_letters)
    assert summary["tables: contacts"]["failed"] == 1  # the live changes leave the refused contact alone
    assert counts(demo, "email events")["unmatched"] == stored.unmatched_events


def test_sigterm_stops_the_demo_and_its_emulators(demo: RunningDemo) -> None:
    # Runs last in this module: the readers above are done with the emulators.
    children = demo.child_pids()
    assert all(process_running(pid) for pid in children)
    assert demo.stop() == 0, demo.output()
    assert [pid for pid in children if process_running(pid)] == []


def test_demo_without_keep_running_exits_0_after_its_summary_and_stops_its_emulators(tmp_path: Path) -> None:
    """The README's first command, as is (smallest size): the summary, exit 0, nothing left running."""
    workdir = tmp_path / "plain"
    returncode, output, left_running = run_demo_to_its_end(workdir, size=10)
    assert returncode == 0, output
    assert left_running == []
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["keep_running"] is False
    assert summary["summary"]["tables: contacts"]["failed"] == 1  # the contact Campaign refuses
