"""The Adobe I/O gateway in front of Campaign: the checks of campaign-standard-api.md §1.5, in §10.2's order."""

from __future__ import annotations

import time
from collections import deque

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crmbridge.emulators.campaign.errors import gateway_error
from crmbridge.emulators.campaign.ims import TokenInfo, verify_bearer

__all__ = ["RateLimiter", "check_gateway"]


class RateLimiter:
    """At most ``rate`` API requests in any one-second window (None = unlimited); ACS publishes no number."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._recent: deque[float] = deque()
        self.rejected = 0

    def allow(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate:
            self.rejected += 1
            return False
        self._recent.append(now)
        return True


def check_gateway(request: Request, organization: str) -> TokenInfo | Response:
    """Bearer, X-Api-Key, tenant, tenant binding, then the optional rate limit; a Response means refused."""
    context = request.app.state.campaign
    verdict = verify_bearer(request)
    if isinstance(verdict, Response):
        return verdict
    api_key = request.headers.get("x-api-key")
    if not api_key:
        return gateway_error(403, "403000", "Api Key is required")
    if api_key != verdict.client_id:
        return gateway_error(403, "403003", "Api Key is invalid")
    if organization not in context.settings.organizations:
        return JSONResponse(
            {"code": 500, "message": "Oops. Something went wrong. Check your URI and try again."}, status_code=500
        )
    if organization not in verdict.tenants:
        return gateway_error(403, "403023", "Profile is not valid")
    if not context.limiter.allow():
        # ACS documents no 429; this is the adobe.io gateway's (X3). Retry-After is inferred.
        return gateway_error(429, "429050", "Too many requests", headers={"Retry-After": "1"})
    return verdict
