"""Adobe I/O Events journal consumer: ACS email events as :class:`~crmbridge.records.EmailEvent` batches.

Follows adobe-io-events-and-exports.md §A: the cursor is the ``next`` link (stored by the caller only after a
batch is committed), the first read starts oldest / latest / ``seek`` back, a 204 says when to come back, a 410
means the stored position expired (raised as :class:`JournalGap` so the engine can backfill), and because the
journal delivers at least once and out of order, repeated events are dropped by natural key within a window
that travels with the cursor, so a restart does not forget it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from crmbridge.campaign.auth import ImsTokenProvider
from crmbridge.campaign.errors import error_details
from crmbridge.campaign.payload import PayloadMapping, UnmappedEvent, map_event
from crmbridge.exceptions import AuthenticationError, CheckpointExpired, ConfigError, FatalError, ProtocolError
from crmbridge.http import Action, AdaptiveLimiter, HttpStats, RetryPolicy, parse_retry_after
from crmbridge.records import EmailEvent

__all__ = [
    "RETENTION",
    "JournalBatch",
    "JournalConsumer",
    "JournalCursor",
    "JournalGap",
    "JournalLag",
    "JournalStart",
    "classify_journal_response",
]

RETENTION = timedelta(days=7)  # §A.8
DEFAULT_RETRY_AFTER_S = 10.0  # §A.10 step 4: the documented examples all say 10
JournalStart = Literal["oldest", "latest"] | timedelta


class JournalGap(CheckpointExpired):
    """The stored journal position expired (HTTP 410): events between it and the oldest kept one are lost here.

    Reset with :meth:`JournalConsumer.first_cursor` and backfill the gap from export files when configured.
    """

    def __init__(self, message: str, *, position_url: str) -> None:
        self.position_url = position_url
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class JournalCursor:
    """Where to read next, plus the recent event keys used to drop repeats; store it as :meth:`to_json`."""

    next_url: str
    recent_keys: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"next": self.next_url, "recent": list(self.recent_keys)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> JournalCursor:
        try:
            data = json.loads(text)
            return cls(str(data["next"]), tuple(str(key) for key in data.get("recent", ())))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the stored journal position is not readable: {exc}") from exc


@dataclass(frozen=True, slots=True)
class JournalLag:
    """How far behind the journal head the consumer is, against the 7-day retention."""

    behind: timedelta
    retention: timedelta = RETENTION
    alarm_after: timedelta = timedelta(days=3)

    @property
    def remaining(self) -> timedelta:
        return self.retention - self.behind

    @property
    def alarming(self) -> bool:
        return self.behind >= self.alarm_after


@dataclass(frozen=True, slots=True)
class JournalBatch:
    events: list[EmailEvent]
    cursor: JournalCursor  # commit it together with the batch's writes
    rejected: list[UnmappedEvent] = field(default_factory=list)
    duplicates: int = 0
    retry_after: float | None = None  # set when the journal had nothing new (204)
    lag: JournalLag | None = None

    @property
    def caught_up(self) -> bool:
        return self.retry_after is not None


def classify_journal_response(response: httpx.Response) -> Action:
    """The journal's reviewed table (§A.7, §A.10): 410 re-baselines, 401 re-authenticates, 4xx is config."""
    status = response.status_code
    if status in (200, 204):
        return Action.SUCCESS
    if status == 410:
        return Action.REBASELINE
    if status == 401:
        return Action.REAUTHENTICATE
    if status == 429:
        return Action.PAUSE
    if status == 408 or status >= 500:
        return Action.RETRY
    if status in (400, 403, 404):
        return Action.CONFIG_ERROR
    return Action.STOP


class JournalConsumer:
    """Reads one registration's journal. Holds no position itself: the caller stores :class:`JournalCursor`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: ImsTokenProvider,
        *,
        journal_url: str,
        ims_org_id: str,
        mapping: PayloadMapping,
        start: JournalStart = "latest",
        limit: int = 500,
        dedupe_window: int = 10_000,
        lag_alarm: timedelta = timedelta(days=3),
        retry: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._auth = auth
        self.journal_url = journal_url
        self._ims_org_id = ims_org_id
        self._mapping = mapping
        self._start = start
        self._limit = limit
        self._window = dedupe_window
        self._lag_alarm = lag_alarm
        self._retry = retry or RetryPolicy(service="io-events")
        self._limiter = limiter
        self._clock = clock
        self.stats = HttpStats()

    def first_cursor(self) -> JournalCursor:
        """Where a consumer without a stored position starts (§A.4, §A.10 step 2)."""
        params: dict[str, str] = {}
        if self._start == "latest":
            params["latest"] = "true"
        elif isinstance(self._start, timedelta):
            params["seek"] = _iso_duration_back(self._start)
        params["limit"] = str(self._limit)
        return JournalCursor(_with_query(self.journal_url, params))

    async def read_batch(self, cursor: JournalCursor | None) -> JournalBatch:
        """One GET of the journal from ``cursor`` (or the configured start)."""
        current = cursor or self.first_cursor()
        response = await self._get(current.next_url)
        if response.status_code == 204:
            next_url = _link(response, "next", current.next_url) or current.next_url
            wait = parse_retry_after(response.headers.get("retry-after"))
            return JournalBatch(
                events=[],
                cursor=JournalCursor(next_url, current.recent_keys),
                retry_after=DEFAULT_RETRY_AFTER_S if wait is None else wait,
                lag=JournalLag(timedelta(0), alarm_after=self._lag_alarm),
            )
        return self._batch_of(response, current)

    async def batches(
        self,
        cursor: JournalCursor | None,
        *,
        follow: bool = False,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncIterator[JournalBatch]:
        """Batches until the journal is caught up (the last one is the empty 204 batch); with ``follow``, forever,
        sleeping ``retry-after`` between empty reads."""
        pause = sleep or asyncio.sleep
        current = cursor
        while True:
            batch = await self.read_batch(current)
            yield batch
            current = batch.cursor
            if batch.caught_up:
                if not follow:
                    return
                await pause(DEFAULT_RETRY_AFTER_S if batch.retry_after is None else batch.retry_after)

    # --- internals ----------------------------------------------------------------------------------------

    async def _get(self, url: str) -> httpx.Response:
        for attempt in (1, 2):
            token = await self._auth.token()
            headers = {
                "Authorization": f"Bearer {token}",
                "x-api-key": self._auth.client_id,
                "x-ims-org-id": self._ims_org_id,
                "Accept": "application/json",
            }
            request = self._http.build_request("GET", url, headers=headers)
            response = await self._retry.send(
                self._http,
                request,
                classify=classify_journal_response,
                idempotent=True,
                limiter=self._limiter,
                stats=self.stats,
            )
            action = classify_journal_response(response)
            if action is Action.SUCCESS:
                return response
            if action is Action.REAUTHENTICATE and attempt == 1:
                self._auth.invalidate(token)
                continue
            raise _journal_error(response, action, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _batch_of(self, response: httpx.Response, current: JournalCursor) -> JournalBatch:
        try:
            body = response.json()
            entries = body["events"]
            last = body.get("_page", {}).get("last")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError("the journal answered 200 without an 'events' list") from exc
        recent = list(current.recent_keys)
        seen = set(recent)
        events: list[EmailEvent] = []
        rejected: list[UnmappedEvent] = []
        duplicates = 0
        newest_time: datetime | None = None
        for entry in entries:
            position = str(entry.get("position", ""))
            mapped = map_event(entry.get("event"), position, self._mapping)
            if isinstance(mapped, UnmappedEvent):
                rejected.append(mapped)
                continue
            key = _short_key(mapped.event_key)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            recent.append(key)
            events.append(mapped)
            # Events come unordered (§A.8): the newest one read says how far behind the head we are.
            newest_time = mapped.occurred_at if newest_time is None else max(newest_time, mapped.occurred_at)
        if len(recent) > self._window:
            recent = recent[-self._window :]
        next_url = _link(response, "next", current.next_url)
        if next_url is None:
            if not last:
                raise ProtocolError("the journal answered 200 without a next link or _page.last")
            next_url = _with_query(self.journal_url, {"since": str(last), "limit": str(self._limit)})
        lag = (
            JournalLag(max(timedelta(0), self._clock() - newest_time), alarm_after=self._lag_alarm)
            if newest_time
            else None
        )
        return JournalBatch(events, JournalCursor(next_url, tuple(recent)), rejected, duplicates, None, lag)


def _journal_error(response: httpx.Response, action: Action, url: str) -> Exception:
    details = error_details(response, service="io-events")
    if action is Action.REBASELINE:
        return JournalGap(
            f"the journal position expired (kept {RETENTION.days} days): events were lost between it and the "
            f"oldest kept one; restart from the configured start and backfill from exports. {details.describe()}",
            position_url=url,
        )
    if action is Action.REAUTHENTICATE:
        return AuthenticationError("Adobe I/O Events refused a fresh IMS token", details=details)
    if action is Action.CONFIG_ERROR:
        return ConfigError(
            "Adobe I/O Events refused the journal request: check events.source.journal.url (copy it from the "
            "registration), ims_org_id and that the credential has the I/O Management API (adobeio_api scope). "
            + details.describe()
        )
    return FatalError("Adobe I/O Events answered outside its documented protocol", details=details)


def _short_key(event_key: str) -> str:
    # 16 hex digits (64 bits) keep the stored window small; a collision inside one window is negligible.
    return hashlib.sha256(event_key.encode()).hexdigest()[:16]


def _link(response: httpx.Response, rel: str, base: str) -> str | None:
    """The target of a ``Link`` relation, resolved against the request URL (§A.6: targets are relative)."""
    for value in response.headers.get_list("link"):
        for part in _split_links(value):
            target, _, params = part.partition(";")
            target = target.strip()
            if target.startswith("<") and target.endswith(">") and f'rel="{rel}"' in params.replace(" ", ""):
                return urljoin(base, target[1:-1])
    return None


def _split_links(value: str) -> list[str]:
    """One header may carry several comma-separated links; commas inside ``<...>`` are not separators."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in value:
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params, safe=":")]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _iso_duration_back(back: timedelta) -> str:
    """``-P2DT3H`` style seek value (§A.4) for a positive look-back."""
    seconds = int(back.total_seconds())
    if seconds <= 0:
        raise ValueError("the journal start must look back a positive duration")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "-P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")
