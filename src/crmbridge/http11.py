"""A lean HTTP/1.1 transport for a service called once per record (Campaign): keep-alive connections over
asyncio streams, h11 for the protocol, httpx's timeouts and exceptions.

ACS has no bulk write, so a sync sends one request per record and the transport's own CPU per request is what
a sync costs. httpcore's pool re-examines every connection of its pool at each request start and end (each
check builds anyio's socket attribute table and calls ``getpeername``), and its response body passes through
four layers of async iterators: profiled, the pool and those layers were ~40% of the sync's CPU. Here a request
takes an idle connection from a list (or opens one, up to ``max_connections``), writes the request in one
``write``, reads the whole response with h11 and returns it to httpx as an in-memory body, as httpx would read
it anyway (crmbridge reads every response of this service in full: JSON documents).

Behaviour kept from httpx's own transport: TLS with the given verification, keep-alive with an idle expiry
(:data:`crmbridge.http.KEEPALIVE_EXPIRY`; an idle connection the server closed is noticed before use), the
request's connect/read/write/pool timeouts, and the same exception types (``ConnectError``/``ConnectTimeout``,
``WriteError``/``WriteTimeout``, ``ReadError``/``ReadTimeout``, ``RemoteProtocolError``, ``PoolTimeout``), which
the retry policy relies on to tell a request that never left from one that may have been applied. Proxies are not
supported: with a proxy the client keeps httpx's transport (see
:func:`crmbridge.campaign.factory.campaign_http_client`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import h11
import httpx

from crmbridge.http import KEEPALIVE_EXPIRY

__all__ = ["Http11Transport"]

Origin = tuple[str, str, int]  # scheme, host, port
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_SIZE = 64 * 1024


@contextmanager
def _mapped(timeout_error: type[httpx.TimeoutException], os_error: type[httpx.TransportError]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as error:
        raise timeout_error(str(error) or timeout_error.__name__) from error
    except h11.RemoteProtocolError as error:
        raise httpx.RemoteProtocolError(str(error)) from error
    except h11.LocalProtocolError as error:
        raise httpx.LocalProtocolError(str(error)) from error
    except OSError as error:  # ConnectionResetError, BrokenPipeError, ssl.SSLError, ...
        raise os_error(str(error) or type(error).__name__) from error


class _Connection:
    """One keep-alive HTTP/1.1 connection: one request at a time."""

    __slots__ = ("h11", "idle_since", "origin", "reader", "reusable", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.reusable = False  # whether the last exchange left the connection ready for another

    def usable(self, now: float, keepalive_expiry: float) -> bool:
        """Still open at both ends and not idle for too long (a server closes idle connections on its own)."""
        if self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None:
            return False
        return now - self.idle_since < keepalive_expiry

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: httpx.Request, timeouts: dict[str, float | None]) -> httpx.Response:
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        target = request.url.raw_path
        out = self.h11.send(h11.Request(method=request.method, target=target, headers=request.headers.raw))
        if body:
            out += self.h11.send(h11.Data(data=body))
        out += self.h11.send(h11.EndOfMessage())
        with _mapped(httpx.WriteTimeout, httpx.WriteError):
            async with asyncio.timeout(timeouts.get("write")):
                self.writer.write(out)
                await self.writer.drain()
        with _mapped(httpx.ReadTimeout, httpx.ReadError):
            return await self._receive(timeouts.get("read"))

    async def _receive(self, read_timeout: float | None) -> httpx.Response:
        head: h11.Response | None = None
        parts: list[bytes] = []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(read_timeout):  # per read, as httpx's own transport applies it
                    data = await self.reader.read(_READ_SIZE)
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("Server disconnected without sending a complete response.")
            # h11.InformationalResponse (100 Continue): nothing to do, the final response follows
        assert head is not None  # h11 yields the response head before its body and end
        self.reusable = self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE  # no Connection: close
        if self.reusable:
            self.h11.start_next_cycle()
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=httpx.ByteStream(b"".join(parts)),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(head.reason)},
        )


class Http11Transport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` keep-alive connections (all origins together); a request waits for one."""

    def __init__(
        self,
        *,
        max_connections: int,
        verify: bool | str | ssl.SSLContext = True,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"need max_connections >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._clock = clock
        self._ssl = _ssl_context(verify)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0  # connections open or being opened, idle or busy
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.connections_opened = 0  # for tests and benchmarks: how often a new connection was needed

    @property
    def open_connections(self) -> int:
        return self._open

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
        origin = (scheme, request.url.raw_host.decode("ascii"), request.url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connection = await self._checkout(origin, timeouts)
        try:
            response = await connection.exchange(request, timeouts)
        except BaseException:
            # Cancelled or failed mid-exchange: the connection's state is unknown, so it is not reused.
            connection.close()
            self._give_back(None)
            raise
        if connection.reusable:
            self._give_back(connection)
        else:
            connection.close()
            self._give_back(None)
        return response

    async def _checkout(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        with _mapped(httpx.PoolTimeout, httpx.ConnectError):
            async with asyncio.timeout(timeouts.get("pool")):
                while True:
                    connection = self._idle_connection(origin)
                    if connection is not None:
                        return connection
                    if self._open < self.max_connections or self._evict_idle():
                        break
                    await self._wait_for_a_connection()
        self._open += 1
        try:
            return await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._give_back(None)
            raise

    async def _wait_for_a_connection(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then cancelled (pool timeout): pass the wake-up on
            else:
                waiter.cancel()
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self._clock()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if connection.usable(now, self.keepalive_expiry):
                return connection
            connection.close()
            self._open -= 1
        return None

    def _evict_idle(self) -> bool:
        """Close an idle connection to another origin, to make room for one to this origin."""
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                self._open -= 1
                return True
        return False

    async def _connect(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = self._ssl if scheme == "https" else None
        with _mapped(httpx.ConnectTimeout, httpx.ConnectError):
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if context else None, limit=_READ_SIZE
                )
        self.connections_opened += 1
        return _Connection(origin, reader, writer)

    def _give_back(self, connection: _Connection | None) -> None:
        if connection is None:
            self._open -= 1
        else:
            connection.idle_since = self._clock()
            self._idle.setdefault(connection.origin, []).append(connection)
        self._wake_one()

    async def aclose(self) -> None:
        closing = [connection for idle in self._idle.values() for connection in idle]
        self._idle.clear()
        for connection in closing:
            connection.close()
            self._open -= 1
        await asyncio.gather(*(c.writer.wait_closed() for c in closing), return_exceptions=True)


def _ssl_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)
