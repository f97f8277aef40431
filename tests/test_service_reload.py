"""After ``crmbridge run`` reloads its configuration, the dashboard's "Mappings in force" are the new ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from crmbridge.config import parse_config
from crmbridge.service import Dashboard
from crmbridge.state import StateStore
from crmbridge.web import Metrics, RunnerStatus, create_web_app
from crmbridge.web.status import FixedStatus

CONFIG = """
version: 1
dynamics: {org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}
campaign: {organization: acme, client_id: c, client_secret: s3cr3t-value}
mappings:
  - name: MAPPING_NAME
    table: contact
    resource: profileAndServicesExt
    key: {dynamics: contactid, campaign: externalId}
    fields: [{dynamics: firstname, campaign: firstName}]
"""


@pytest.mark.anyio
async def test_the_dashboard_shows_the_mappings_of_a_reloaded_config(tmp_path: Path) -> None:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        status = FixedStatus(RunnerStatus([], datetime.now(UTC)))
        app = create_web_app(
            store, status, Metrics(), parse_config(CONFIG.replace("MAPPING_NAME", "mapping_at_start")), token=None
        )
        dashboard = Dashboard(cast(Any, None), Metrics(), app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert "mapping_at_start" in (await client.get("/")).text
            dashboard.show_config(parse_config(CONFIG.replace("MAPPING_NAME", "mapping_reloaded")))
            page = (await client.get("/")).text
    assert "mapping_reloaded" in page and "mapping_at_start" not in page
