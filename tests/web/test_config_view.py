"""The "mappings in force" section renders what a mapping does, and nothing of the connection settings."""

from __future__ import annotations

from crmbridge.config import parse_config
from crmbridge.web.config_view import render_config

CONFIG = """\
version: 1
dynamics:
  org_url: https://contoso.crm.dynamics.com
  tenant_id: contoso.onmicrosoft.com
  client_id: app-id-visible-nowhere
  client_secret: dyn-secret-123456
campaign:
  organization: contoso
  client_id: acs-id
  client_secret: acs-secret-456789
mappings:
  - name: leads
    table: lead
    resource: cusLead
    enabled: false
    interval: 90s
    key: {dynamics: leadid, campaign: leadId}
    fields:
      - {dynamics: subject, campaign: title, max_length: 40}
    filters:
      match: any
      on_filtered_out: delete
      conditions:
        - {column: statecode, op: eq, value: 0}
        - {column: leadsourcecode, op: in, value: [1, 2]}
events:
  source:
    exports: {folder: /var/lib/crmbridge/exports}
  types: {send: true, open: false, click: false, bounce: "off"}
"""


def test_a_disabled_mapping_shows_its_filter_interval_and_field_limits() -> None:
    page = render_config(parse_config(CONFIG, environ={}))
    assert "leads" in page and "disabled" in page
    assert "statecode eq 0 or leadsourcecode in [1, 2]" in page
    assert "rows that leave the filter are deleted in Campaign" in page
    assert "every 90s" in page
    assert "max 40 chars" in page


def test_event_flow_from_export_files_lists_only_the_types_switched_on() -> None:
    page = render_config(parse_config(CONFIG, environ={}))
    assert "Campaign workflow export files → Dynamics activities: send;" in page


def test_connection_settings_and_secrets_are_not_rendered() -> None:
    page = render_config(parse_config(CONFIG, environ={}))
    for hidden in ("dyn-secret-123456", "acs-secret-456789", "app-id-visible-nowhere", "contoso.crm.dynamics.com"):
        assert hidden not in page


def test_without_a_configuration_the_section_says_so() -> None:
    assert "No configuration loaded." in render_config(None)
