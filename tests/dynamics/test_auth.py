"""MSAL client-credentials tokens: cached, refreshed before expiry, re-fetched after a refusal, errors without secrets.

MSAL is exercised for real; only its HTTP seam (``http_client``) is a fake Entra ID that answers like the v2.0
endpoints (OpenID discovery document and token endpoint).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import pytest
import trustme

from crmbridge.dynamics.auth import (
    REFRESH_MARGIN_SECONDS,
    ClientCertificate,
    MsalTokenProvider,
    StaticTokenProvider,
    dataverse_scope,
)
from crmbridge.exceptions import AuthenticationError, ConfigError

AUTHORITY = "https://login.example.test/tenant-1"
SECRET = "s3cret-value-that-must-not-leak"


@dataclass
class _Response:
    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


@dataclass
class FakeEntra:
    """Answers MSAL's discovery and token requests; records every token request's form fields."""

    expires_in: int = 3599
    error: str | None = None
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> _Response:
        assert url == f"{AUTHORITY}/v2.0/.well-known/openid-configuration"
        document = {
            "token_endpoint": f"{AUTHORITY}/oauth2/v2.0/token",
            "authorization_endpoint": f"{AUTHORITY}/oauth2/v2.0/authorize",
            "issuer": f"{AUTHORITY}/v2.0",
        }
        return _Response(200, json.dumps(document))

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> _Response:
        assert url == f"{AUTHORITY}/oauth2/v2.0/token"
        form = parse_qs(data) if isinstance(data, str) else {k: [v] for k, v in data.items()}
        self.token_requests.append(form)
        if self.error:
            body = {"error": self.error, "error_description": f"AADSTS7000215: Invalid client secret {SECRET}."}
            return _Response(401, json.dumps(body))
        number = len(self.token_requests)
        body = {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": f"token-{number}"}
        return _Response(200, json.dumps(body))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _provider(entra: FakeEntra, clock: Clock, credential: str | ClientCertificate = SECRET) -> MsalTokenProvider:
    return MsalTokenProvider(
        authority=AUTHORITY,
        client_id="app-1",
        credential=credential,
        scope=dataverse_scope("https://org.crm.dynamics.com/"),
        clock=clock,
        http_client=entra,
    )


@pytest.mark.anyio
async def test_token_is_requested_once_and_reused_while_fresh() -> None:
    entra, clock = FakeEntra(), Clock()
    provider = _provider(entra, clock)

    first = await provider.token()
    clock.now += 1800
    second = await provider.token()

    assert first == second == "token-1"
    assert len(entra.token_requests) == 1
    request = entra.token_requests[0]
    assert request["grant_type"] == ["client_credentials"]
    assert request["scope"] == ["https://org.crm.dynamics.com/.default"]


@pytest.mark.anyio
async def test_msal_is_asked_again_once_the_token_is_inside_the_refresh_margin() -> None:
    entra, clock = FakeEntra(expires_in=3600), Clock()
    provider = _provider(entra, clock)
    await provider.token()

    clock.now += 3600 - REFRESH_MARGIN_SECONDS - 1
    await provider.token()
    assert provider.acquisitions == 1
    clock.now += 2
    await provider.token()

    # MSAL runs on the real clock, for which the token is still young: its own cache answers.
    assert provider.acquisitions == 2
    assert len(entra.token_requests) == 1


@pytest.mark.anyio
async def test_token_about_to_expire_is_fetched_again_from_entra() -> None:
    # 250 s left is inside both our margin and MSAL's own 5-minute window, so MSAL must go back to Entra.
    entra, clock = FakeEntra(expires_in=250), Clock()
    provider = _provider(entra, clock)

    assert await provider.token() == "token-1"
    assert await provider.token() == "token-2"
    assert len(entra.token_requests) == 2


@pytest.mark.anyio
async def test_invalidated_token_is_fetched_again_from_entra() -> None:
    entra, clock = FakeEntra(), Clock()
    provider = _provider(entra, clock)
    await provider.token()

    provider.invalidate()

    assert await provider.token() == "token-2"


@pytest.mark.anyio
async def test_rejected_credentials_raise_authentication_error_without_the_secret() -> None:
    provider = _provider(FakeEntra(error="invalid_client"), Clock())

    with pytest.raises(AuthenticationError) as caught:
        await provider.token()

    assert "invalid_client" in str(caught.value)
    assert "client secret or certificate" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.anyio
async def test_certificate_credential_sends_a_signed_client_assertion() -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("crmbridge-app", key_type=trustme.KeyType.RSA)
    pem = leaf.private_key_pem.bytes().decode() + leaf.cert_chain_pems[0].bytes().decode()
    certificate = ClientCertificate(private_key_pem=pem, certificate_pem=pem)
    entra = FakeEntra()

    await _provider(entra, Clock(), credential=certificate).token()

    form = entra.token_requests[0]
    assert "client_secret" not in form
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assertion = form["client_assertion"][0]
    assert (assertion.decode() if isinstance(assertion, bytes) else assertion).count(".") == 2
    assert len(certificate.thumbprint) == 40


@pytest.mark.anyio
async def test_static_provider_counts_invalidations_for_reauthentication_tests() -> None:
    provider = StaticTokenProvider("abc")
    provider.invalidate()
    assert await provider.token() == "abc"
    assert provider.invalidations == 1


def test_certificate_file_that_does_not_match_the_configured_thumbprint_is_a_config_error(tmp_path: Path) -> None:
    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("crmbridge-app", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "app.pem"
    pem.write_bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())

    with pytest.raises(ConfigError, match="thumbprint"):
        ClientCertificate.from_pem_file(pem, thumbprint="0" * 40)
    certificate = ClientCertificate.from_pem_file(pem)
    assert ClientCertificate.from_pem_file(pem, thumbprint=certificate.thumbprint.lower()).expected_thumbprint


def test_certificate_file_without_a_private_key_is_a_config_error(tmp_path: Path) -> None:
    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("crmbridge-app", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "cert-only.pem"
    pem.write_bytes(leaf.cert_chain_pems[0].bytes())

    with pytest.raises(ConfigError, match="private key and the certificate"):
        ClientCertificate.from_pem_file(pem)


@pytest.mark.anyio
async def test_msal_network_calls_do_not_block_the_event_loop() -> None:
    class SlowEntra(FakeEntra):
        def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any) -> _Response:
            time.sleep(0.3)  # a blocking requests call, as MSAL makes
            return super().post(url, params, data, headers, **kw)

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await _provider(SlowEntra(), Clock()).token()
        group.cancel_scope.cancel()

    assert ticks >= 3  # a blocked loop would have ticked once; it kept running while MSAL waited
