"""Adobe IMS OAuth server-to-server tokens for Campaign and I/O Events, and the headers every call needs.

IMS has no refresh token: a new token is requested with the client credentials when the cached one is close to
expiry (campaign-standard-api.md §1.3). Token requests go through the service's own ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from crmbridge.exceptions import ApiErrorDetails, AuthenticationError, ConfigError, TransientError
from crmbridge.http import Action, RetryPolicy, json_body_cut_short
from crmbridge.redaction import register_secret

__all__ = ["DEFAULT_SCOPES", "IMS_TOKEN_PATH", "ImsCredentials", "ImsTokenProvider", "campaign_headers"]

IMS_TOKEN_PATH = "/ims/token/v3"  # noqa: S105 - a URL path, not a password

# The community scope list for an ACS credential (§1.3); a real credential shows its own list in Developer Console.
DEFAULT_SCOPES = (
    "openid",
    "AdobeID",
    "campaign_sdk",
    "additional_info.projectedProductContext",
    "campaign_config_server_general",
    "deliverability_service_general",
)

# Renew this long before expiry, so a token never expires between being read and being used by a slow request.
_RENEW_MARGIN_S = 300.0
# JWT-era exchanges answered expires_in in milliseconds; a value this large cannot be seconds (§1.4, inferred).
_MILLISECONDS_THRESHOLD = 1_000_000


@dataclass(frozen=True, slots=True)
class ImsCredentials:
    """An OAuth server-to-server credential from Adobe Developer Console."""

    client_id: str  # also the X-Api-Key of every call
    client_secret: str
    scopes: Sequence[str] = DEFAULT_SCOPES
    ims_url: str = "https://ims-na1.adobelogin.com"

    def __repr__(self) -> str:  # never show the secret
        return f"ImsCredentials(client_id={self.client_id!r}, ims_url={self.ims_url!r})"

    @property
    def token_url(self) -> str:
        return self.ims_url.rstrip("/") + IMS_TOKEN_PATH


class ImsTokenProvider:
    """Caches one bearer token per credential and renews it before it expires (or when told it was refused)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: ImsCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
        renew_margin: float = _RENEW_MARGIN_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._retry = retry or RetryPolicy(service="ims")
        self.credentials = credentials
        self._clock = clock
        self._renew_margin = renew_margin
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0
        register_secret(credentials.client_secret)

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    async def token(self) -> str:
        """A valid bearer token, fetched only when none is cached or the cached one is about to expire."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._renew_margin:
                self._token, lifetime = await self._fetch()
                self._expires_at = self._clock() + lifetime
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (the gateway refused it). With ``token``, only if it is still the cached one."""
        if token is None or token == self._token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        creds = self.credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "scope": ",".join(creds.scopes),
        }
        request = self._http.build_request("POST", creds.token_url, data=form)
        try:
            # Asking for a token twice is harmless, so a lost answer may simply be asked again.
            response = await self._retry.send(self._http, request, classify=_classify_ims, idempotent=True)
        except httpx.TransportError as exc:
            raise TransientError(f"Adobe IMS at {creds.token_url} is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 200:
            return self._parse_token(response)
        raise _ims_error(response)

    def _parse_token(self, response: httpx.Response) -> tuple[str, float]:
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 86399))
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError("Adobe IMS answered 200 without a readable access_token") from exc
        if lifetime > _MILLISECONDS_THRESHOLD:
            lifetime /= 1000.0
        register_secret(token)
        self.tokens_fetched += 1
        return token, lifetime


def _classify_ims(response: httpx.Response) -> Action:
    if response.status_code == 200:
        return Action.RETRY if json_body_cut_short(response) else Action.SUCCESS
    if response.status_code == 429:
        return Action.PAUSE
    if response.status_code >= 500 or response.status_code == 408:
        return Action.RETRY
    return Action.CONFIG_ERROR


def _ims_error(response: httpx.Response) -> Exception:
    """IMS answers OAuth-style errors: 400 invalid_client / invalid_scope with an error_description (§1.3)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("error", "")) if isinstance(body, dict) else ""
    text = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    details = ApiErrorDetails(
        service="ims",
        status=response.status_code,
        code=code or None,
        message=text or response.text[:300],
        request_id=response.headers.get("x-request-id"),
        method="POST",
        url=str(response.request.url) if response.request is not None else None,
    )
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError("Adobe IMS is unavailable; retry later", details=details)
    if code in {"invalid_client", "invalid_scope", "unauthorized_client"}:
        return ConfigError(
            "Adobe IMS refused the Campaign credential: check campaign.client_id, campaign.client_secret and "
            f"campaign.scopes against the OAuth server-to-server credential in Developer Console. {details.describe()}"
        )
    return AuthenticationError("Adobe IMS refused the token request", details=details)


def campaign_headers(token: str, client_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The four headers ACS requires on every call (§1.2), plus any extra ones."""
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Api-Key": client_id,
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
    }
    if extra:
        headers.update(extra)
    return headers
