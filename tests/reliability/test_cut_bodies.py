"""A 2xx whose JSON body is cut short (reset connection, proxy) is retried like an outage, on both services."""

from __future__ import annotations

import httpx
import pytest

from crmbridge.campaign.errors import classify_campaign_response
from crmbridge.dynamics.errors import RequestKind, classifier_for, classify_response_as_write
from crmbridge.http import Action, json_body_cut_short

REQUEST = httpx.Request("GET", "https://example.test/x")


def response(body: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.Response(200, content=body, headers=headers, request=REQUEST)


@pytest.mark.parametrize(
    ("body", "content_type", "cut"),
    [
        (b'{"value": [{"a": 1}', "application/json; odata.metadata=minimal", True),
        (b"{", None, True),  # the fault injector's cut of an empty 204 body keeps no content type
        (b'{"value": []}', "application/json", False),
        (b"", "application/json", False),
        (b"--batchresponse_1\r\n", "multipart/mixed; boundary=batchresponse_1", False),
    ],
)
def test_only_unparsable_json_bodies_count_as_cut_short(body: bytes, content_type: str | None, cut: bool) -> None:
    assert json_body_cut_short(response(body, content_type)) is cut


def test_every_classifier_retries_a_cut_body_and_accepts_a_whole_one() -> None:
    classifiers = [classify_campaign_response, classify_response_as_write, *map(classifier_for, RequestKind)]
    for classify in classifiers:
        assert classify(response(b'{"content": [')) is Action.RETRY
        assert classify(response(b'{"content": []}')) is Action.SUCCESS
