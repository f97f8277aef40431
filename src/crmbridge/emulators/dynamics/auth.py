"""Entra ID side of the Dataverse emulator: client-credentials token endpoint, OpenID discovery, bearer checks.

Tokens are opaque random strings that expire on the org's clock (advancing the clock expires them, as time
would). A client that is configured but not an application user gets tokens and then a 403 from the data API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crmbridge.dynamics.odata import error_body
from crmbridge.emulators.dynamics.service import Clock

__all__ = ["AuthFailure", "ClientApp", "TokenIssuer", "discovery_document", "load_clients"]


@dataclass(frozen=True, slots=True)
class ClientApp:
    client_id: str
    client_secret: str
    tenant: str = "emulator-tenant"
    application_user: bool = True  # False: the app exists in Entra ID but not as a user of the org


def load_clients(path: str | Path) -> list[ClientApp]:
    """A JSON list of ``{"client_id", "client_secret", "tenant", "application_user"}`` objects."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of client objects")
    return [ClientApp(**item) for item in data]


class AuthFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class _Token:
    client: ClientApp
    expires_at: datetime


def _entra_error(status: int, error: str, description: str) -> AuthFailure:
    # Entra ID error shape (OAuth 2.0 error + AADSTS description); the exact descriptions are (inferred).
    return AuthFailure(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[6 : description.index(":")])],
        },
    )


class TokenIssuer:
    def __init__(self, clients: Sequence[ClientApp], clock: Clock, lifetime_s: int = 3599) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.tokens: dict[str, _Token] = {}

    def issue(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        """The §1.2 token response, or an :class:`AuthFailure` with an Entra ID style error."""
        if form.get("grant_type") != "client_credentials":
            raise _entra_error(
                400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type."
            )
        client = self.clients.get(form.get("client_id", ""))
        if client is None or client.tenant != tenant:
            raise _entra_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id', '')}' was not found in the"
                f" directory '{tenant}'.",
            )
        if not secrets.compare_digest(form.get("client_secret", ""), client.client_secret):
            raise _entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if not form.get("scope", "").endswith("/.default"):
            raise _entra_error(
                400,
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a"
                " scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        token = secrets.token_urlsafe(32)
        self.tokens[token] = _Token(client, self.clock.now() + timedelta(seconds=self.lifetime_s))
        return {
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "ext_expires_in": self.lifetime_s,
            "access_token": token,
        }

    def authenticate(self, authorization: str | None, authorize_uri: str) -> ClientApp:
        """The client behind a bearer token; 401 when missing/bad/expired, 403 when not an application user."""
        # Real 401s carry WWW-Authenticate with the authorization URI; the body is undocumented (inferred).
        challenge = {"WWW-Authenticate": f"Bearer authorization_uri={authorize_uri}"}
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise AuthFailure(
                401, error_body("0x80072560", "MissingCrmAuthenticationToken: Bearer token is required."), challenge
            )
        token = self.tokens.get(value.strip())
        if token is None:
            raise AuthFailure(
                401, error_body("0x80072560", "InvalidAuthTicket: The access token is not valid."), challenge
            )
        if token.expires_at <= self.clock.now():
            raise AuthFailure(
                401, error_body("0x80072560", "ExpiredAuthTicket: The access token has expired."), challenge
            )
        if not token.client.application_user:
            # Message from §1.1 (community); code (inferred).
            raise AuthFailure(403, error_body("0x80072560", "The user is not a member of the organization."))
        return token.client


def discovery_document(issuer_base: str, tenant: str) -> dict[str, Any]:
    """OpenID configuration at ``/{tenant}/v2.0/.well-known/openid-configuration`` (what MSAL reads first)."""
    root = f"{issuer_base}/{tenant}"
    return {
        "issuer": f"{root}/v2.0",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
    }
