"""Retry and drop change the dead letter, only with the token, from this site, with the session's CSRF token."""

from __future__ import annotations

import httpx
import pytest

from crmbridge.config import CrmbridgeConfig
from crmbridge.state import DeadLetterStatus, StateStore
from crmbridge.web import FixedStatus, Metrics, create_web_app
from tests.web.conftest import DASHBOARD_TOKEN, REFUSED_RECORD, SECOND_RECORD, csrf_from, runner_status

pytestmark = pytest.mark.anyio

BEARER = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}


def status_of(store: StateStore, letter_id: int) -> DeadLetterStatus:
    letter = store.dead_letters.get(letter_id)
    assert letter is not None
    return letter.status


async def session_csrf(client: httpx.AsyncClient) -> str:
    """Open the dashboard as a browser would: the response sets the session cookie, the page holds its CSRF token."""
    return csrf_from((await client.get("/")).text)


async def test_form_retry_with_token_and_csrf_marks_the_letter_retrying(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    csrf = await session_csrf(client)
    response = await client.post(f"/dead-letters/{letter}/retry", data={"token": DASHBOARD_TOKEN, "csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/#dead-letters"
    assert status_of(store, letter) is DeadLetterStatus.RETRYING
    assert status_of(store, letter_ids[SECOND_RECORD]) is DeadLetterStatus.OPEN


async def test_unlocked_session_drops_with_its_csrf_token_alone(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    csrf = await session_csrf(client)
    unlocked = await client.post("/session", data={"token": DASHBOARD_TOKEN, "csrf_token": csrf})
    assert unlocked.status_code == 303
    page = (await client.get("/")).text
    assert f'data-action="drop-{letter_ids[SECOND_RECORD]}"' in page  # buttons are live once unlocked
    response = await client.post(f"/dead-letters/{letter_ids[SECOND_RECORD]}/drop", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert status_of(store, letter_ids[SECOND_RECORD]) is DeadLetterStatus.DROPPED


async def test_action_from_the_letter_page_returns_to_that_page(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[SECOND_RECORD]
    csrf = await session_csrf(client)
    await client.post("/session", data={"token": DASHBOARD_TOKEN, "csrf_token": csrf})
    page = (await client.get(f"/dead-letters/{letter}")).text
    assert 'name="back" value="letter"' in page
    response = await client.post(f"/dead-letters/{letter}/drop", data={"csrf_token": csrf, "back": "letter"})
    assert response.headers["location"] == f"/dead-letters/{letter}"
    dropped_page = (await client.get(response.headers["location"])).text
    assert ">dropped<" in dropped_page
    assert "dropped by an operator" in dropped_page  # when and why it was closed
    odd = await client.post(f"/dead-letters/{letter}/retry", data={"csrf_token": csrf, "back": "https://evil.example"})
    assert odd.headers["location"] == "/#dead-letters"


async def test_write_without_the_token_is_refused(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    csrf = await session_csrf(client)
    by_form = await client.post(f"/dead-letters/{letter}/retry", data={"csrf_token": csrf})
    by_api = await client.post(f"/api/dead-letters/{letter}/drop")
    wrong = await client.post(f"/api/dead-letters/{letter}/drop", headers={"Authorization": "Bearer not-the-token"})
    wrong_unlock = await client.post("/session", data={"token": "guess", "csrf_token": csrf})
    assert [r.status_code for r in (by_form, by_api, wrong, wrong_unlock)] == [403, 403, 403, 403]
    assert "give the dashboard token first" in by_form.text
    assert status_of(store, letter) is DeadLetterStatus.OPEN


async def test_token_from_another_site_is_refused(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    csrf = await session_csrf(client)
    form = {"token": DASHBOARD_TOKEN, "csrf_token": csrf}
    attempts = [
        await client.post(f"/dead-letters/{letter}/retry", data=form, headers={"Origin": "https://evil.example"}),
        await client.post(f"/dead-letters/{letter}/retry", data=form, headers={"Sec-Fetch-Site": "cross-site"}),
        # Another port on 127.0.0.1 is the "same site" for a browser, but not this origin.
        await client.post(f"/dead-letters/{letter}/retry", data=form, headers={"Origin": "http://127.0.0.1:9999"}),
        await client.post(f"/dead-letters/{letter}/retry", data=form, headers={"Sec-Fetch-Site": "same-site"}),
        await client.post(f"/api/dead-letters/{letter}/drop", headers={**BEARER, "Origin": "null"}),
    ]
    assert [attempt.status_code for attempt in attempts] == [403] * 5
    assert "another site" in attempts[0].text
    assert status_of(store, letter) is DeadLetterStatus.OPEN


async def test_same_origin_browser_post_is_accepted(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    csrf = await session_csrf(client)
    response = await client.post(
        f"/dead-letters/{letter}/retry",
        data={"token": DASHBOARD_TOKEN, "csrf_token": csrf},
        headers={"Origin": "http://127.0.0.1:8321", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert status_of(store, letter) is DeadLetterStatus.RETRYING


async def test_csrf_token_missing_stale_or_of_another_session_is_refused(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    other_csrf = await session_csrf(client)
    client.cookies.clear()  # a new session: the token rendered for the old one no longer fits
    await session_csrf(client)
    for form in ({"token": DASHBOARD_TOKEN}, {"token": DASHBOARD_TOKEN, "csrf_token": other_csrf}):
        response = await client.post(f"/dead-letters/{letter}/retry", data=form)
        assert response.status_code == 403
    assert status_of(store, letter) is DeadLetterStatus.OPEN


async def test_api_retry_with_bearer_token_returns_the_updated_letter(
    client: httpx.AsyncClient, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    response = await client.post(f"/api/dead-letters/{letter}/retry", headers=BEARER)
    assert response.status_code == 200
    assert response.json()["status"] == "retrying"
    assert response.json()["record_key"] == REFUSED_RECORD
    listed = (await client.get("/api/dead-letters?status=retrying")).json()["dead_letters"]
    assert [item["id"] for item in listed] == [letter]


async def test_retry_of_a_resolved_letter_is_a_conflict(
    client: httpx.AsyncClient, store: StateStore, letter_ids: dict[str, int]
) -> None:
    letter = letter_ids[REFUSED_RECORD]
    store.dead_letters.mark([letter], DeadLetterStatus.RESOLVED)
    response = await client.post(f"/api/dead-letters/{letter}/retry", headers=BEARER)
    assert response.status_code == 409
    assert status_of(store, letter) is DeadLetterStatus.RESOLVED


async def test_unknown_letter_or_action_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/dead-letters/424242/retry", headers=BEARER)).status_code == 404
    assert (await client.post("/api/dead-letters/1/resolve", headers=BEARER)).status_code == 404


async def test_a_foreign_host_name_is_refused_to_stop_dns_rebinding(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Host": "attacker.example"})
    assert response.status_code == 400


async def test_a_dashboard_bound_beyond_loopback_answers_to_its_host_names(
    store: StateStore, letter_ids: dict[str, int], config: CrmbridgeConfig
) -> None:
    public = config.model_copy(update={"service": config.service.model_copy(update={"host": "10.0.0.5"})})
    app = create_web_app(store, FixedStatus(runner_status()), Metrics(), public, token=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash.example") as client:
        assert (await client.get("/healthz")).status_code == 200
