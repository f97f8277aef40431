"""What the dashboard shows: flows, dead letters, conflicts and mappings, escaped, and never a secret."""

from __future__ import annotations

import html
from dataclasses import replace

import httpx
import pytest

from crmbridge.config import CrmbridgeConfig
from crmbridge.state import StateStore
from crmbridge.web import FixedStatus, Metrics, create_web_app
from tests.web.conftest import (
    BASE_URL,
    CONFLICT_CONTACT,
    NOW,
    REFUSED_REASON,
    REFUSED_RECORD,
    SECOND_RECORD,
    SECRETS,
    csrf_from,
)

pytestmark = pytest.mark.anyio


def row_of(page: str, marker: str) -> str:
    """The table row holding ``marker`` (an attribute such as data-flow="contacts")."""
    start = page.index(marker)
    return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]


async def test_dashboard_shows_each_flow_with_state_counts_backlog_lag_and_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    contacts = row_of(response.text, 'data-flow="contacts"')
    assert ">idle<" in contacts
    assert "read <b>120</b>" in contacts and "written <b>118</b>" in contacts and "failed <b>1</b>" in contacts
    assert ">42<" in contacts  # backlog
    assert "1m 35s" in contacts  # lag of 95 s
    assert "40s ago" in contacts and "in 20s" in contacts
    assert ">running<" in row_of(response.text, 'data-flow="email-events"')
    assert ">paused<" in row_of(response.text, 'data-flow="optouts"')


async def test_flow_counts_show_the_main_ones_always_and_the_others_only_when_not_zero(
    client: httpx.AsyncClient, status: FixedStatus
) -> None:
    from tests.web.conftest import runner_status

    snapshot = runner_status()
    tables = {"read": 7, "created": 0, "updated": 5, "deleted": 2, "skipped": 0, "failed": 0, "pages": 1}
    optouts = {"dynamics_changes": 0, "campaign_changes": 0, "written_campaign": 0}
    flows = [replace(snapshot.flows[0], last_counts=tables), replace(snapshot.flows[2], last_counts=optouts)]
    status.update(replace(snapshot, flows=flows))
    page = (await client.get("/")).text
    contacts = row_of(page, 'data-flow="contacts"')
    assert "read <b>7</b>" in contacts and "skipped <b>0</b>" in contacts and "failed <b>0</b>" in contacts
    assert "updated <b>5</b>" in contacts and "deleted <b>2</b>" in contacts
    assert "created" not in contacts and "pages" not in contacts
    assert "nothing changed" in row_of(page, 'data-flow="optouts"')


async def test_failed_flow_shows_its_last_error(
    client: httpx.AsyncClient, status: FixedStatus, config: CrmbridgeConfig
) -> None:
    from tests.web.conftest import runner_status

    status.update(runner_status(failing=True))
    contacts = row_of((await client.get("/")).text, 'data-flow="contacts"')
    assert ">failed<" in contacts
    assert "Campaign refused the batch: HTTP 500 RST-360011" in contacts


async def test_dashboard_lists_open_dead_letters_with_reason_payload_and_attempts(
    client: httpx.AsyncClient, letter_ids: dict[str, int]
) -> None:
    page = (await client.get("/")).text
    letter = row_of(page, f'data-letter="{letter_ids[REFUSED_RECORD]}"')
    assert REFUSED_RECORD in letter
    assert html.escape(REFUSED_REASON) in letter
    assert "RecordError" in letter
    assert "zoe+news@example.com" in letter  # the payload
    assert ">open<" in letter
    assert SECOND_RECORD in row_of(page, f'data-letter="{letter_ids[SECOND_RECORD]}"')


async def test_record_values_are_escaped_not_rendered_as_markup(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_dashboard_shows_conflicts_with_both_values_times_winner_and_rule(client: httpx.AsyncClient) -> None:
    conflict = row_of((await client.get("/")).text, f'data-conflict="{CONFLICT_CONTACT}"')
    assert "donotbulkemail:blackListEmail" in conflict
    assert conflict.count("opted in") == 1 and conflict.count("opted out") == 2  # Dynamics, Campaign, result
    assert "20m 0s ago" in conflict and "10m 0s ago" in conflict  # when each side changed
    assert "<b>campaign</b>" in conflict and "adobe" in conflict


async def test_dashboard_shows_the_mappings_in_force(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    contacts = page[page.index('data-mapping="contacts"') :]
    assert "<code>contact</code> → Campaign <code>profileAndServicesExt</code>" in contacts
    assert "<code>contactid</code> = <code>externalId</code>" in contacts
    assert 'data-mapping="vehicles"' in page
    assert 'data-mapping="events"' in page and 'data-mapping="optouts"' in page
    assert "donotbulkemail ↔ blackListEmail" in page


async def test_stored_state_summary_lists_scopes_from_the_store(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    state = page[page.index('id="state"') :]
    assert "<td>contacts</td>" in state and "succeeded" in state


async def test_dead_letter_page_shows_the_whole_payload(client: httpx.AsyncClient, letter_ids: dict[str, int]) -> None:
    response = await client.get(f"/dead-letters/{letter_ids[REFUSED_RECORD]}")
    assert response.status_code == 200
    assert "&quot;email&quot;: &quot;zoe+news@example.com&quot;" in response.text
    assert (await client.get("/dead-letters/999999")).status_code == 404


async def test_pages_forbid_framing_and_foreign_scripts(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"


async def test_secrets_from_the_config_never_appear_in_any_response(
    client: httpx.AsyncClient, letter_ids: dict[str, int], status: FixedStatus
) -> None:
    from tests.web.conftest import runner_status

    failing = runner_status(failing=True)
    leaky = replace(
        failing.flows[0], last_error=f"token request refused for {SECRETS['CRMBRIDGE_DYNAMICS_CLIENT_SECRET']}"
    )
    status.update(replace(failing, flows=[leaky, *failing.flows[1:]]))
    first = await client.get("/")
    csrf = csrf_from(first.text)
    letter = letter_ids[REFUSED_RECORD]
    unlocked = await client.post("/session", data={"token": SECRETS["CRMBRIDGE_DASHBOARD_TOKEN"], "csrf_token": csrf})
    assert unlocked.status_code == 303
    responses = [
        first,
        await client.get("/"),
        await client.get(f"/dead-letters/{letter}"),
        await client.post(f"/dead-letters/{letter}/retry", data={"csrf_token": "wrong"}),
        await client.get("/api/status"),
        await client.get("/api/dead-letters?status=all"),
        await client.get(f"/api/dead-letters/{letter}"),
        await client.get("/api/conflicts"),
        await client.get("/metrics"),
        await client.get("/healthz"),
    ]
    for response in responses:
        shown = response.text + "".join(f"{name}: {value}\n" for name, value in response.headers.items())
        for name, secret in SECRETS.items():
            assert secret not in shown, f"{name} shows in {response.request.url}"


async def test_without_a_token_the_page_says_write_actions_are_disabled(
    store: StateStore, letter_ids: dict[str, int], status: FixedStatus, metrics: Metrics
) -> None:
    app = create_web_app(store, status, metrics, None, token=None, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        page = (await client.get("/")).text
        refused = await client.post(
            f"/api/dead-letters/{letter_ids[REFUSED_RECORD]}/retry", headers={"Authorization": "Bearer anything"}
        )
    assert "Write actions (retry, drop) are disabled because no dashboard token is configured" in page
    assert 'name="csrf_token"' not in page
    assert "No configuration loaded." in page
    assert refused.status_code == 403
    assert "no dashboard token is configured" in refused.json()["error"]
