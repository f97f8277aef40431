"""One authenticated, classified, throttled path to the Dataverse Web API, shared by reader, writer and metadata.

Every request carries the headers the Web API documents (§2.3), goes through :class:`crmbridge.http.RetryPolicy`
(429 + Retry-After pause the service and drive the :class:`~crmbridge.http.AdaptiveLimiter`), and any answer that
is not a success becomes the typed error the classification table names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from crmbridge.dynamics.auth import TokenProvider
from crmbridge.dynamics.errors import RequestKind, classifier_for, error_for_response
from crmbridge.http import Action, AdaptiveLimiter, HttpStats, RetryPolicy

__all__ = ["DataverseSession", "encode_json"]

_BASE_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON, the body format of every Web API write."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class DataverseSession:
    """Sends requests to one org's Web API base URL (``https://ORG.crm.dynamics.com/api/data/v9.2/``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        tokens: TokenProvider,
        *,
        retry: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        stats: HttpStats | None = None,
        max_parallel: int = 8,
    ) -> None:
        self.http = http
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.tokens = tokens
        self.retry = retry if retry is not None else RetryPolicy(service="dataverse")
        self.limiter = limiter
        self.stats = stats if stats is not None else HttpStats()
        # How many bulk or $batch calls a writer keeps in progress: more would only queue inside the limiter, where
        # waiting counts against each call's retry time budget.
        self.max_parallel = max_parallel

    @property
    def api_path(self) -> str:
        """The path part of the base URL (``/api/data/v9.2/``), as ``$batch`` parts address resources."""
        return httpx.URL(self.api_url).path

    def url(self, path_or_url: str) -> str:
        """An absolute URL: links the service returned are used verbatim, relative paths join the base URL."""
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return self.api_url + path_or_url.lstrip("/")

    async def send(
        self,
        method: str,
        path_or_url: str,
        *,
        kind: RequestKind,
        idempotent: bool,
        payload: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        record_key: str | None = None,
    ) -> httpx.Response:
        """Send once through the retry policy; re-authenticate once on 401; raise the typed error otherwise."""
        body = encode_json(payload) if payload is not None else content
        classify = classifier_for(kind)
        for attempt in (1, 2):
            request = await self._build(method, self.url(path_or_url), body, headers, json_body=payload is not None)
            response = await self.retry.send(
                self.http, request, classify=classify, idempotent=idempotent, limiter=self.limiter, stats=self.stats
            )
            _release_stream(response)
            action = classify(response)
            if action is Action.SUCCESS:
                return response
            if action is Action.REAUTHENTICATE and attempt == 1:
                self.tokens.invalidate()
                continue
            raise error_for_response(response, action, record_key=record_key)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _build(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None, *, json_body: bool
    ) -> httpx.Request:
        merged = dict(_BASE_HEADERS)
        extra = {name.lower() for name in (headers or {})}
        if "if-match" not in extra and "if-none-match" not in extra:
            merged["If-None-Match"] = "null"  # §2.3: keeps expanded collections out of caches; not a wildcard
        if json_body:
            merged["Content-Type"] = JSON_CONTENT_TYPE
        merged.update(headers or {})
        merged["Authorization"] = f"Bearer {await self.tokens.token()}"
        return self.http.build_request(method, url, content=body, headers=merged)


def _release_stream(response: httpx.Response) -> None:
    """Unlink a read response from its spent stream.

    httpx keeps every read response in a reference cycle with its stream (Response <-> BoundAsyncStream), so the
    body (5,000 rows, megabytes) is freed only by a full garbage collection, which CPython runs rarely: streaming
    a million rows grew memory by ~1 MB per page. With the link cut, reference counting frees the page as soon as
    the caller drops it. The body stays readable: ``content`` and ``json()`` use the bytes already read.
    """
    response.stream = httpx.ByteStream(b"")
