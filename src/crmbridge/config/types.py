"""Value types shared by the configuration models: durations, service URLs, names, secrets-bearing URLs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, WithJsonSchema

__all__ = [
    "LOOPBACK_HOSTS",
    "ColumnName",
    "Duration",
    "FieldPath",
    "JournalStart",
    "OptionalSecret",
    "PositiveDuration",
    "ProxyUrl",
    "RequiredSecret",
    "ServiceUrl",
    "Strict",
    "parse_duration",
    "parse_journal_start",
]


class Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors (a typo must not be silently ignored)."""

    # Inputs are kept out of error messages: the input of a failed secret field is the secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_SHORT_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_SHORT_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DURATION_HINT = "write a duration such as 30s, 5m, 2h, 7d, or ISO 8601 such as PT30S or P2D"


def parse_duration(value: object) -> timedelta:
    """Parse ``30s``/``5m``/``2h``/``7d`` or an ISO 8601 duration (``PT30S``, ``P2D``) into a timedelta.

    Bare numbers are refused on purpose: ``interval: 30`` could mean seconds or minutes.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"a duration cannot be negative; {DURATION_HINT}")
        return value
    if not isinstance(value, str) or isinstance(value, bool):
        raise ValueError(f"expected a duration with a unit; {DURATION_HINT}")
    text = value.strip()
    short = _SHORT_DURATION.match(text)
    if short:
        return timedelta(**{_SHORT_UNITS[short.group(2)]: int(short.group(1))})
    iso = _ISO_DURATION.match(text.upper())
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {name: float(number) for name, number in iso.groupdict().items() if number is not None}
        return timedelta(**parts)
    raise ValueError(f"'{text}' is not a duration; {DURATION_HINT}")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than zero; {DURATION_HINT}")
    return value


_DURATION_SCHEMA = {
    "type": "string",
    "pattern": r"^(\d+\s*[smhd]|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?)$",
    "description": "A duration: 30s, 5m, 2h, 7d, or ISO 8601 (PT30S, P2D).",
}

Duration = Annotated[timedelta, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_positive), WithJsonSchema(_DURATION_SCHEMA)
]


def parse_journal_start(value: object) -> str | timedelta:
    """``oldest``, ``latest``, or how far back to seek on the very first read (a duration)."""
    if value in ("oldest", "latest"):
        return str(value)
    if isinstance(value, str) and value.startswith("-"):
        value = value[1:]  # the journal's own `seek=-P2D` spelling is accepted too
    try:
        back = _positive(parse_duration(value))
    except ValueError:
        raise ValueError(f"expected oldest, latest, or a duration back such as 48h, 7d or P2D; got {value!r}") from None
    if back > timedelta(days=7):
        # The journal keeps events 7 days; a longer seek cannot be served (shared/protocols, A.8).
        raise ValueError("the journal keeps events for 7 days; start at most 7d back, or use oldest")
    return back


JournalStart = Annotated[
    Literal["oldest", "latest"] | timedelta,
    BeforeValidator(parse_journal_start),
    WithJsonSchema(
        {
            "anyOf": [{"enum": ["oldest", "latest"]}, _DURATION_SCHEMA],
            "description": "Where the first read starts: oldest, latest, or a duration back (48h, 7d, P2D).",
        }
    ),
]


def _check_service_url(value: str) -> str:
    """An https URL without query or fragment; plain http only for a local emulator."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"expected an https URL such as https://example.com; got {value!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("use https: plain http is allowed only for 127.0.0.1 or localhost (a local emulator)")
    if parts.query or parts.fragment:
        raise ValueError("remove the query string or fragment from the URL")
    return value.strip().rstrip("/")


ServiceUrl = Annotated[
    str, AfterValidator(_check_service_url), Field(json_schema_extra={"format": "uri", "pattern": r"^https?://"})
]

# Dataverse logical names are lowercase; the column of a lookup is its logical name (new_contactid), not the
# `_new_contactid_value` property the Web API returns.
ColumnName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=128)]

# ACS field names, with dotted paths into sub-objects such as location.city.
FieldPath = Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", min_length=1, max_length=256)
]


def _check_proxy_url(value: str) -> str:
    if not value.startswith(("http://", "https://", "socks5://", "socks5h://")):
        raise ValueError("expected a proxy URL such as http://proxy.example.com:3128")
    return value


ProxyUrl = Annotated[str, AfterValidator(_check_proxy_url)]


def _blank_is_none(value: object) -> object:
    # `${VAR:-}` yields "" for an unset variable: an optional secret given that way is simply not set.
    return None if value == "" else value


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("is empty: give the secret, e.g. through ${ENV_VAR}")
    return value


OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none)]
RequiredSecret = Annotated[SecretStr, AfterValidator(_not_blank)]
