"""Everything about the Dataverse (Dynamics 365) Web API: auth, OData codecs, the client."""

from __future__ import annotations

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
