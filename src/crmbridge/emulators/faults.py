"""Fault injection shared by both emulators: latency, 429 bursts, 5xx, dropped connections, broken bodies.

``FaultInjector`` is ASGI middleware wrapped around an emulator's real API routes (``/_emulator/`` operator
routes are never faulted). Faults are drawn from a seeded random generator so a failing test can be replayed.
A dropped connection can happen *before* the request reaches the emulator (nothing applied) or *after* the
emulator applied it (the write happened, the response is lost), which is what idempotency tests need.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import httpx

__all__ = ["DroppedConnection", "FaultConfig", "FaultInjector", "asgi_transport"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DroppedConnection(Exception):
    """Raised inside the server to abort the connection without a complete response."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Rates are probabilities per API request (0.0 to 1.0). All off by default."""

    seed: int = 0
    latency_ms: float = 0.0  # added to every API request (real services answer in tens to hundreds of ms)
    latency_jitter_ms: float = 0.0  # uniform extra latency in [0, jitter]
    spike_rate: float = 0.0  # share of requests that get `spike_ms` more
    spike_ms: float = 2000.0
    throttle_rate: float = 0.0  # 429 responses
    retry_after_s: float | None = 1.0  # Retry-After of injected 429s; None sends no header
    error_rate: float = 0.0  # 503 responses, nothing applied
    drop_before_rate: float = 0.0  # connection dropped before the emulator sees the request
    drop_after_rate: float = 0.0  # request applied, then the connection dropped (response lost)
    malformed_rate: float = 0.0  # response body truncated mid-JSON (status 200 kept)

    @classmethod
    def from_mapping(cls, data: MutableMapping[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        config = cls(**data)
        for name in known:
            value = getattr(config, name)
            if name.endswith("_rate") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"fault setting {name} must be between 0 and 1, got {value}")
        return config

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """ASGI middleware that applies a :class:`FaultConfig` to API requests; reconfigurable at run time."""

    def __init__(self, app: ASGIApp, config: FaultConfig | None = None, *, exempt_prefix: str = "/_emulator") -> None:
        self.app = app
        self.exempt_prefix = exempt_prefix
        self.config = config or FaultConfig()
        self._random = random.Random(self.config.seed)
        self.injected: dict[str, int] = {}

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)

    def update(self, **changes: Any) -> None:
        self.configure(replace(self.config, **changes))

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _is_exempt(self, path: str) -> bool:
        return path == self.exempt_prefix or path.startswith(self.exempt_prefix.rstrip("/") + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        cfg = self.config
        delay = cfg.latency_ms + (self._random.uniform(0, cfg.latency_jitter_ms) if cfg.latency_jitter_ms else 0)
        if self._roll(cfg.spike_rate):
            self._count("spike")
            delay += cfg.spike_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if self._roll(cfg.drop_before_rate):
            self._count("drop_before")
            await _abort(send, "fault injection: connection dropped before the request was applied")
        if self._roll(cfg.throttle_rate):
            self._count("throttle")
            headers = {"Retry-After": _delta_seconds(cfg.retry_after_s)} if cfg.retry_after_s is not None else {}
            await _send_json(send, 429, _error_body(429, "Too many requests (injected fault)"), headers)
            return
        if self._roll(cfg.error_rate):
            self._count("error")
            await _send_json(send, 503, _error_body(503, "Service unavailable (injected fault)"), {})
            return
        drop_after = self._roll(cfg.drop_after_rate)
        malformed = not drop_after and self._roll(cfg.malformed_rate)
        if not drop_after and not malformed:
            await self.app(scope, receive, send)
            return
        # Run the real request to completion (it is applied), then lose or mangle its response.
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        if drop_after:
            self._count("drop_after")
            await _abort(send, "fault injection: request applied, then the connection was dropped")
        self._count("malformed")
        await _replay_truncated(captured, send)


async def _abort(send: Send, reason: str) -> None:
    """Break the connection mid-response, so every client sees a transport error and never a status to act on.

    Raising before ``http.response.start`` is not enough over a socket: uvicorn then answers a tidy 500. Once the
    head promising one body byte is out, uvicorn can only close the connection, and the client reads a truncated
    response (httpx: ``RemoteProtocolError``).
    """
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
    raise DroppedConnection(reason)


def _delta_seconds(seconds: float) -> str:
    # RFC 9110 Retry-After is a non-negative integer of seconds: "1.5" or "1e+03" would be garbage to a client.
    return str(max(0, math.ceil(seconds)))


class _DropAwareASGITransport(httpx.ASGITransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError(f"Server disconnected without a complete response ({exc})") from exc
        except BaseExceptionGroup as group:  # Starlette middleware may wrap the app's exception in a group
            drops, _rest = group.split(DroppedConnection)
            if drops is None:
                raise
            raise httpx.RemoteProtocolError("Server disconnected without a complete response") from group


def asgi_transport(app: ASGIApp) -> httpx.AsyncBaseTransport:
    """An in-process transport to ``app`` on which dropped connections look as they do over a socket.

    ``httpx.ASGITransport`` would hand the middleware's :class:`DroppedConnection` to the client as is; uvicorn
    aborts the connection instead, which an httpx client sees as ``httpx.RemoteProtocolError``.
    """
    return _DropAwareASGITransport(app=app)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": str(status), "message": message}}


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def _replay_truncated(captured: list[Message], send: Send) -> None:
    start = next(m for m in captured if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
    truncated = body[: max(1, len(body) // 2)] if body else b"{"
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(truncated)).encode()))
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": truncated})
