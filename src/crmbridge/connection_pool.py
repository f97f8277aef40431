"""A transport that spreads one service's connections over several small httpcore pools.

httpcore's pool re-examines every connection (closed? keep-alive expired? idle?) and every queued request each
time a request starts or ends, so its bookkeeping costs O(connections x queued requests) per request. With the
100+ connections a 150 ms service needs to be kept busy, that bookkeeping cost more CPU than the requests
themselves (profiled: ``_assign_requests_to_connections``, ``has_expired``, ``is_idle``). Shards of a few
connections each keep it O(shard size); the total stays ``max_connections``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from functools import partial

import httpx

__all__ = ["ShardedPoolTransport"]

DEFAULT_SHARD_SIZE = 8


class ShardedPoolTransport(httpx.AsyncBaseTransport):
    """``max_connections`` connections in pools of at most ``shard_size``; each request goes to the least busy pool.

    A pool counts as busy with a request from its start until its response body is closed (that is how long the
    request holds a connection), so while fewer than ``max_connections`` requests are open, the chosen pool always
    has a free or new connection and no request queues behind another pool's traffic.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        verify: bool | ssl.SSLContext = True,
        shard_size: int = DEFAULT_SHARD_SIZE,
        keepalive_expiry: float = 5.0,
    ) -> None:
        if max_connections < 1 or shard_size < 1:
            raise ValueError(f"need max_connections >= 1 and shard_size >= 1, got {max_connections}, {shard_size}")
        count = -(-max_connections // shard_size)  # ceiling division
        base, extra = divmod(max_connections, count)
        # One SSL context for all shards: building one loads the CA store, which is slow and the same every time.
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self.sizes = [base + (1 if index < extra else 0) for index in range(count)]
        self._shards = [
            httpx.AsyncHTTPTransport(
                verify=context,
                limits=httpx.Limits(
                    max_connections=size, max_keepalive_connections=size, keepalive_expiry=keepalive_expiry
                ),
            )
            for size in self.sizes
        ]
        self._open = [0] * count

    @property
    def open_requests(self) -> list[int]:
        """Requests holding a connection (or waiting for one), per shard."""
        return list(self._open)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=lambda i: self._open[i] / self.sizes[i])
        self._open[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._open[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, partial(self._release, index)),
            extensions=response.extensions,
        )

    def _release(self, index: int) -> None:
        self._open[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """The response body of one shard's request; closing it gives the connection back and the shard a free slot."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._release()
