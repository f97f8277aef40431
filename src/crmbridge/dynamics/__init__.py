"""Everything about the Dataverse (Dynamics 365) Web API: auth, OData codecs, the client.

Names are loaded on first use, so the emulator importing the wire codecs (``crmbridge.dynamics.odata``) does not
pull in the client, MSAL and the configuration.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmbridge.dynamics.auth import ClientCertificate, MsalTokenProvider, StaticTokenProvider, TokenProvider
    from crmbridge.dynamics.batch import BatchOperation, BatchWriter
    from crmbridge.dynamics.client import DataverseClient, WhoAmI
    from crmbridge.dynamics.metadata import (
        ActivityTableSpec,
        AttributeInfo,
        ColumnSpec,
        DataverseMetadata,
        KeyInfo,
        ProvisionReport,
        TableInfo,
    )
    from crmbridge.dynamics.reader import ChangePage, DataverseReader, Page, TableRef, formatted_value
    from crmbridge.dynamics.results import WriteResult
    from crmbridge.dynamics.session import DataverseSession
    from crmbridge.dynamics.writer import DataverseWriter, RowKey

__all__ = [
    "ActivityTableSpec",
    "AttributeInfo",
    "BatchOperation",
    "BatchWriter",
    "ChangePage",
    "ClientCertificate",
    "ColumnSpec",
    "DataverseClient",
    "DataverseMetadata",
    "DataverseReader",
    "DataverseSession",
    "DataverseWriter",
    "KeyInfo",
    "MsalTokenProvider",
    "Page",
    "ProvisionReport",
    "RowKey",
    "StaticTokenProvider",
    "TableInfo",
    "TableRef",
    "TokenProvider",
    "WhoAmI",
    "WriteResult",
    "formatted_value",
]


_HOMES = {
    "ClientCertificate": "auth",
    "MsalTokenProvider": "auth",
    "StaticTokenProvider": "auth",
    "TokenProvider": "auth",
    "BatchOperation": "batch",
    "BatchWriter": "batch",
    "DataverseClient": "client",
    "WhoAmI": "client",
    "ActivityTableSpec": "metadata",
    "AttributeInfo": "metadata",
    "ColumnSpec": "metadata",
    "DataverseMetadata": "metadata",
    "KeyInfo": "metadata",
    "ProvisionReport": "metadata",
    "TableInfo": "metadata",
    "ChangePage": "reader",
    "DataverseReader": "reader",
    "Page": "reader",
    "TableRef": "reader",
    "formatted_value": "reader",
    "WriteResult": "results",
    "DataverseSession": "session",
    "DataverseWriter": "writer",
    "RowKey": "writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
