"""Dead letters (list, show, retry, drop) and ``status`` against both emulators in-process.

The dead letters are real: Campaign refuses the profiles because ``jobtitle`` is mapped to the ``gender``
enumeration, whose only values are unknown, male and female.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from rich.console import Console
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.engine.deadletters import drop_letters, retry_letters
from crmbridge.engine.ops_commands import run_dlq_list, run_dlq_retry, run_status
from crmbridge.engine.runner import Runner
from crmbridge.state import DeadLetterStatus, Flow
from tests.engine.ops_env import CONTACT_FIELDS, Emulators, config_text, load, make_emulators

REFUSED = CONTACT_FIELDS + "      - {dynamics: jobtitle, campaign: gender}\n"


async def _failed_sync(tmp_path: Path) -> Emulators:
    emulators = make_emulators()
    await emulators.seed(3)
    async with emulators.services(load(tmp_path / "state.db", contact_fields=REFUSED)) as services:
        async for page in services.dataverse.iter_pages("contacts", select=["contactid"]):
            for row in page.rows:
                await services.dataverse.update("contacts", row["contactid"], {"jobtitle": "Engineer"})
        await Runner(services).tables_pass()
    return emulators


@pytest.fixture
async def failed(tmp_path: Path) -> Emulators:
    return await _failed_sync(tmp_path)


@pytest.mark.anyio
async def test_retry_rereads_the_row_and_resolves_the_letter_once_the_data_is_fixed(
    failed: Emulators, tmp_path: Path
) -> None:
    config = load(tmp_path / "state.db", contact_fields=REFUSED)
    async with failed.services(config) as services:
        letters = services.store.dead_letters.list(flow=Flow.TABLES, mapping="contacts")
        assert len(letters) == 3 and {letter.error_class for letter in letters} == {"RecordError"}
        fixed, still_bad = letters[0], letters[1]
        assert fixed.id is not None and still_bad.id is not None
        await services.dataverse.update("contacts", fixed.record_key, {"jobtitle": "female", "lastname": "Newer"})

        results = await retry_letters(Runner(services), [fixed.id, still_bad.id, 999])
        assert [(r.letter_id, r.outcome) for r in results] == [
            (fixed.id, "resolved"),
            (still_bad.id, "failed"),
            (999, "skipped"),
        ]
        again = services.store.dead_letters.get(still_bad.id)
        resolved = services.store.dead_letters.get(fixed.id)
        assert again is not None and (again.status, again.attempts) == (DeadLetterStatus.OPEN, 2)
        assert resolved is not None and resolved.status is DeadLetterStatus.RESOLVED
        rows = await services.campaign.find_by_key("profile", "externalId", fixed.record_key)
        links = services.store.links_for("contacts", [fixed.record_key])
    # The row as Dynamics holds it now, not the payload stored when it failed.
    assert [(row["gender"], row["lastName"]) for row in rows] == [("female", "Newer")]
    assert fixed.record_key in links


@pytest.mark.anyio
async def test_drop_marks_letters_dropped_and_retry_then_skips_them(failed: Emulators, tmp_path: Path) -> None:
    config = load(tmp_path / "state.db", contact_fields=REFUSED)
    async with failed.services(config) as services:
        letter = services.store.dead_letters.list()[0]
        assert letter.id is not None
        assert drop_letters(services.store, [letter.id]) == 1
        results = await retry_letters(Runner(services), [letter.id])
        dropped = services.store.dead_letters.list(status=DeadLetterStatus.DROPPED)
    assert [(r.outcome, r.detail) for r in results] == [("skipped", "already dropped")]
    assert [d.id for d in dropped] == [letter.id]


def test_dlq_commands_list_show_retry_and_drop(tmp_path: Path) -> None:
    emulators = anyio.run(_failed_sync, tmp_path)
    path = tmp_path / "crmbridge.yaml"
    path.write_text(config_text(tmp_path / "state.db", contact_fields=REFUSED), encoding="utf-8")
    cli = CliRunner()
    listed = cli.invoke(app, ["dlq", "list", "-c", str(path)])
    assert listed.exit_code == 0 and "dead letters (open)" in listed.stdout
    assert _listed(tmp_path, "open").count("RecordError") == 3
    shown = cli.invoke(app, ["dlq", "show", "1", "-c", str(path)], terminal_width=200)
    assert shown.exit_code == 0 and "gender" in shown.stdout and "payload" in shown.stdout
    assert cli.invoke(app, ["dlq", "show", "77", "-c", str(path)]).exit_code == 1
    console = Console(record=True, width=200)
    config = load(tmp_path / "state.db", contact_fields=REFUSED)
    assert run_dlq_retry(config, console, [1], open_services=emulators.opener()) == 1
    assert "1: failed" in console.export_text()
    dropped = cli.invoke(app, ["dlq", "drop", "1", "2", "-c", str(path)])
    assert dropped.exit_code == 0 and "dropped 2 of 2" in dropped.stdout
    assert _listed(tmp_path, "open").count("RecordError") == 1
    assert _listed(tmp_path, "all").count("dropped") == 2
    assert cli.invoke(app, ["dlq", "list", "--status", "closed", "-c", str(path)]).exit_code == 2


def _listed(tmp_path: Path, status: str) -> str:
    console = Console(record=True, width=250)
    assert run_dlq_list(load(tmp_path / "state.db", contact_fields=REFUSED), console, status=status, mapping=None) == 0
    return console.export_text()


def test_status_shows_each_flow_with_its_last_run_counts_and_dead_letters(tmp_path: Path) -> None:
    anyio.run(_failed_sync, tmp_path)
    config = load(tmp_path / "state.db", contact_fields=REFUSED)
    console = Console(record=True, width=250)
    assert run_status(config, console) == 0
    lines = console.export_text().splitlines()
    contacts = next(line for line in lines if "tables: contacts" in line)
    vehicles = next(line for line in lines if "tables: vehicles" in line)
    assert "succeeded" in contacts and "read 3, failed 3" in contacts and contacts.split("│")[-4].strip() == "3"
    assert "succeeded" in vehicles


def test_status_of_a_store_nothing_was_synced_into_says_so(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    assert run_status(load(tmp_path / "absent.db"), console) == 1
    assert "nothing has been synced" in console.export_text()


@pytest.mark.parametrize(
    "command",
    [["check"], ["provision"], ["status"], ["dlq"], ["dlq", "retry"], ["replay"], ["reconcile"]],
)
def test_every_operations_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0
    summary = result.stdout.split("Usage:", 1)[1]
    assert len(summary.split()) > 20  # a description, not just the usage line


@pytest.mark.anyio
async def test_a_letter_marked_retrying_on_the_dashboard_is_retried_by_the_next_tables_pass(
    failed: Emulators, tmp_path: Path
) -> None:
    config = load(tmp_path / "state.db", contact_fields=REFUSED)
    async with failed.services(config) as services:
        letter = services.store.dead_letters.list(flow=Flow.TABLES, mapping="contacts")[0]
        assert letter.id is not None
        await services.dataverse.update("contacts", letter.record_key, {"jobtitle": "male"})
        services.store.dead_letters.mark([letter.id], DeadLetterStatus.RETRYING)  # what the Retry button does
        await Runner(services).tables_pass()
        after = services.store.dead_letters.get(letter.id)
        rows = await services.campaign.find_by_key("profile", "externalId", letter.record_key)
    assert after is not None
    assert after.status is DeadLetterStatus.RESOLVED
    assert [row["gender"] for row in rows] == ["male"]
