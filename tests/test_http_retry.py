"""RetryPolicy: Retry-After, pauses that do not use up attempts, bounds, and the idempotency rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import structlog

from crmbridge.exceptions import RateLimited, TransientError
from crmbridge.http import Action, HttpStats, MaybeAppliedError, RetryPolicy, parse_retry_after
from http_fakes import FakeTime, ScriptedTransport

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def classify(response: httpx.Response) -> Action:
    status = response.status_code
    if status < 300:
        return Action.SUCCESS
    if status == 429:
        return Action.PAUSE
    if status == 408 or status >= 500:
        return Action.RETRY
    if status == 401:
        return Action.REAUTHENTICATE
    return Action.RECORD_ERROR


def policy(fake: FakeTime, **overrides: float) -> RetryPolicy:
    settings: dict[str, float] = {"jitter": 0.0, "base_delay": 1.0} | overrides
    return RetryPolicy(
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: NOW,
        max_attempts=int(settings.pop("max_attempts", 6)),
        **settings,
    )


async def send(
    transport: ScriptedTransport, retry: RetryPolicy, *, method: str = "GET", idempotent: bool = True, **kw: object
) -> httpx.Response:
    async with transport.client() as client:
        request = client.build_request(method, "/contacts", json={"lastname": "Ölçer"} if method != "GET" else None)
        stats = kw.get("stats")
        assert stats is None or isinstance(stats, HttpStats)
        return await retry.send(client, request, classify=classify, idempotent=idempotent, stats=stats)


def ok() -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),  # a date in the past means: now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.anyio
async def test_retry_after_seconds_is_honoured_exactly_on_429() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(429, headers={"Retry-After": "17"}), ok())
    response = await send(transport, policy(fake))
    assert response.status_code == 200
    assert fake.sleeps == [17.0]


@pytest.mark.anyio
async def test_retry_after_http_date_is_honoured_exactly_on_429() -> None:
    fake = FakeTime()
    date = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    transport = ScriptedTransport(httpx.Response(429, headers={"Retry-After": date}), ok())
    await send(transport, policy(fake))
    assert fake.sleeps == [42.0]


@pytest.mark.anyio
async def test_429_without_retry_after_falls_back_to_exponential_backoff() -> None:
    fake = FakeTime()
    throttled = httpx.Response(429)
    transport = ScriptedTransport(throttled, throttled, throttled, ok())
    await send(transport, policy(fake, base_delay=0.5))
    assert fake.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.anyio
async def test_429_with_zero_retry_after_backs_off_instead_of_hammering() -> None:
    fake = FakeTime()
    throttled = httpx.Response(429, headers={"Retry-After": "0"})
    transport = ScriptedTransport(throttled, throttled, ok())
    await send(transport, policy(fake, base_delay=0.5))
    assert fake.sleeps == [0.5, 1.0]


@pytest.mark.anyio
async def test_429s_do_not_consume_attempts() -> None:
    fake = FakeTime()
    throttled = httpx.Response(429, headers={"Retry-After": "1"})
    steps = [throttled] * 10 + [httpx.Response(503)] * 2 + [ok()]
    transport = ScriptedTransport(*steps)
    stats = HttpStats()
    response = await send(transport, policy(fake, max_attempts=3), stats=stats)
    assert response.status_code == 200
    assert len(transport.requests) == 13
    assert stats.throttled == 10
    assert stats.retries == 12
    assert stats.by_status == {429: 10, 503: 2, 200: 1}


@pytest.mark.anyio
async def test_endless_429s_give_up_with_rate_limited_once_elapsed_time_runs_out() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(429, headers={"Retry-After": "30"}))
    stats = HttpStats()
    with pytest.raises(RateLimited) as caught:
        await send(transport, policy(fake, max_elapsed=100.0), stats=stats)
    assert fake.sleeps == [30.0, 30.0, 30.0]  # a fourth pause would end at 120 s
    assert sum(fake.sleeps) <= 100.0
    assert caught.value.retry_after == timedelta(seconds=30)
    assert caught.value.details is not None
    assert caught.value.details.status == 429
    assert stats.failures == 1


@pytest.mark.anyio
async def test_transient_failures_stop_after_max_attempts() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(502, headers={"x-ms-service-request-id": "req-1"}))
    with pytest.raises(TransientError) as caught:
        await send(transport, policy(fake, max_attempts=4))
    assert not isinstance(caught.value, RateLimited)
    assert len(transport.requests) == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]
    details = caught.value.details
    assert details is not None
    assert (details.status, details.request_id) == (502, "req-1")


@pytest.mark.anyio
async def test_total_time_is_bounded_even_with_attempts_left() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(500))
    with pytest.raises(TransientError, match="would exceed 10s"):
        await send(transport, policy(fake, max_attempts=100, max_elapsed=10.0))
    assert sum(fake.sleeps) <= 10.0
    assert fake.sleeps == [1.0, 2.0, 4.0]


@pytest.mark.anyio
async def test_backoff_is_capped_at_max_delay() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(500))
    with pytest.raises(TransientError):
        await send(transport, policy(fake, max_attempts=7, max_delay=5.0, max_elapsed=1000.0))
    assert fake.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@pytest.mark.anyio
async def test_connection_errors_are_retried_for_idempotent_requests() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError, ok())
    response = await send(transport, policy(fake))
    assert response.status_code == 200
    assert len(transport.requests) == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.Response(500)],
    ids=["ReadTimeout", "RemoteProtocolError", "ReadError", "WriteError", "500"],
)
async def test_post_is_not_retried_after_an_ambiguous_failure(
    failure: httpx.Response | type[httpx.TransportError],
) -> None:
    fake = FakeTime()
    transport = ScriptedTransport(failure, ok())
    with pytest.raises(MaybeAppliedError):
        await send(transport, policy(fake), method="POST", idempotent=False)
    assert len(transport.requests) == 1
    assert fake.sleeps == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(503, headers={"Retry-After": "2"}),
    ],
    ids=["ConnectError", "ConnectTimeout", "PoolTimeout", "429", "503+Retry-After"],
)
async def test_post_is_retried_when_it_certainly_was_not_applied(
    failure: httpx.Response | type[httpx.TransportError],
) -> None:
    fake = FakeTime()
    transport = ScriptedTransport(failure, httpx.Response(201, json={"id": 1}))
    response = await send(transport, policy(fake), method="POST", idempotent=False)
    assert response.status_code == 201
    assert len(transport.requests) == 2


@pytest.mark.anyio
async def test_every_attempt_sends_the_full_body() -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.ConnectError, httpx.Response(429), ok())
    await send(transport, policy(fake), method="POST", idempotent=False)
    assert [json.loads(body) for body in transport.bodies] == [{"lastname": "Ölçer"}] * 3


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "action"), [(401, Action.REAUTHENTICATE), (400, Action.RECORD_ERROR)])
async def test_non_retryable_actions_return_the_response_at_once(status: int, action: Action) -> None:
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(status), ok())
    response = await send(transport, policy(fake))
    assert response.status_code == status
    assert classify(response) is action
    assert len(transport.requests) == 1


@pytest.mark.anyio
async def test_retry_is_logged_with_secrets_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from crmbridge.logs import configure_logging

    configure_logging("json", stream=None)
    fake = FakeTime()
    transport = ScriptedTransport(httpx.Response(503), ok())
    try:
        async with transport.client() as client:
            request = client.build_request(
                "GET",
                "/contacts?access_token=abcdef123456",
                headers={"Authorization": "Bearer eyJhbGciOi.eyJzdWIi.c2ln"},
            )
            await policy(fake).send(client, request, classify=classify, idempotent=True)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    retry = next(line for line in lines if line["event"] == "http.retry")
    assert retry["status"] == 503
    assert retry["headers"]["authorization"] == "***"
    assert "abcdef123456" not in json.dumps(lines)
    assert "eyJzdWIi" not in json.dumps(lines)


def test_jitter_stays_within_its_bounds() -> None:
    retry = RetryPolicy(base_delay=2.0, max_delay=60.0, jitter=0.25)
    for failures, nominal in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        delays = [retry.backoff_delay(failures) for _ in range(500)]
        assert all(nominal * 0.75 <= d <= nominal * 1.25 for d in delays)
        assert max(delays) - min(delays) > nominal * 0.25  # the jitter really spreads retries out
