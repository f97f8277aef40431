"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers the hypothesis fuzzers also cover.

Not collected by pytest: run it for as long as you like, e.g.
``.venv/bin/python -m tests.reliability.atheris_parsers -atheris_runs=20000``. Any exception other than the
parser's documented error is a crash: atheris stops and prints the input that caused it. Coverage feedback is
partial: atheris warns that an editable install's import hook is only experimentally instrumented, and
``instrument_all()`` did not finish instrumenting within 5 minutes on the shared machine.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    import httpx

    from crmbridge.campaign.errors import classify_campaign_response
    from crmbridge.campaign.export_rows import ExportLayout, parse_export_datetime, row_to_event
    from crmbridge.campaign.payload import PayloadMapping, map_event
    from crmbridge.campaign.wire import list_page, object_of, parse_acs_datetime
    from crmbridge.config.events import DEFAULT_EVENT_CODES, DEFAULT_PAYLOAD_MAPPING
    from crmbridge.dynamics.errors import RequestKind, classifier_for
    from crmbridge.dynamics.odata import BatchFormatError, batch_content_type, parse_batch_request, parse_batch_response
    from crmbridge.exceptions import ProtocolError

BOUNDARY = "batch_AAA123"
MAPPING = PayloadMapping(dict(DEFAULT_PAYLOAD_MAPPING), dict(DEFAULT_EVENT_CODES))
REQUEST = httpx.Request("GET", "https://example.test/x")


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    choice = provider.ConsumeIntInRange(0, 5)
    rest = provider.ConsumeBytes(provider.remaining_bytes())
    if choice == 0:
        with contextlib.suppress(BatchFormatError):
            parse_batch_response(batch_content_type(BOUNDARY), rest)
    elif choice == 1:
        with contextlib.suppress(BatchFormatError):
            parse_batch_request(batch_content_type(BOUNDARY), rest)
    elif choice == 2:
        response = httpx.Response(200, content=rest, request=REQUEST)
        classify_campaign_response(response)
        classifier_for(RequestKind.READ)(response)
        with contextlib.suppress(ProtocolError):
            list_page(object_of(response), "https://example.test/x")
    elif choice == 3:
        text = rest.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError):
            parse_acs_datetime(text)
        parse_export_datetime(text)
    elif choice == 4:
        cells = rest.decode("utf-8", errors="replace").split(";")
        columns = ["broadlog_id", "event_date", "status", "failure_type", "tracking_log_id", "url_type"]
        row = dict(zip(columns, cells, strict=False))
        for layout in ExportLayout:
            row_to_event(layout, row, "f#L2")
    else:
        response = httpx.Response(200, content=rest, request=REQUEST)
        with contextlib.suppress(ValueError):
            map_event(response.json(), "p", MAPPING)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
