"""The Dataverse emulator as one Starlette app: Entra ID endpoints, the data API, and ``/_emulator/`` operator routes.

``/api/data/v9.2/`` is wrapped, outermost first, by auth + service protection limits (so a request holds its
concurrency slot during injected latency, as a slow real request would), then by the shared fault injector.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from crmbridge.emulators.dynamics.auth import AuthFailure, TokenIssuer, discovery_document
from crmbridge.emulators.dynamics.batch import execute_batch
from crmbridge.emulators.dynamics.limits import ServiceProtection
from crmbridge.emulators.dynamics.operator import operator_routes
from crmbridge.emulators.dynamics.protocol import API_PREFIX, ApiRequest, ApiResponse, ODataError
from crmbridge.emulators.dynamics.router import handle
from crmbridge.emulators.dynamics.seed import seed
from crmbridge.emulators.dynamics.service import Org
from crmbridge.emulators.dynamics.settings import DynamicsEmulatorSettings
from crmbridge.emulators.dynamics.storage import Storage
from crmbridge.emulators.faults import FaultInjector

__all__ = ["DynamicsEmulator", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DynamicsEmulator:
    """The parts of one running emulator, reachable from tests and operator routes as ``app.state.emulator``."""

    def __init__(self, settings: DynamicsEmulatorSettings) -> None:
        self.settings = settings
        self.org = Org(
            Storage(settings.db_path), expire_change_tracking_in_days=settings.expire_change_tracking_in_days
        )
        self.issuer = TokenIssuer(settings.clients, self.org.clock, settings.token_lifetime_s)
        self.limits = ServiceProtection(settings.limits)
        self.faults = FaultInjector(_DataApi(self), settings.faults)
        self.gate = _Gate(self, self.faults)
        if settings.seed_contacts and not self.org.storage.counts()["contact"]:
            seed(self.org, contacts=settings.seed_contacts, seed_value=settings.seed)

    @property
    def tenant(self) -> str:
        return self.settings.clients[0].tenant if self.settings.clients else "emulator-tenant"


def _origin(scope: Scope) -> str:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    server = scope.get("server") or ("127.0.0.1", 80)
    host = headers.get("host") or f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


async def _send(send: Send, response: ApiResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class _Gate:
    """Bearer token check, then service protection limits; charges the request's cost when it ends."""

    def __init__(self, emulator: DynamicsEmulator, inner: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.emulator = emulator
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = _origin(scope)
        try:
            client = self.emulator.issuer.authenticate(
                headers.get("authorization"), f"{origin}/{self.emulator.tenant}/oauth2/authorize"
            )
        except AuthFailure as failure:
            body = json.dumps(failure.body).encode()
            extra = list(failure.headers.items())
            await _send(send, ApiResponse(failure.status, [("Content-Type", "application/json"), *extra], body))
            return
        limits = self.emulator.limits
        try:
            limits.admit(client.client_id)
        except ODataError as error:
            response = error.response()
            response.headers.append(("OData-Version", "4.0"))
            await _send(send, response)
            return
        costs: dict[str, int] = {}
        scope["crmbridge.user"], scope["crmbridge.costs"] = client.client_id, costs
        try:
            await self.inner(scope, receive, send)
        finally:
            limits.release(client.client_id, costs)


def _joined_headers(scope: Scope) -> dict[str, str]:
    """Repeated headers joined with commas: docs send two ``Prefer`` lines as often as one (§2.4)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


class _DataApi:
    """ASGI adapter from a raw request to :func:`router.handle`."""

    def __init__(self, emulator: DynamicsEmulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        path = path.split(API_PREFIX, 1)[1] if API_PREFIX in path else ""
        req = ApiRequest(
            method=scope["method"],
            path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=_joined_headers(scope),
            body=bytes(body),
            base_url=f"{_origin(scope)}{API_PREFIX}",
            user=str(scope.get("crmbridge.user", "")),
        )
        response = handle(self.emulator.org, req, batch=execute_batch)
        costs = scope.get("crmbridge.costs")
        if isinstance(costs, dict):
            costs.update(req.cost_units)
        response.headers += list(self.emulator.limits.remaining(req.user).items()) if req.user else []
        await _send(send, response)


def create_app(settings: DynamicsEmulatorSettings | None = None) -> Starlette:
    """A Dataverse emulator app; mount it in-process (httpx.ASGITransport) or serve it with uvicorn."""
    emulator = DynamicsEmulator(settings or DynamicsEmulatorSettings())

    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        try:
            body = emulator.issuer.issue(request.path_params["tenant"], {k: str(v) for k, v in form.items()})
        except AuthFailure as failure:
            return JSONResponse(failure.body, status_code=failure.status)
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache"})

    async def openid_configuration(request: Request) -> JSONResponse:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse(discovery_document(origin, request.path_params["tenant"]))

    app = Starlette(
        routes=[
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
            Mount("/_emulator", routes=operator_routes(emulator)),
            Mount("/api/data/v9.2", app=emulator.gate),
        ]
    )
    app.state.emulator = emulator
    return app
