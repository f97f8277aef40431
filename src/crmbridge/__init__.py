"""crmbridge keeps Microsoft Dynamics 365 (Dataverse) and Adobe Campaign Standard in sync.

The public API is what ``__all__`` lists (pinned by ``tests/test_public_api.py``); everything else may change.
"""

from __future__ import annotations

from crmbridge.exceptions import (
    AuthenticationError,
    CheckpointExpired,
    ConfigError,
    CrmbridgeError,
    FatalError,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    RecordError,
    TransientError,
)
from crmbridge.records import EmailEvent, EventType, OptOutChange, SourceChange, Tombstone

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "CheckpointExpired",
    "ConfigError",
    "CrmbridgeError",
    "EmailEvent",
    "EventType",
    "FatalError",
    "OptOutChange",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "RecordError",
    "SourceChange",
    "Tombstone",
    "TransientError",
    "__version__",
]
