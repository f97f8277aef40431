"""Bearer tokens for the Dataverse Web API: Entra ID client credentials through MSAL, refreshed before expiry.

MSAL keeps its own token cache (it treats a token as expired 5 minutes before ``expires_on``); on top of it we keep
the current token in memory so the hot path does not hop to a worker thread on every request, and refresh it a
margin before expiry. MSAL's calls are blocking (``requests``), so they run in a worker thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from crmbridge.exceptions import ApiErrorDetails, AuthenticationError, ConfigError, TransientError
from crmbridge.redaction import register_secret

__all__ = [
    "REFRESH_MARGIN_SECONDS",
    "ClientCertificate",
    "MsalTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
    "dataverse_scope",
]

# Refresh this long before expiry. Equal to MSAL's own "consider it expired" window, so when we ask MSAL again it
# does fetch a new token instead of handing back the cached one that is about to expire.
REFRESH_MARGIN_SECONDS = 300

# Entra error codes that mean the credentials themselves are wrong (not a passing outage).
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_request", "invalid_scope"})


class TokenProvider(Protocol):
    """What the Dataverse client needs from authentication."""

    async def token(self) -> str:
        """A bearer token that is valid for at least a little while longer."""
        ...

    def invalidate(self) -> None:
        """Forget the current token (the service refused it): the next :meth:`token` fetches a new one."""
        ...

    def close(self) -> None:
        """Release connections to the authority, if any."""
        ...


def dataverse_scope(org_url: str) -> str:
    """The client-credentials scope of an org: ``https://ORG.crm.dynamics.com/.default``."""
    return org_url.rstrip("/") + "/.default"


class StaticTokenProvider:
    """A fixed token. For unit tests against ``httpx.MockTransport`` only; real runs go through MSAL."""

    def __init__(self, token: str = "static-test-token") -> None:  # noqa: S107 - a test fixture, not a secret
        self._token = token
        self.invalidations = 0

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        self.invalidations += 1

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A certificate credential: the PEM private key and the certificate registered on the app."""

    private_key_pem: str
    certificate_pem: str
    passphrase: str | None = None
    expected_thumbprint: str | None = None  # as configured; when given it must match the certificate

    @classmethod
    def from_pem_file(
        cls, path: Path, passphrase: str | None = None, *, thumbprint: str | None = None
    ) -> ClientCertificate:
        """One PEM file holding both the private key and the certificate (``openssl pkcs12 -nodes`` output)."""
        try:
            text = path.read_text(encoding="ascii")
        except OSError as exc:
            raise ConfigError(f"cannot read the Dataverse client certificate {path}: {exc.strerror}") from exc
        if "PRIVATE KEY-----" not in text or "BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(
                f"{path} must contain both the private key and the certificate in PEM format "
                "(convert a .pfx with: openssl pkcs12 -in app.pfx -out app.pem -nodes)"
            )
        certificate = cls(text, text, passphrase, thumbprint.upper() if thumbprint else None)
        if certificate.expected_thumbprint and certificate.expected_thumbprint != certificate.thumbprint:
            raise ConfigError(
                f"the certificate in {path} has thumbprint {certificate.thumbprint}, not the configured "
                f"{certificate.expected_thumbprint}: point `certificate.path` at the certificate uploaded to the app"
            )
        return certificate

    @property
    def thumbprint(self) -> str:
        """SHA-1 thumbprint of the certificate, the form Entra ID and MSAL identify it by."""
        certificate = x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))
        return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - SHA-1 is what x5t is defined as

    def as_msal_credential(self) -> dict[str, str]:
        credential = {"private_key": self.private_key_pem, "thumbprint": self.thumbprint}
        if self.passphrase:
            credential["passphrase"] = self.passphrase
        return credential


AppFactory = Callable[[], Any]


class MsalTokenProvider:
    """Client-credentials tokens for one Dataverse org, from MSAL's ``ConfidentialClientApplication``.

    Only one acquisition runs at a time; concurrent callers wait for it and share the result.
    """

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        credential: str | ClientCertificate,
        scope: str,
        verify: bool | str = True,
        proxy: str | None = None,
        timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        http_client: Any = None,
    ) -> None:
        if isinstance(credential, str):
            register_secret(credential)
            msal_credential: str | dict[str, str] = credential
        else:
            msal_credential = credential.as_msal_credential()
        self._scope = scope
        self._authority = authority
        self._clock = clock
        self._cache = msal.TokenCache()
        # The app is built lazily in the worker thread: building it may already fetch the OpenID discovery document.
        self._app_kwargs: dict[str, Any] = {
            "client_id": client_id,
            "client_credential": msal_credential,
            "authority": authority,
            "token_cache": self._cache,
            "verify": verify,
            "proxies": {"https": proxy, "http": proxy} if proxy else None,
            "timeout": timeout_seconds,
            # Authorities outside the public cloud (sovereign clouds, the emulator) are not in Microsoft's list.
            "instance_discovery": authority.startswith("https://login.microsoftonline.com/"),
        }
        # MSAL's HTTP seam: an object with requests-like get/post. Ours by default, so close() can release it.
        self._owned_session = (
            _session_that_keeps_verify(verify, proxy, timeout_seconds) if http_client is None else None
        )
        self._app_kwargs["http_client"] = http_client if http_client is not None else self._owned_session
        self._app: Any = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()
        self.acquisitions = 0

    async def token(self) -> str:
        if self._is_fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._is_fresh():  # another task may have refreshed while we waited
                result = await anyio.to_thread.run_sync(self._acquire_blocking)
                self._remember(result)
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0
        # MSAL does not allow force_refresh for client credentials; removing its cached access tokens has that effect.
        for entry in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._cache.remove_at(entry)

    def close(self) -> None:
        """Release MSAL's connections to the authority."""
        if self._owned_session is not None:
            self._owned_session.close()

    def _is_fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - REFRESH_MARGIN_SECONDS

    def _acquire_blocking(self) -> Mapping[str, Any]:
        try:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(**self._app_kwargs)
            result: Mapping[str, Any] = self._app.acquire_token_for_client(scopes=[self._scope])
        except ValueError as exc:  # MSAL's own validation: bad authority URL, unreadable private key, ...
            raise ConfigError(f"Dataverse authentication is misconfigured ({self._authority}): {exc}") from exc
        except OSError as exc:  # requests' ConnectionError and friends derive from OSError
            raise TransientError(f"cannot reach the Entra ID authority {self._authority}: {exc}") from exc
        self.acquisitions += 1
        return result

    def _remember(self, result: Mapping[str, Any]) -> None:
        token = result.get("access_token")
        if not isinstance(token, str):
            raise _token_error(result, self._authority)
        register_secret(token)
        self._token = token
        self._expires_at = self._clock() + float(result.get("expires_in", 3599))


def _session_that_keeps_verify(verify: bool | str, proxy: str | None, timeout_seconds: float) -> Any:
    """A requests session for MSAL that really uses ``verify`` (MSAL builds the same one, minus that).

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's ``verify`` (many images set them), so a
    configured ``ca_bundle`` would be ignored; passing ``verify`` on every request keeps it.
    """
    import requests  # MSAL's own HTTP library, installed with it

    session = requests.Session()
    session.proxies = {"https": proxy, "http": proxy} if proxy else {}
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=verify, timeout=timeout_seconds
    )
    return session


def _token_error(result: Mapping[str, Any], authority: str) -> Exception:
    code = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", ""))
    details = ApiErrorDetails(
        service="entra",
        code=code,
        message=description,
        request_id=str(result["correlation_id"]) if result.get("correlation_id") else None,
        url=authority,
    )
    if code in _CREDENTIAL_ERRORS:
        return AuthenticationError(
            "Entra ID refused the Dataverse app credentials: check tenant_id, client_id and the client secret "
            "or certificate of the app registration",
            details=details,
        )
    return TransientError("Entra ID did not issue a token", details=details)
