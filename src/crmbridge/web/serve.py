"""Serve the web app with uvicorn inside the caller's event loop, next to the runner, and stop it on request.

The socket is bound here, before uvicorn starts, so a busy port is an ``OSError`` for the caller rather than
uvicorn's ``sys.exit``; signal handling stays with the runner (uvicorn would otherwise take SIGINT and SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["WebServer", "serve_web"]

_START_TIMEOUT_SECONDS = 10.0
_GRACEFUL_SHUTDOWN_SECONDS = 5


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves process signals to its host program."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """A running web server: ``url`` to reach it, ``stop()`` to close it."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], host: str, port: int) -> None:
        self._server = server
        self._task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Finish the requests in progress (a few seconds at most) and close the socket."""
        self._server.should_exit = True
        await self._task


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, reuse_port=False)


async def serve_web(app: ASGIApp, host: str = "127.0.0.1", port: int = 8321) -> WebServer:
    """Start serving ``app`` on ``host:port`` (port 0 picks a free one) and return once it accepts connections."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"crmbridge-web-{bound_port}")
    try:
        async with asyncio.timeout(_START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped the start
                    raise RuntimeError("the web server stopped while starting")
                await asyncio.sleep(0.01)
    except BaseException:
        server.should_exit = True
        sock.close()
        raise
    return WebServer(server, task, host, bound_port)
