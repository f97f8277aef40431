"""Test doubles shared by the HTTP tests: a clock whose sleep advances it, and a scripted MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx


class FakeTime:
    """A monotonic clock that only moves when someone sleeps on it; remembers every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still let other tasks run, as a real sleep would


Step = httpx.Response | type[httpx.TransportError] | Callable[[httpx.Request], httpx.Response]


class ScriptedTransport:
    """Answers requests from a script, one step per request; the last step repeats. Records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        if isinstance(step, type):
            raise step("scripted failure", request=request)
        return step(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler), base_url="https://api.test")
