"""Service protection limits of the Dataverse emulator (§7.1): per user, sliding window, three facets.

Requests and execution time are counted over a sliding window (default 300 s); concurrency fails at once.
Execution time is not measured but charged from a cost model, per request and per row read or written, so a
bulk write of 1,000 rows costs what 1,000 single writes cost and tests are deterministic.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from crmbridge.emulators.dynamics.protocol import ODataError

__all__ = ["LimitSettings", "ServiceProtection"]


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Defaults are the documented ones: 6,000 requests, 1,200,000 ms, 52 concurrent per 300 s (§7.1)."""

    enabled: bool = True
    window_s: float = 300.0
    max_requests: int = 6000
    max_execution_ms: float = 1_200_000.0
    max_concurrent: int = 52
    request_ms: float = 5.0  # cost model: every request
    operation_ms: float = 2.0  # every operation inside a $batch
    row_read_ms: float = 0.05  # every row returned
    row_write_ms: float = 10.0  # every row created, updated or deleted

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LimitSettings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown limit settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls(), name)
            if isinstance(default, bool):
                values[name] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            else:
                values[name] = type(default)(value)
        return cls(**values)

    @classmethod
    def parse(cls, text: str) -> LimitSettings:
        """``max_requests=100,window_s=10`` (the ``--limits`` CLI syntax)."""
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"limits must look like name=value,name=value; got {text!r}")
        return cls.from_mapping({k.strip(): v.strip() for k, v in pairs})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cost_ms(self, units: Mapping[str, int]) -> float:
        return (
            self.request_ms
            + units.get("operations", 0) * self.operation_ms
            + units.get("rows_read", 0) * self.row_read_ms
            + units.get("rows_written", 0) * self.row_write_ms
        )


class _UserWindow:
    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.charges: deque[tuple[float, float]] = deque()
        self.execution_ms = 0.0
        self.concurrent = 0


class ServiceProtection:
    """Admits or refuses a user's request; ``release`` charges what the request cost."""

    def __init__(self, settings: LimitSettings | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or LimitSettings()
        self.now = now
        self.users: dict[str, _UserWindow] = {}
        self.throttled: dict[str, int] = {}

    def configure(self, **changes: Any) -> None:
        self.settings = LimitSettings.from_mapping({**self.settings.as_dict(), **changes})

    def _window(self, user: str) -> _UserWindow:
        window = self.users.setdefault(user, _UserWindow())
        horizon = self.now() - self.settings.window_s
        while window.requests and window.requests[0] <= horizon:
            window.requests.popleft()
        while window.charges and window.charges[0][0] <= horizon:
            window.execution_ms -= window.charges.popleft()[1]
        return window

    def admit(self, user: str) -> None:
        """Count the request or raise the documented 429 (§7.1, §7.2)."""
        cfg = self.settings
        if not cfg.enabled:
            return
        window = self._window(user)
        if window.concurrent >= cfg.max_concurrent:
            # Retry-After for the concurrency facet is not documented; one second (inferred).
            raise self._throttle(
                "0x80072326", f"Number of concurrent requests exceeded the limit of {cfg.max_concurrent}.", 1
            )
        if len(window.requests) >= cfg.max_requests:
            wait = window.requests[0] + cfg.window_s - self.now()
            raise self._throttle(
                "0x80072322",
                f"Number of requests exceeded the limit of {cfg.max_requests} over time window of"
                f" {cfg.window_s:g} seconds.",
                wait,
            )
        if window.execution_ms >= cfg.max_execution_ms:
            raise self._throttle(
                "0x80072321",
                f"Combined execution time of incoming requests exceeded limit of {cfg.max_execution_ms:,.0f}"
                f" milliseconds over time window of {cfg.window_s:g} seconds. Decrease number of concurrent"
                " requests or reduce the duration of requests and try again later.",
                self._execution_wait(window),
            )
        window.requests.append(self.now())
        window.concurrent += 1

    def _execution_wait(self, window: _UserWindow) -> float:
        excess = window.execution_ms - self.settings.max_execution_ms
        for stamp, cost in window.charges:
            excess -= cost
            if excess < 0:
                return stamp + self.settings.window_s - self.now()
        return self.settings.window_s

    def _throttle(self, code: str, message: str, wait_s: float) -> ODataError:
        self.throttled[code] = self.throttled.get(code, 0) + 1
        retry_after = max(1, math.ceil(wait_s))
        return ODataError(429, code, message, {"Retry-After": str(retry_after)})

    def release(self, user: str, units: Mapping[str, int]) -> None:
        if not self.settings.enabled:
            return
        window = self._window(user)
        window.concurrent = max(0, window.concurrent - 1)
        cost = self.settings.cost_ms(units)
        window.charges.append((self.now(), cost))
        window.execution_ms += cost

    def remaining(self, user: str) -> dict[str, str]:
        """The debugging headers ``x-ms-ratelimit-*`` (§7.2)."""
        window = self._window(user)
        requests_left = max(0, self.settings.max_requests - len(window.requests))
        time_left = max(0.0, self.settings.max_execution_ms - window.execution_ms)
        return {
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(requests_left),
            "x-ms-ratelimit-time-remaining-xrm-requests": f"{time_left:.2f}",
        }

    def stats(self) -> dict[str, Any]:
        users = {
            user: {"requests": len(w.requests), "execution_ms": round(w.execution_ms, 2), "concurrent": w.concurrent}
            for user, w in ((u, self._window(u)) for u in list(self.users))
        }
        return {"settings": self.settings.as_dict(), "users": users, "throttled": dict(self.throttled)}
