"""Adobe IMS: the OAuth server-to-server token endpoint and the bearer check reused by every emulated API.

``POST /ims/token/v3`` follows campaign-standard-api.md §1.3 (form or query parameters, ``expires_in`` in
seconds); ``verify_bearer`` gives the gateway answers of §1.5 for a missing or invalid token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmbridge.emulators.campaign.errors import gateway_error
from crmbridge.emulators.campaign.settings import Clock, ImsClientConfig

__all__ = ["TokenInfo", "TokenStore", "ims_routes", "verify_bearer"]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    client_id: str
    expires_at: datetime
    scopes: tuple[str, ...]
    ims_org: str
    tenants: tuple[str, ...]


class TokenStore:
    """Issued access tokens (in memory: a restarted emulator forgets them, clients re-authenticate)."""

    def __init__(self, clients: tuple[ImsClientConfig, ...], clock: Clock, lifetime_s: int) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.clock = clock
        self.lifetime_s = lifetime_s
        self._tokens: dict[str, TokenInfo] = {}

    def issue(self, client: ImsClientConfig, scopes: tuple[str, ...]) -> str:
        token = "eyJ" + secrets.token_urlsafe(96)  # IMS tokens are JWTs; the shape is all a client may see
        expires = self.clock.now() + timedelta(seconds=self.lifetime_s)
        self._tokens[token] = TokenInfo(client.client_id, expires, scopes, client.ims_org, client.tenants)
        return token

    def lookup(self, token: str) -> TokenInfo | None:
        info = self._tokens.get(token)
        if info is None or info.expires_at <= self.clock.now():
            return None
        return info


def _ims_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def _token_endpoint(request: Request) -> Response:
    store: TokenStore = request.app.state.campaign.ims
    form = await request.form()
    params = {**dict(request.query_params), **{k: str(v) for k, v in form.items()}}  # body or query (§1.3)
    if params.get("grant_type") != "client_credentials":
        # Only client credentials exist for server-to-server; the description text is inferred.
        return _ims_error("unsupported_grant_type", "unsupported grant_type parameter")
    client = store.clients.get(params.get("client_id", ""))
    if client is None:
        return _ims_error("invalid_client", "invalid client_id parameter")
    if not secrets.compare_digest(params.get("client_secret", ""), client.client_secret):
        return _ims_error("invalid_client", "invalid client_secret parameter")
    requested = tuple(s.strip() for s in params.get("scope", "").split(",") if s.strip()) or client.scopes
    if not set(requested) <= set(client.scopes):
        return _ims_error("invalid_scope", "Invalid scope")  # (inferred wording, codes from X1)
    token = store.issue(client, requested)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": store.lifetime_s})


def ims_routes() -> list[Route]:
    return [Route("/ims/token/v3", _token_endpoint, methods=["POST"])]


def verify_bearer(request: Request) -> TokenInfo | Response:
    """The IMS part of the Adobe I/O gateway: 403010 without a bearer, 401013 for an unknown or expired one."""
    store: TokenStore = request.app.state.campaign.ims
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return gateway_error(403, "403010", "Oauth token is missing")
    info = store.lookup(token.strip())
    if info is None:
        return gateway_error(401, "401013", "Oauth token is not valid")
    return info
