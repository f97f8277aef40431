"""Everything about Adobe Campaign Standard and Adobe I/O: IMS auth, REST client, events journal, exports.

The names below are what the engine and the CLI use; the modules hold the details.
"""

from __future__ import annotations

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider
from crmbridge.campaign.client import CampaignClient, CampaignStats, KeyLookup, UpsertOutcome, UpsertResult
from crmbridge.campaign.errors import ParentNotFound, classify_campaign_response
from crmbridge.campaign.exports import (
    ExportBatch,
    ExportCursor,
    ExportReader,
    FolderSource,
    MalformedRow,
    SftpSource,
)
from crmbridge.campaign.journal import JournalBatch, JournalConsumer, JournalCursor, JournalGap, JournalLag
from crmbridge.campaign.links import LinkResolver, LinkTo
from crmbridge.campaign.metadata import FieldInfo, PrivacyRequest, PrivacyRequestType, ResourceMetadata
from crmbridge.campaign.payload import PayloadMapping, UnmappedEvent

__all__ = [
    "CampaignClient",
    "CampaignStats",
    "ExportBatch",
    "ExportCursor",
    "ExportReader",
    "FieldInfo",
    "FolderSource",
    "ImsCredentials",
    "ImsTokenProvider",
    "JournalBatch",
    "JournalConsumer",
    "JournalCursor",
    "JournalGap",
    "JournalLag",
    "KeyLookup",
    "LinkResolver",
    "LinkTo",
    "MalformedRow",
    "ParentNotFound",
    "PayloadMapping",
    "PrivacyRequest",
    "PrivacyRequestType",
    "ResourceMetadata",
    "SftpSource",
    "UnmappedEvent",
    "UpsertOutcome",
    "UpsertResult",
    "classify_campaign_response",
]
