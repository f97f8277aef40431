"""Logging: JSON lines or console text, and no secret ever reaches the output."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from crmbridge.logs import configure_logging
from crmbridge.redaction import register_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjcm1icmlkZ2UifQ.c2lnbmF0dXJl"


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_auto_writes_json_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    configure_logging("auto", stream=out)
    structlog.get_logger("t").info("sync.started", flow="contacts", batch=3)
    (line,) = json_lines(out)
    assert line["event"] == "sync.started"
    assert line["flow"] == "contacts"
    assert line["batch"] == 3
    assert line["level"] == "info"
    assert "timestamp" in line


def test_auto_writes_readable_text_on_a_tty() -> None:
    out = TtyBuffer()
    configure_logging("auto", stream=out)
    structlog.get_logger("t").warning("sync.slow", flow="contacts")
    text = out.getvalue()
    assert "sync.slow" in text
    assert "flow=contacts" in text
    assert not text.lstrip().startswith("{")


def test_level_filters_lower_events() -> None:
    out = io.StringIO()
    configure_logging("json", level="WARNING", stream=out)
    log = structlog.get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in json_lines(out)] == ["shown"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", level="LOUD", stream=io.StringIO())


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_bearer_token_in_an_event_never_reaches_the_output(fmt: str) -> None:
    out = io.StringIO()
    configure_logging(fmt, stream=out)  # type: ignore[arg-type]
    structlog.get_logger("t").info(
        f"calling with Bearer {JWT}",
        headers={"Authorization": f"Bearer {JWT}"},
        nested=[{"token": JWT}],
        request=f"POST /token client_secret=s3cr3t-value&grant_type=client_credentials access {JWT}",
    )
    text = out.getvalue()
    assert JWT not in text
    assert "eyJzdWIi" not in text
    assert "s3cr3t-value" not in text
    assert "***" in text


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secret_in_an_exception_never_reaches_the_output(fmt: str) -> None:
    secret = "plain-looking-secret-6f1d"  # matches no credential pattern: only registration hides it
    register_secret(secret)
    out = io.StringIO()
    configure_logging(fmt, stream=out)  # type: ignore[arg-type]
    try:
        raise RuntimeError(f"IMS refused client secret {secret}")
    except RuntimeError:
        structlog.get_logger("t").exception("auth.failed", attempt=f"with {secret}")
    text = out.getvalue()
    assert "IMS refused client secret" in text  # the traceback itself is kept
    assert "RuntimeError" in text
    assert secret not in text


def test_objects_logged_as_values_are_redacted_through_their_text() -> None:
    class Credentials:
        def __str__(self) -> str:
            return f"Credentials(token=Bearer {JWT})"

    out = io.StringIO()
    configure_logging("json", stream=out)
    structlog.get_logger("t").info("auth", credentials=Credentials(), error=ValueError(f"bad {JWT}"))
    (line,) = json_lines(out)
    assert JWT not in json.dumps(line)
    assert line["credentials"] == "Credentials(token=Bearer ***)"
