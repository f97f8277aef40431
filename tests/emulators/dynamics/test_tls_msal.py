"""§1 over a real socket: the emulator in --tls mode, a token acquired with MSAL, data read with httpx."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msal
import pytest
import requests
import uvicorn

from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings, create_app
from crmbridge.emulators.dynamics.tls import TlsFiles, make_tls_files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TlsFiles]]:
    folder = tmp_path_factory.mktemp("tls")
    files = make_tls_files(folder)
    app = create_app(DynamicsEmulatorSettings(db_path=str(Path(folder) / "org.db"), seed_contacts=25))
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(files.cert_path),
        ssl_keyfile=str(files.key_path),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"https://127.0.0.1:{port}", files
    server.should_exit = True
    thread.join(timeout=10)


def test_msal_acquires_a_token_against_the_tls_emulator(tls_server: tuple[str, TlsFiles]) -> None:
    origin, files = tls_server
    # requests lets REQUESTS_CA_BUNDLE override MSAL's verify=; a session that ignores the environment does not.
    session = requests.Session()
    session.trust_env = False
    session.verify = str(files.ca_path)
    application = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT.client_id,
        client_credential=DEFAULT_CLIENT.client_secret,
        authority=f"{origin}/{DEFAULT_CLIENT.tenant}",
        instance_discovery=False,
        http_client=session,
    )
    result = application.acquire_token_for_client(scopes=[f"{origin}/.default"])
    assert "access_token" in result, result
    context = ssl.create_default_context(cafile=str(files.ca_path))
    headers = {
        "Authorization": f"Bearer {result['access_token']}",
        "Accept": "application/json",
        "OData-Version": "4.0",
    }
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(f"{origin}/api/data/v9.2/contacts?$select=fullname", headers=headers)
    assert response.status_code == 200
    assert len(response.json()["value"]) == 25
    assert response.json()["@odata.context"].startswith(f"{origin}/api/data/v9.2/$metadata#contacts")


def test_plain_http_is_not_served_in_tls_mode(tls_server: tuple[str, TlsFiles]) -> None:
    origin, _files = tls_server
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get(origin.replace("https://", "http://") + "/api/data/v9.2/")
