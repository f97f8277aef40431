"""The HTTP seam of crmbridge: client factory (timeouts always on), RetryPolicy, AdaptiveLimiter and counters.

Why not tenacity: what a retry means here depends on HTTP semantics that tenacity leaves to callbacks — a 429
pauses the whole service for ``Retry-After`` and must not use up the attempt budget, a 503 may carry its own
``Retry-After``, and a POST may be repeated only when it certainly was not applied. Expressed as tenacity
predicates, stop conditions and wait functions those rules end up spread over half a dozen hooks; written as one
loop they fit on a screen and can be read and reviewed in one place.

Each client brings its own reviewed classification table (a :data:`Classifier`); this module only acts on the
resulting :class:`Action`.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.request import getproxies

import httpx
import structlog

from crmbridge.connection_pool import DEFAULT_SHARD_SIZE, ShardedPoolTransport
from crmbridge.exceptions import ApiErrorDetails, RateLimited, TransientError
from crmbridge.redaction import redact, redact_headers

__all__ = [
    "KEEPALIVE_EXPIRY",
    "Action",
    "AdaptiveLimiter",
    "Classifier",
    "HttpStats",
    "MaybeAppliedError",
    "RetryPolicy",
    "create_client",
    "json_body_cut_short",
    "parse_retry_after",
]

log = structlog.get_logger(__name__)


class Action(StrEnum):
    """What a client's classification table says to do with a response."""

    SUCCESS = "success"
    RETRY = "retry"  # outage (5xx the service documents as transient, 408): back off and try again
    PAUSE = "pause"  # 429: pause the whole service for Retry-After
    REAUTHENTICATE = "reauthenticate"
    RECORD_ERROR = "record_error"
    REBASELINE = "rebaseline"
    CONFIG_ERROR = "config_error"
    STOP = "stop"


Classifier = Callable[[httpx.Response], Action]
EventHooks = Mapping[str, list[Callable[..., Any]]]


class MaybeAppliedError(TransientError):
    """A non-idempotent request failed in a way that does not say whether the service applied it.

    Retrying blindly could create a duplicate: the caller must check the target (by business key) first.
    """


# Failures after which the request certainly never reached the service, so even a POST may be sent again.
_NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures worth retrying at all; anything else (UnsupportedProtocol, LocalProtocolError, …) is a bug of ours.
_RETRYABLE_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.NetworkError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
)
_CEILING_PATIENCE = 10
# Idle connections are dropped after 4 s, under the 5 s idle timeout of common servers (uvicorn, Apache): reusing
# a connection the server is closing at that moment fails the request (RemoteProtocolError), and a POST then
# cannot be repeated blindly. Seen with httpx's default of 5 s against the 5 s emulators: Dataverse page reads
# ~5 s apart failed and were retried.
KEEPALIVE_EXPIRY = 4.0
_REQUEST_ID_HEADERS = ("x-ms-service-request-id", "x-request-id", "request-id", "x-ms-request-id")


def create_client(
    *,
    base_url: str = "",
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    verify: bool | str = True,
    proxy: str | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 64,
    event_hooks: EventHooks | None = None,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """One ``httpx.AsyncClient`` per service, with every timeout set and no silent redirects.

    ``verify`` is True/False or the path of a CA bundle (e.g. the emulator's generated CA). Without a proxy or a
    given transport, more than a few connections are spread over small pools (:mod:`crmbridge.connection_pool`).
    """
    if timeout <= 0 or connect_timeout <= 0:
        raise ValueError("timeouts must be positive: a request without a timeout can hang a sync forever")
    verification = _ssl_verification(verify)
    # A given transport makes httpx ignore HTTP(S)_PROXY, so proxied setups keep httpx's own single pool.
    if transport is None and proxy is None and not getproxies() and max_connections > DEFAULT_SHARD_SIZE:
        transport = ShardedPoolTransport(
            max_connections=max_connections, verify=verification, keepalive_expiry=KEEPALIVE_EXPIRY
        )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        verify=verification,
        proxy=proxy,
        headers=dict(headers or {}),
        transport=transport,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        ),
        event_hooks={key: list(hooks) for key, hooks in (event_hooks or {}).items()},
        follow_redirects=follow_redirects,
    )


def _ssl_verification(verify: bool | str) -> bool | ssl.SSLContext:
    # httpx 0.28 deprecates verify=<path>; an SSLContext with the bundle is the supported spelling.
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def json_body_cut_short(response: httpx.Response) -> bool:
    """True when a response's JSON body does not parse: cut short by a reset connection or a proxy.

    Classifiers turn such a "success" into a retry: the status line came, the answer did not. Empty bodies and
    bodies declared as something else (``$batch`` multipart, text) are not judged; an undeclared body is read as
    the JSON both services speak.
    """
    content_type = response.headers.get("content-type", "").lower()
    if not response.content or (content_type and "json" not in content_type):
        return False
    try:
        json.loads(response.content)
    except ValueError:
        return True
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), never negative; garbage → None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now or datetime.now(UTC))
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinity
        return None
    return max(0.0, seconds)


def _seconds_until_http_date(text: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete formats may come without a zone
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass
class HttpStats:
    """Counters of one service's HTTP traffic, read by /metrics and the benchmarks."""

    requests: int = 0  # attempts sent, including retries
    throttled: int = 0  # 429 responses
    retries: int = 0  # attempts repeated after a transient failure or a 429
    failures: int = 0  # calls given up (bounds exhausted, or maybe applied)
    by_status: dict[int, int] = field(default_factory=dict)

    def record_status(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1


class AdaptiveLimiter:
    """Per-service concurrency that halves on 429 (pausing every slot) and grows back while responses are healthy."""

    def __init__(
        self,
        *,
        initial: int = 4,
        minimum: int = 1,
        maximum: int = 16,
        increase_every: int = 20,
        decrease_factor: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be between 0 and 1, got {decrease_factor}")
        self._limit = initial
        self._minimum = minimum
        self._maximum = maximum
        self._increase_every = max(1, increase_every)
        self._decrease_factor = decrease_factor
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0
        self._peak_in_flight = 0
        self._throttled = 0
        self._healthy_in_row = 0
        self._ceiling: int | None = None  # the limit that last drew a 429, approached with patience
        self._paused_until = float("-inf")
        self._pause_started = float("-inf")
        # Tasks waiting for a slot, oldest first; a freed slot wakes one of them, not all (a sync keeps hundreds
        # of writes queued behind ~100 slots, and waking every waiter per response cost O(waiters) per request).
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._woken = 0  # waiters woken for a free slot that have not taken it yet

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._peak_in_flight

    @property
    def throttled(self) -> int:
        return self._throttled

    def now(self) -> float:
        """This limiter's clock (what ``on_throttled(sent_at=...)`` expects)."""
        return self._clock()

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def slot(self) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot():`` waits for any pause to end and for capacity, then holds one slot."""
        return self._slot()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake_waiters()

    async def _acquire(self) -> None:
        woken = False
        while True:
            pause = self.paused_for
            if pause > 0:
                await self._sleep(pause)
                continue
            # Slots promised to woken waiters that have not run yet are not free; a newcomer queues behind waiters.
            if self._in_flight + self._woken < self._limit and (woken or not self._waiters):
                self._in_flight += 1
                self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
                return
            woken = await self._wait_for_wake(front=woken)

    async def _wait_for_wake(self, *, front: bool) -> bool:
        waiter = asyncio.get_running_loop().create_future()
        if front:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._woken -= 1
                self._wake_waiters()  # woken, then cancelled: the wake-up must not be lost with this task
            elif waiter in self._waiters:  # a wake-up may already have dropped it (it skips cancelled waiters)
                self._waiters.remove(waiter)
            raise
        self._woken -= 1
        return True

    def _wake_waiters(self) -> None:
        """Wake as many waiters, oldest first, as there are free slots (single-threaded asyncio: no lock)."""
        while self._waiters and self._in_flight + self._woken < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1

    def on_success(self) -> None:
        """Slow start until the first 429, then additive increase: one more slot after ``increase_every``
        healthy responses in a row, ≤ maximum.

        Growing back to the limit that last drew a 429 takes ``_CEILING_PATIENCE`` times longer: every probe above
        the service's capacity costs a pause of every slot, so it should be rare.
        """
        self._healthy_in_row += 1
        if self._throttled == 0 and self._limit < self._maximum:
            # Slow start (as TCP does): until the service first pushes back, each healthy response adds a slot,
            # so the limit doubles per round trip. Services that answer in 100s of ms need dozens in flight.
            self._limit += 1
            self._healthy_in_row = 0
            self._wake_waiters()
            return
        needed = self._increase_every
        if self._ceiling is not None and self._limit + 1 >= self._ceiling:
            needed *= _CEILING_PATIENCE
        if self._healthy_in_row >= needed and self._limit < self._maximum:
            self._limit += 1
            self._healthy_in_row = 0
            if self._ceiling is not None and self._limit > self._ceiling:
                self._ceiling = None  # held above the old ceiling: the service has more room now
            self._wake_waiters()

    def on_throttled(self, retry_after: float | None, *, sent_at: float | None = None) -> None:
        """Multiplicative decrease and a pause of every slot for ``retry_after`` seconds.

        ``sent_at`` (this limiter's clock) is when the throttled request went out. A 429 answering a request sent
        before the current pause began is part of the signal that started it: it neither decreases nor extends the
        pause. That request still waits its own Retry-After before its retry (RetryPolicy); only the requests not
        yet sent wait for the pause, which ends when the first answer of the burst said to come back (the later
        answers of a burst arrive later, so taking their deadlines idled every slot by the spread of the burst).
        """
        self._throttled += 1
        self._healthy_in_row = 0
        now = self._clock()
        if self._paused_until > now and sent_at is not None and sent_at < self._pause_started:
            return
        # A burst of 429s answering requests sent together is one signal: decrease once per pause, not per response.
        if self._paused_until <= now:
            self._ceiling = self._limit
            self._limit = max(self._minimum, int(self._limit * self._decrease_factor))
            self._pause_started = now
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, now + retry_after)


@dataclass
class _Attempt:
    """The outcome of one attempt, as the retry loop needs it."""

    response: httpx.Response | None = None
    error: httpx.TransportError | None = None
    action: Action = Action.SUCCESS
    sent_at: float | None = None  # the limiter's clock when the request went out (after waiting for a slot)


@dataclass
class RetryPolicy:
    """Retries what a client's classification calls transient, honours 429 pauses, never blindly repeats a POST."""

    max_attempts: int = 6  # attempts for transient failures (429s do not consume them)
    max_elapsed: float = 300.0  # seconds; total time bound including 429 pauses
    base_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.25  # each backoff delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    service: str = "http"  # names the service in errors and logs
    rng: random.Random = field(default_factory=random.Random)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # for HTTP-date Retry-After

    def backoff_delay(self, failures: int) -> float:
        """Delay before the next try after ``failures`` consecutive failures (1-based), with jitter."""
        exponent = max(0, failures - 1)
        nominal = min(self.max_delay, self.base_delay * (2.0 ** min(exponent, 60)))
        return max(0.0, nominal * (1.0 + self.rng.uniform(-self.jitter, self.jitter)))

    async def send(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        *,
        classify: Classifier,
        idempotent: bool,
        limiter: AdaptiveLimiter | None = None,
        stats: HttpStats | None = None,
    ) -> httpx.Response:
        """Send ``request`` until it succeeds, hits a non-retryable action, or the attempt/time budget runs out."""
        await request.aread()  # keep the body in memory so every attempt can send it again
        stats = stats if stats is not None else HttpStats()
        started = self.clock()
        failures = 0  # transient failures: bounded by max_attempts
        throttles = 0  # 429s: bounded only by max_elapsed
        while True:
            # The first attempt sends the request itself; only a retry pays for a copy (measurable per request).
            outgoing = request if failures + throttles == 0 else _fresh_copy(request)
            attempt = await self._attempt(client, outgoing, classify, limiter, stats)
            if attempt.action is Action.PAUSE:
                throttles += 1
                delay = self._throttle_delay(attempt.response, throttles)
                if limiter is not None:
                    limiter.on_throttled(delay, sent_at=attempt.sent_at)
                self._check_time_left(request, attempt, started, delay, stats)
            elif attempt.action is Action.RETRY:
                failures += 1
                self._check_may_repeat(request, attempt, idempotent, stats)
                if failures >= self.max_attempts:
                    raise self._give_up(request, attempt, stats, f"gave up after {failures} attempts")
                delay = self._retry_delay(attempt.response, failures)
                self._check_time_left(request, attempt, started, delay, stats)
            else:
                assert attempt.response is not None  # only responses are classified as final
                if limiter is not None:
                    limiter.on_success()
                return attempt.response
            stats.retries += 1
            self._log_retry(request, attempt, delay, failures, throttles)
            await self.sleep(delay)

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        classify: Classifier,
        limiter: AdaptiveLimiter | None,
        stats: HttpStats,
    ) -> _Attempt:
        slot = limiter.slot() if limiter is not None else nullcontext()
        async with slot:
            stats.requests += 1
            sent_at = limiter.now() if limiter is not None else None
            try:
                response = await client.send(request)
            except _RETRYABLE_ERRORS as error:
                return _Attempt(error=error, action=Action.RETRY, sent_at=sent_at)
        stats.record_status(response.status_code)
        action = classify(response)
        if action is Action.PAUSE:
            stats.throttled += 1
        return _Attempt(response=response, action=action, sent_at=sent_at)

    def _throttle_delay(self, response: httpx.Response | None, throttles: int) -> float:
        retry_after = self._retry_after(response)
        # "Retry-After: 0" on a 429 is treated as absent: honoured literally, a throttling service would be
        # hammered in a tight loop until max_elapsed, since 429s do not use up attempts.
        return retry_after if retry_after else self.backoff_delay(throttles)

    def _retry_delay(self, response: httpx.Response | None, failures: int) -> float:
        retry_after = self._retry_after(response)  # a 503 may say when to come back
        return retry_after if retry_after is not None else self.backoff_delay(failures)

    def _retry_after(self, response: httpx.Response | None) -> float | None:
        if response is None:
            return None
        return parse_retry_after(response.headers.get("retry-after"), now=self.wall_clock())

    def _check_may_repeat(self, request: httpx.Request, attempt: _Attempt, idempotent: bool, stats: HttpStats) -> None:
        if idempotent or _certainly_not_applied(attempt):
            return
        stats.failures += 1
        what = type(attempt.error).__name__ if attempt.error is not None else "a transient error response"
        raise MaybeAppliedError(
            f"{request.method} may have been applied before it failed with {what}: check the target before retrying",
            details=_details(self.service, request, attempt),
        )

    def _check_time_left(
        self, request: httpx.Request, attempt: _Attempt, started: float, delay: float, stats: HttpStats
    ) -> None:
        elapsed = self.clock() - started
        if elapsed + delay <= self.max_elapsed:
            return
        raise self._give_up(request, attempt, stats, f"next try in {delay:.1f}s would exceed {self.max_elapsed:.0f}s")

    def _give_up(self, request: httpx.Request, attempt: _Attempt, stats: HttpStats, why: str) -> TransientError:
        stats.failures += 1
        details = _details(self.service, request, attempt)
        if attempt.action is Action.PAUSE:
            retry_after = self._retry_after(attempt.response)
            wait = timedelta(seconds=retry_after) if retry_after is not None else None
            return RateLimited(f"still throttled: {why}", retry_after=wait, details=details)
        cause = f" ({type(attempt.error).__name__}: {attempt.error})" if attempt.error is not None else ""
        return TransientError(f"{request.method} failed: {why}{cause}", details=details)

    def _log_retry(
        self, request: httpx.Request, attempt: _Attempt, delay: float, failures: int, throttles: int
    ) -> None:
        fields: dict[str, Any] = {
            "service": self.service,
            "method": request.method,
            "url": redact(str(request.url)),
            "headers": redact_headers(dict(request.headers)),
            "delay_s": round(delay, 3),
            "failures": failures,
            "throttles": throttles,
        }
        if attempt.response is not None:
            fields["status"] = attempt.response.status_code
        if attempt.error is not None:
            fields["error"] = redact(f"{type(attempt.error).__name__}: {attempt.error}")
        if attempt.action is Action.PAUSE:
            log.warning("http.throttled_pause", **fields)
        else:
            log.info("http.retry", **fields)


def _certainly_not_applied(attempt: _Attempt) -> bool:
    """True when the failed attempt cannot have changed anything at the service, so a POST may go again."""
    if attempt.error is not None:
        return isinstance(attempt.error, _NOT_SENT_ERRORS)
    response = attempt.response
    if response is None:
        return False
    if response.status_code == 408:  # RFC 9110: the server did not receive a complete request
        return True
    # A 503 with Retry-After is a gateway or throttle turning the request away before processing it (inferred).
    return response.status_code == 503 and "retry-after" in response.headers


def _fresh_copy(request: httpx.Request) -> httpx.Request:
    """A new request with the same method, URL, headers and (already read) body, for one more attempt."""
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.content,
        extensions=dict(request.extensions),
    )


def _details(service: str, request: httpx.Request, attempt: _Attempt) -> ApiErrorDetails:
    response = attempt.response
    if response is None:
        message = f"{type(attempt.error).__name__}: {attempt.error}" if attempt.error is not None else ""
        return ApiErrorDetails(service=service, message=message, method=request.method, url=str(request.url))
    request_id = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None)
    return ApiErrorDetails(
        service=service,
        status=response.status_code,
        message=response.text[:300],
        request_id=request_id,
        method=request.method,
        url=str(request.url),
    )
