"""Loading crmbridge.yaml: the example validates, and every problem is reported with its file, line and path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from crmbridge.config import ConfigFileUnreadable, CrmbridgeConfig, load_config, parse_config
from crmbridge.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "crmbridge.yaml"
BROKEN = Path(__file__).parent / "data" / "broken.yaml"

EXAMPLE_ENV = {
    "CRMBRIDGE_DYNAMICS_CLIENT_SECRET": "dynamics-secret-from-env",
    "CRMBRIDGE_CAMPAIGN_CLIENT_SECRET": "campaign-secret-from-env",
    "CRMBRIDGE_DASHBOARD_TOKEN": "dashboard-token-from-env",
}

MINIMAL = """\
version: 1
dynamics:
  org_url: https://contoso.crm.dynamics.com
  tenant_id: contoso.onmicrosoft.com
  client_id: app-id
  client_secret: dyn-secret-123
campaign:
  organization: contoso
  client_id: acs-id
  client_secret: acs-secret-456
"""


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="test.yaml", environ=environ or {})
    return [str(problem) for problem in caught.value.problems]


def test_example_file_validates_with_its_environment_variables_set() -> None:
    config = load_config(EXAMPLE, environ=EXAMPLE_ENV)

    assert [m.name for m in config.mappings] == ["contacts", "vehicles"]
    contacts = config.mapping("contacts")
    assert contacts.key.campaign == "externalId"
    assert "location.city" in [f.campaign for f in contacts.fields]
    assert config.mapping("vehicles").links[0].mapping == "contacts"
    assert config.mapping("vehicles").links[0].max_wait == timedelta(hours=2)
    assert config.events is not None
    assert config.events.source.journal is not None
    assert config.events.source.journal.start_back == timedelta(hours=48)
    assert config.optouts.mode == "bidirectional"
    assert [(p.dynamics, p.campaign) for p in config.optouts.pairs] == [
        ("donotbulkemail", "blackListEmail"),
        ("donotphone", "blackListPhone"),
    ]
    assert config.dynamics.client_secret is not None
    assert config.dynamics.client_secret.get_secret_value() == "dynamics-secret-from-env"
    assert config.state.url == "sqlite:///.crmbridge/state.db"  # the ${VAR:-default} fallback
    assert config.interval_of(contacts) == timedelta(minutes=1)


def test_broken_file_lists_every_problem_with_its_line_and_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BROKEN, environ={"DYN_SECRET": "broken-file-secret"})

    file = str(BROKEN)
    assert [str(p) for p in caught.value.problems] == [
        f"{file}:3: dynamics.org_url: use https: plain http is allowed only for 127.0.0.1 or localhost "
        "(a local emulator)",
        f"{file}:8: dynamics.page_size: Input should be less than or equal to 5000",
        f"{file}:21: mappings[0].fields[1].dynamics: expected a Dataverse logical name: lowercase letters, digits "
        "and underscores (e.g. address1_city)",
        f"{file}:22: mappings[0].fields[2].campaign: blackListEmail is written by this mapping and by the opt-out "
        "pair optouts.pairs[0].campaign; an opt-out field has one owner: remove the field here or the pair (line 39)",
        f"{file}:23: mappings[0].fields[3].apply_update: unknown key: did you mean `apply_updates`?",
        f"{file}:24: mappings[0].interval: expected a duration with a unit; write a duration such as 30s, 5m, 2h, "
        "7d, or ISO 8601 such as PT30S or P2D",
        f"{file}:30: mappings[1].links[0].mapping: no mapping is named 'contact'; mapping names: contacts, vehicles",
        f"{file}:33: events.source.journal.ims_org_id: the journal needs the IMS org id (…@AdobeOrg) for "
        "x-ims-org-id: set it here or in campaign.ims_org_id",
        f"{file}:35: events.source.journal.scopes: the journal needs the adobeio_api scope (I/O Management API): "
        "add it to the list",
        f"{file}:40: optouts.pairs[1].campaign: Input should be 'blackList', 'blackListEmail', 'blackListMobile', "
        "'blackListPhone', 'blackListPostalMail', 'blackListFax', 'blackListPushnotification' or 'ccpaOptOut'",
    ]


def test_missing_environment_variable_names_the_variable_path_and_line() -> None:
    text = MINIMAL.replace("dyn-secret-123", "${NOT_SET_ANYWHERE}")
    assert problems_of(text) == [
        "test.yaml:6: dynamics.client_secret: environment variable NOT_SET_ANYWHERE is not set; set it, or write "
        "${NOT_SET_ANYWHERE:-default} for a default"
    ]


def test_environment_values_defaults_and_escaped_dollars_are_interpolated() -> None:
    text = MINIMAL + "service:\n  port: ${PORT:-9100}\n  host: ${HOST}\nstate:\n  url: sqlite:///cost$$.db\n"
    config = parse_config(text, environ={"HOST": "127.0.0.2"})
    assert config.service.port == 9100
    assert config.service.host == "127.0.0.2"
    assert config.state.url == "sqlite:///cost$.db"


def test_derived_urls_of_both_services() -> None:
    text = MINIMAL + "  base_url: http://127.0.0.1:8082/\n"
    config = parse_config(text, environ={})
    assert config.dynamics.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert config.dynamics.scope == "https://contoso.crm.dynamics.com/.default"
    assert config.dynamics.api_url == "https://contoso.crm.dynamics.com/api/data/v9.2/"
    assert config.campaign.api_url == "http://127.0.0.1:8082/contoso/campaign/"


def test_a_local_emulator_may_use_plain_http() -> None:
    text = MINIMAL.replace("https://contoso.crm.dynamics.com", "http://localhost:8081")
    assert parse_config(text, environ={}).dynamics.api_url == "http://localhost:8081/api/data/v9.2/"


def test_dynamics_needs_exactly_one_credential() -> None:
    both = MINIMAL.replace(
        "  client_secret: dyn-secret-123\n",
        "  client_secret: dyn-secret-123\n  certificate: {path: c.pem, thumbprint: " + "ab" * 20 + "}\n",
    )
    neither = MINIMAL.replace("  client_secret: dyn-secret-123\n", "")
    expected = ["test.yaml:2: dynamics: give exactly one of client_secret or certificate"]
    assert problems_of(both) == expected
    assert problems_of(neither) == expected


def test_missing_required_key_points_at_its_section() -> None:
    text = MINIMAL.replace("  organization: contoso\n", "")
    assert problems_of(text) == ["test.yaml:7: campaign.organization: required: add `organization`"]


def test_unknown_top_level_key_lists_the_allowed_keys_when_nothing_is_close() -> None:
    assert problems_of(MINIMAL + "zzz: 1\n") == [
        "test.yaml:11: zzz: unknown key: remove it; allowed keys here: version, dynamics, campaign, mappings, "
        "events, optouts, state, service"
    ]


def test_duplicate_mapping_names_point_at_both() -> None:
    mapping = (
        "  - {name: contacts, table: contact, resource: profileAndServicesExt,"
        " key: {dynamics: contactid, campaign: externalId}}\n"
    )
    problems = problems_of(MINIMAL + "mappings:\n" + mapping + mapping)
    assert problems == [
        "test.yaml:13: mappings[1].name: mapping name 'contacts' is already used by mappings[0].name; names must "
        "be unique (line 12)"
    ]


def test_link_cycles_between_mappings_are_refused_but_self_links_are_fine() -> None:
    text = MINIMAL + (
        "mappings:\n"
        "  - name: a\n    table: new_a\n    resource: cusA\n    key: {dynamics: new_aid, campaign: aId}\n"
        "    links: [{lookup: new_bid, mapping: b, campaign_link: b}, {lookup: parent, mapping: a, campaign_link: p}]\n"
        "  - name: b\n    table: new_b\n    resource: cusB\n    key: {dynamics: new_bid, campaign: bId}\n"
        "    links: [{lookup: new_aid, mapping: a, campaign_link: a}]\n"
    )
    assert problems_of(text) == [
        "test.yaml:16: mappings[0].links: links form a cycle (a -> b -> a); a parent cannot also be a descendant"
    ]


def test_a_link_to_a_disabled_parent_is_refused() -> None:
    text = MINIMAL + (
        "mappings:\n"
        "  - {name: p, table: account, resource: cusAccount, key: {dynamics: accountid, campaign: accountId},"
        " enabled: false}\n"
        "  - name: c\n    table: new_c\n    resource: cusC\n    key: {dynamics: new_cid, campaign: cId}\n"
        "    links: [{lookup: parentaccountid, mapping: p, campaign_link: account}]\n"
    )
    assert problems_of(text) == [
        "test.yaml:17: mappings[1].links[0].mapping: parent mapping 'p' is disabled, so its children would wait "
        "forever; enable it (line 12)"
    ]


OPT_OUT_MAPPING = (
    "mappings:\n"
    "  - name: contacts\n"
    "    table: contact\n"
    "    resource: profileAndServicesExt\n"
    "    key: {dynamics: contactid, campaign: externalId}\n"
    "    fields:\n"
    "      - {dynamics: donotemail, campaign: blackListEmail}\n"
    "      - {dynamics: donotphone, campaign: cusNoCalls}\n"
    "optouts:\n"
    "  mode: MODE\n"
    "  pairs:\n"
    "    - {dynamics: donotbulkemail, campaign: blackListEmail}\n"
    "    - {dynamics: donotphone, campaign: blackListPhone}\n"
)


def test_an_opt_out_field_claimed_by_a_mapping_and_a_pair_names_both_places() -> None:
    assert problems_of(MINIMAL + OPT_OUT_MAPPING.replace("MODE", "bidirectional")) == [
        "test.yaml:17: mappings[0].fields[0].campaign: blackListEmail is written by this mapping and by the opt-out "
        "pair optouts.pairs[0].campaign; an opt-out field has one owner: remove the field here or the pair (line 22)",
        "test.yaml:18: mappings[0].fields[1].dynamics: donotphone is synced by this mapping and by the opt-out pair "
        "optouts.pairs[1].dynamics; an opt-out field has one owner: remove the field here or the pair (line 23)",
    ]


def test_a_mapping_may_own_opt_out_fields_when_opt_outs_are_disabled() -> None:
    config = parse_config(MINIMAL + OPT_OUT_MAPPING.replace("MODE", "disabled"), environ={})
    assert config.optouts.mode == "disabled"


def test_opt_out_mode_without_pairs_is_refused() -> None:
    assert problems_of(MINIMAL + "optouts: {mode: campaign_to_dynamics}\n") == [
        "test.yaml:11: optouts: mode campaign_to_dynamics needs at least one pair, e.g. donotbulkemail ↔ blackListEmail"
    ]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("{column: statecode, op: in, value: 0}", "in needs a non-empty list, e.g. value: [1, 2]"),
        ("{column: statecode, op: null, value: 0}", "null takes no value: remove `value`"),
        ("{column: fullname, op: startswith, value: 3}", "startswith needs a text value"),
        (
            "{column: statecode, op: eq, value: [0, 1]}",
            "eq compares with one value, not a list (use op: in for a list)",
        ),
    ],
)
def test_filter_conditions_must_fit_their_operator(condition: str, message: str) -> None:
    text = MINIMAL + (
        "mappings:\n  - name: c\n    table: contact\n    resource: profileAndServicesExt\n"
        "    key: {dynamics: contactid, campaign: externalId}\n"
        f"    filters:\n      conditions:\n        - {condition}\n"
    )
    assert problems_of(text) == [f"test.yaml:18: mappings[0].filters.conditions[0]: {message}"]


def test_replacement_keys_read_as_numbers_or_booleans_become_text() -> None:
    text = MINIMAL + (
        "mappings:\n  - name: c\n    table: contact\n    resource: profileAndServicesExt\n"
        "    key: {dynamics: contactid, campaign: externalId}\n"
        "    fields:\n      - {dynamics: gendercode, campaign: gender, replacements: {1: F, false: N}}\n"
    )
    field = parse_config(text, environ={}).mappings[0].fields[0]
    assert field.replacements == {"1": "F", "false": "N"}


def test_yaml_syntax_error_is_unreadable_with_its_line() -> None:
    with pytest.raises(ConfigFileUnreadable) as caught:
        parse_config("version: 1\ndynamics: [\n  a: b\n", source="bad.yaml", environ={})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("bad.yaml", 4)
    assert problem.message.startswith("YAML syntax error:")


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileUnreadable) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value.problems[0]).endswith(": (top level): cannot read the file: No such file or directory")


def test_an_alias_that_contains_itself_is_a_problem_not_a_crash() -> None:
    (problem,) = problems_of(MINIMAL + "mappings: &loop [*loop]\n")
    assert problem.startswith("test.yaml:11: mappings[0]: ")


def test_validating_the_model_directly_still_runs_cross_checks() -> None:
    data = {
        "version": 1,
        "dynamics": {"org_url": "https://o.crm.dynamics.com", "tenant_id": "t", "client_id": "c", "client_secret": "x"},
        "campaign": {"organization": "o", "client_id": "c", "client_secret": "y"},
        "mappings": [
            {"name": "m", "table": "contact", "resource": "cusA", "key": {"dynamics": "contactid", "campaign": "k"}},
            {"name": "m", "table": "account", "resource": "cusB", "key": {"dynamics": "accountid", "campaign": "k"}},
        ],
    }
    with pytest.raises(ValueError, match=r"mappings\[1\]\.name: mapping name 'm' is already used"):
        CrmbridgeConfig.model_validate(data)


def test_an_optional_secret_left_empty_by_an_env_default_is_not_set() -> None:
    config = load_config(EXAMPLE, environ=EXAMPLE_ENV)
    assert config.events is not None
    assert config.events.backfill_from_exports is not None
    sftp = config.events.backfill_from_exports.sftp
    assert sftp is not None
    assert sftp.private_key_passphrase is None


def test_an_empty_required_secret_is_a_problem() -> None:
    assert problems_of(MINIMAL.replace("acs-secret-456", "${ACS_SECRET:-}")) == [
        "test.yaml:10: campaign.client_secret: is empty: give the secret, e.g. through ${ENV_VAR}"
    ]
