"""A tiny Starlette service behind FaultInjector, so a test can tell whether a request was applied."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crmbridge.emulators.faults import FaultConfig, FaultInjector, asgi_transport


class TinyService:
    """A Starlette app that stores what is POSTed, so a test can tell whether a request was applied."""

    def __init__(self, config: FaultConfig) -> None:
        self.items: list[dict[str, object]] = []
        self.app = FaultInjector(
            Starlette(
                routes=[
                    Route("/items", self.create, methods=["POST"]),
                    Route("/items", self.list_items, methods=["GET"]),
                    Route("/_emulator/stats", self.stats, methods=["GET"]),
                    Route("/_emulatorish", self.stats, methods=["GET"]),
                ]
            ),
            config,
        )

    async def create(self, request: Request) -> JSONResponse:
        item = {"id": len(self.items) + 1, **(await request.json())}
        self.items.append(item)
        return JSONResponse(item, status_code=201)

    async def list_items(self, request: Request) -> JSONResponse:
        return JSONResponse({"value": self.items, "note": "a body long enough to be cut in half"})

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse({"items": len(self.items)})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=asgi_transport(self.app), base_url="http://emulator.test")
