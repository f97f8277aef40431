"""``check`` and ``provision`` against both emulators in-process, plus the pure type-compatibility rules."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from rich.console import Console

from crmbridge.campaign.metadata import FieldInfo
from crmbridge.config.mappings import FieldMapping
from crmbridge.dynamics.metadata import AttributeInfo
from crmbridge.engine.check import run_check
from crmbridge.engine.check_rules import Finding, Level, type_problem
from crmbridge.engine.ops_commands import run_check as run_check_command
from crmbridge.engine.ops_commands import run_provision
from crmbridge.engine.provision import provision
from tests.engine.ops_env import CONTACT_FIELDS, Emulators, load, make_emulators

EVENTS = """\
events:
  source:
    exports: {folder: /tmp}
  types: {send: false, open: true, click: true, bounce: hard}
  rollups: {enabled: true}
"""
OPTOUTS = """\
optouts:
  mode: bidirectional
  pairs: [{dynamics: donotbulkemail, campaign: blackListEmail}]
"""


async def _findings(emulators: Emulators, tmp_path: Path, **options: str) -> list[Finding]:
    config = load(tmp_path / "state.db", **options)
    async with emulators.services(config) as services:
        return await run_check(config, services.dataverse, services.campaign)


def _errors(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.where, f.message) for f in findings if f.level is Level.ERROR]


@pytest.mark.anyio
async def test_check_passes_a_config_that_fits_both_services(tmp_path: Path) -> None:
    emulators = make_emulators()
    config = load(tmp_path / "state.db", extra=OPTOUTS)
    async with emulators.services(config) as services:
        await services.campaign.create("profile", {"email": "someone@example.com"})
    findings = await _findings(emulators, tmp_path, extra=OPTOUTS)
    assert _errors(findings) == []
    optouts = [f.message for f in findings if f.where == "optouts"]
    assert optouts == ["the tenant has per-flag …LastModified timestamps: the flow uses them"]


@pytest.mark.anyio
async def test_check_reports_missing_columns_fields_filters_and_incompatible_types(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(2)
    fields = CONTACT_FIELDS + (
        "      - {dynamics: new_colour, campaign: salutation}\n"
        "      - {dynamics: telephone1, campaign: cusShoeSize}\n"
        "      - {dynamics: birthdate, campaign: age}\n"
        "      - {dynamics: donotemail, campaign: middleName}\n"
    )
    findings = await _findings(emulators, tmp_path, contact_fields=fields)
    assert _errors(findings) == [
        ("mappings.contacts", "contact has no column 'new_colour'"),
        ("mappings.contacts", "profile has no field 'cusShoeSize'"),
        ("mappings.contacts", "birthdate (DateTime) → age (integer): Campaign expects a number"),
    ]
    warnings = [f.message for f in findings if f.level is Level.WARNING]
    assert warnings == ["donotemail (Boolean) → middleName (string): written as text"]


@pytest.mark.anyio
async def test_check_reports_a_key_without_its_custom_filter_and_a_missing_resource(tmp_path: Path) -> None:
    text_fields = CONTACT_FIELDS
    extra = """\
  - name: parts
    table: account
    entity_set: accounts
    resource: cusPart
    key: {dynamics: accountid, campaign: partId}
    fields: [{dynamics: name, campaign: label}]
  - name: vins
    table: new_vehicle
    entity_set: new_vehicle
    resource: cusVehicle
    key: {dynamics: new_vin, campaign: vin}
    fields: [{dynamics: new_name, campaign: name}]
"""
    findings = await _findings(make_emulators(), tmp_path, contact_fields=text_fields + extra)
    errors = _errors(findings)
    assert errors == [
        ("mappings.parts", "Campaign has no resource 'cusPart'"),
        ("mappings.vins", "entity_set 'new_vehicle' is not new_vehicle's entity set 'new_vehicles'"),
        ("mappings.vins", "cusVehicle has no filter byVin to find rows by vin"),
    ]
    warnings = [(f.where, f.message) for f in findings if f.level is Level.WARNING]
    assert warnings == [("mappings.vins", "key.dynamics 'new_vin' is not the primary id 'new_vehicleid'")]
    fixes = [f.fix for f in findings if f.message == "Campaign has no resource 'cusPart'"]
    assert fixes and "custom resource" in fixes[0]


@pytest.mark.anyio
async def test_check_wants_provision_for_missing_activity_tables_and_passes_after_it(tmp_path: Path) -> None:
    emulators = make_emulators()
    before = _errors(await _findings(emulators, tmp_path, extra=EVENTS))
    assert ("events.activity_tables.open", "no activity table 'cmb_emailopen'") in before
    rollups = [message for where, message in before if where == "events.rollups"]
    assert len(rollups) == 1 and "'cmb_lastemailopenedon'" in rollups[0] and "'cmb_emailopencount'" in rollups[0]
    config = load(tmp_path / "state.db", extra=EVENTS)
    missing = [f.fix for f in await _findings(emulators, tmp_path, extra=EVENTS) if f.where.startswith("events")]
    assert all("crmbridge provision" in fix for fix in missing)
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
    assert _errors(await _findings(emulators, tmp_path, extra=EVENTS)) == []


@pytest.mark.anyio
async def test_check_names_the_profile_timestamp_when_the_tenant_has_no_per_flag_ones(tmp_path: Path) -> None:
    emulators = make_emulators(flag_timestamps=False)
    config = load(tmp_path / "state.db", extra=OPTOUTS)
    async with emulators.services(config) as services:
        await services.campaign.create("profile", {"email": "someone@example.com"})
    findings = await _findings(emulators, tmp_path, extra=OPTOUTS)
    messages = [f.message for f in findings if f.where == "optouts"]
    assert messages == ["the tenant has no per-flag …LastModified timestamps: profile lastModified"]


@pytest.mark.anyio
async def test_check_refuses_a_mapping_on_a_table_without_change_tracking(tmp_path: Path) -> None:
    emulators = make_emulators()
    config = load(tmp_path / "state.db", extra=EVENTS)
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
    untracked = CONTACT_FIELDS + (
        "  - name: opens\n    table: cmb_emailopen\n    entity_set: cmb_emailopens\n    resource: cusVehicle\n"
        "    key: {dynamics: activityid, campaign: vehicleId}\n    fields: [{dynamics: subject, campaign: name}]\n"
    )
    errors = _errors(await _findings(emulators, tmp_path, contact_fields=untracked))
    assert errors == [("mappings.opens", "change tracking is off on cmb_emailopen")]


@pytest.mark.anyio
async def test_provision_twice_creates_everything_once(tmp_path: Path) -> None:
    emulators = make_emulators()
    config = load(tmp_path / "state.db", extra=EVENTS)
    async with emulators.services(config) as services:
        metadata = services.dataverse.metadata
        planned = [item.describe() for item in await provision(metadata, config, dry_run=True)]
        first = [item.describe() for item in await provision(metadata, config, dry_run=False)]
        second = await provision(metadata, config, dry_run=False)
        dry_after = await provision(metadata, config, dry_run=True)
        table = await metadata.table("cmb_emailbounce")
        keys = await metadata.alternate_keys("cmb_emailbounce")
        sends = await metadata.table("cmb_emailsend")
    assert first == planned
    assert (second, dry_after) == ([], [])
    assert "activity table cmb_emailopen" in first and "column cmb_emailclick.cmb_trackingurl" in first
    assert "column contact.cmb_lastemailopenedon" in first and "key cmb_emailbounce.cmb_emailbounce_altkey" in first
    assert len([item for item in first if item.startswith("activity table")]) == 3  # sends are off
    assert table is not None and table.is_activity and sends is None
    assert [k.attributes for k in keys] == [("cmb_eventkey",)]


def test_provision_dry_run_command_lists_and_creates_nothing(tmp_path: Path) -> None:
    emulators = make_emulators()
    config = load(tmp_path / "state.db", extra=EVENTS)
    console = Console(record=True, width=160)
    assert run_provision(config, console, dry_run=True, open_services=emulators.opener()) == 0
    assert run_provision(config, console, dry_run=True, open_services=emulators.opener()) == 0
    text = console.export_text()
    assert text.count("would create activity table cmb_emailopen") == 2
    assert run_provision(config, console, dry_run=False, open_services=emulators.opener()) == 0
    assert run_provision(config, console, dry_run=False, open_services=emulators.opener()) == 0
    text = console.export_text()
    assert text.count("created activity table cmb_emailopen") == 1
    assert text.strip().endswith("Everything exists already: nothing to create.")


def test_check_command_prints_each_problem_with_its_fix_and_exits_1(tmp_path: Path) -> None:
    emulators = make_emulators()
    config = load(tmp_path / "state.db", extra=EVENTS)
    console = Console(record=True, width=250)
    assert run_check_command(config, console, open_services=emulators.opener()) == 1
    text = console.export_text()
    assert "no activity table 'cmb_emailopen'" in text and "run `crmbridge provision -c FILE`" in text
    anyio.run(_provision, emulators, config)
    assert run_check_command(config, Console(record=True), open_services=emulators.opener()) == 0


async def _provision(emulators: Emulators, config: object) -> None:
    from crmbridge.config import CrmbridgeConfig

    assert isinstance(config, CrmbridgeConfig)
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)


def _attribute(kind: str) -> AttributeInfo:
    return AttributeInfo("col", kind)


@pytest.mark.parametrize(
    ("dataverse", "campaign", "options", "level"),
    [
        ("String", "string", {}, None),
        ("Picklist", "string", {"picklist": "label"}, None),
        ("Integer", "integer", {}, None),
        ("Picklist", "integer", {"picklist": "value"}, None),
        ("Picklist", "integer", {"picklist": "label"}, Level.ERROR),
        ("String", "integer", {}, Level.WARNING),
        ("DateTime", "integer", {}, Level.ERROR),
        ("Boolean", "boolean", {}, None),
        ("String", "boolean", {}, Level.ERROR),
        ("String", "boolean", {"replacements": {"yes": True}}, None),
        ("DateTime", "date", {}, None),
        ("Integer", "datetime", {}, Level.ERROR),
        ("Lookup", "link", {}, Level.ERROR),
        ("String", "item", {}, Level.ERROR),
        ("Boolean", "string", {}, Level.WARNING),
        ("Picklist", "enumeration", {"replacements": {"Male": "male"}}, None),
        ("Picklist", "enumeration", {"replacements": {"Male": "man"}}, Level.WARNING),
        ("Integer", "enumeration", {}, Level.ERROR),
    ],
)
def test_type_compatibility_of_dataverse_columns_and_campaign_fields(
    dataverse: str, campaign: str, options: dict[str, object], level: Level | None
) -> None:
    acs = FieldInfo("target", campaign, enum_values=("male", "female") if campaign == "enumeration" else ())
    mapping = FieldMapping.model_validate({"dynamics": "col", "campaign": "target", **options})
    problem = type_problem(_attribute(dataverse), acs, mapping)
    assert (problem[0] if problem else None) is level


@pytest.mark.anyio
async def test_check_refuses_an_events_table_that_is_not_an_activity(tmp_path: Path) -> None:
    not_activities = EVENTS + "  activity_tables:\n    open: {logical_name: new_vehicle, entity_set: new_vehicles}\n"
    errors = _errors(await _findings(make_emulators(), tmp_path, extra=not_activities))
    assert (
        "events.activity_tables.open",
        "new_vehicle is not an activity table: its rows cannot show on the contact timeline",
    ) in errors
