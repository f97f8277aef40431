"""create_client: every timeout set, no silent redirects, CA bundles and headers passed through."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from crmbridge.http import create_client


@pytest.mark.anyio
async def test_every_timeout_is_set_by_default() -> None:
    async with create_client() as client:
        timeout = client.timeout
        assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)
        assert (timeout.connect, timeout.read) == (10.0, 30.0)


@pytest.mark.anyio
async def test_custom_timeouts_are_used() -> None:
    async with create_client(timeout=5.0, connect_timeout=2.0) as client:
        assert (client.timeout.connect, client.timeout.read, client.timeout.write, client.timeout.pool) == (
            2.0,
            5.0,
            5.0,
            5.0,
        )


@pytest.mark.parametrize(("timeout", "connect"), [(0.0, 10.0), (30.0, 0.0), (-1.0, 10.0)])
def test_a_client_without_a_real_timeout_is_refused(timeout: float, connect: float) -> None:
    with pytest.raises(ValueError, match="timeouts must be positive"):
        create_client(timeout=timeout, connect_timeout=connect)


@pytest.mark.anyio
async def test_redirects_are_not_followed_unless_asked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        return httpx.Response(200, headers={"x-seen-auth": request.headers.get("x-tenant", "")})

    async with create_client(
        base_url="https://api.test", transport=httpx.MockTransport(handler), headers={"x-tenant": "t1"}
    ) as client:
        assert (await client.get("/old")).status_code == 302
    async with create_client(
        base_url="https://api.test", transport=httpx.MockTransport(handler), follow_redirects=True
    ) as client:
        assert (await client.get("/old")).status_code == 200


@pytest.mark.anyio
async def test_base_url_and_default_headers_are_applied() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with create_client(
        base_url="https://org.crm.dynamics.com/api/data/v9.2/",
        headers={"OData-Version": "4.0"},
        transport=httpx.MockTransport(handler),
    ) as client:
        await client.get("contacts")
    assert str(seen[0].url) == "https://org.crm.dynamics.com/api/data/v9.2/contacts"
    assert seen[0].headers["OData-Version"] == "4.0"


def test_a_ca_bundle_path_becomes_a_verifying_ssl_context(tmp_path: Path) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    from crmbridge.http import _ssl_verification

    context = _ssl_verification(str(bundle))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    create_client(verify=str(bundle))  # accepted without a deprecation warning (warnings are errors)
