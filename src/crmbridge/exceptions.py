"""The error taxonomy of crmbridge, grouped by what the caller does about each error.

::

    CrmbridgeError
    ├── ConfigError            fix the configuration (file, key, line and the fix are in the message)
    ├── TransientError         retry the same call later (outage, dropped connection, timeout)
    │   └── RateLimited        pause the whole service for `retry_after`; never uses a record's retry budget
    ├── AuthenticationError    re-authenticate once, then stop (expired or rejected token)
    ├── RecordError            skip this record: it goes to the dead-letter table with its reason
    ├── CheckpointExpired      re-baseline: the stored delta link / journal position is no longer accepted
    └── FatalError             stop and tell the operator (permissions, protocol violations, bugs in a peer)
        ├── PermissionDenied   the credentials work but lack a role (e.g. not an application user)
        └── ProtocolError      the service answered something that breaks its documented protocol

Every error raised for an HTTP response carries an :class:`ApiErrorDetails` (service, status, the service's
own error code and message, and the request id) so an operator can quote it to the vendor. Messages never
contain secrets: they pass through :func:`crmbridge.redaction.redact` before they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from crmbridge.redaction import redact

__all__ = [
    "ApiErrorDetails",
    "AuthenticationError",
    "CheckpointExpired",
    "ConfigError",
    "ConfigProblem",
    "CrmbridgeError",
    "FatalError",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "RecordError",
    "TransientError",
]


@dataclass(frozen=True, slots=True)
class ApiErrorDetails:
    """What a service said when it refused a request."""

    service: str  # "dataverse", "campaign", "ims", "entra", "io-events"
    status: int | None = None
    code: str | None = None  # e.g. Dataverse "0x80072322", ACS "RST-360011"
    message: str = ""
    request_id: str | None = None
    method: str | None = None
    url: str | None = None

    def describe(self) -> str:
        parts = [self.service]
        if self.method and self.url:
            parts.append(f"{self.method} {redact(self.url)}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        text = ", ".join(parts)
        if self.message:
            text += f": {redact(self.message)}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class CrmbridgeError(Exception):
    """Base of every error crmbridge raises on purpose."""

    def __init__(self, message: str, *, details: ApiErrorDetails | None = None) -> None:
        self.details = details
        text = redact(message)
        if details is not None:
            text = f"{text} [{details.describe()}]"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file: where it is and what is wrong."""

    path: str  # dotted YAML path, e.g. "mappings[0].fields.emailaddress1"
    message: str
    line: int | None = None  # 1-based line in the file, when known
    file: str | None = None

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(CrmbridgeError):
    """The configuration is wrong; the operator must fix it. Lists every problem found, not just the first."""

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None) -> None:
        self.problems = list(problems or [])
        text = message
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class TransientError(CrmbridgeError):
    """A call failed for a reason that goes away by itself: retry with backoff."""


class RateLimited(TransientError):
    """The service asked us to slow down (HTTP 429). Pause the service, not just the request."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: timedelta | None = None,
        details: ApiErrorDetails | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, details=details)


class AuthenticationError(CrmbridgeError):
    """The token was refused or has expired: get a new one and try once more, then stop."""


class RecordError(CrmbridgeError):
    """The target rejected this one record (validation, missing parent): dead-letter it and go on."""

    def __init__(
        self,
        message: str,
        *,
        record_key: str | None = None,
        details: ApiErrorDetails | None = None,
    ) -> None:
        self.record_key = record_key
        super().__init__(message, details=details)


class CheckpointExpired(CrmbridgeError):
    """A stored delta link or journal position is no longer accepted: re-baseline from a full read."""


class FatalError(CrmbridgeError):
    """Nothing crmbridge can do by itself: stop the flow and tell the operator what to fix."""


class PermissionDenied(FatalError):
    """Authenticated, but not allowed (e.g. the app registration is not an application user of the org)."""


class ProtocolError(FatalError):
    """The service answered outside its documented protocol (malformed body, paging loop, …)."""


@dataclass(frozen=True, slots=True)
class _Taxonomy:
    """The tree above as data, so a test can check the docstring and the classes agree."""

    children: dict[type[CrmbridgeError], tuple[type[CrmbridgeError], ...]] = field(
        default_factory=lambda: {
            CrmbridgeError: (
                ConfigError,
                TransientError,
                AuthenticationError,
                RecordError,
                CheckpointExpired,
                FatalError,
            ),
            TransientError: (RateLimited,),
            FatalError: (PermissionDenied, ProtocolError),
        }
    )


TAXONOMY = _Taxonomy()
