"""The configuration of crmbridge (``crmbridge.yaml``): pydantic models, a loader that points at lines, JSON Schema.

Call :func:`load_config` with a path; it returns a :class:`CrmbridgeConfig` or raises
:class:`crmbridge.exceptions.ConfigError` listing every problem with its file, line and YAML path.
Secrets are :class:`pydantic.SecretStr` and are registered with :mod:`crmbridge.redaction` as they are loaded.
"""

from __future__ import annotations

from typing import Any

from crmbridge.config.connections import CampaignSettings, CertificateCredential, DynamicsSettings
from crmbridge.config.events import (
    ActivityColumns,
    ActivityTable,
    ActivityTables,
    EventSource,
    EventsSettings,
    EventTypes,
    ExportsSource,
    FollowupTasks,
    JournalSource,
    Rollups,
    SftpLocation,
)
from crmbridge.config.loader import ConfigFileUnreadable, load_config, parse_config
from crmbridge.config.mappings import (
    FieldMapping,
    FilterCondition,
    FilterOp,
    Filters,
    LinkMapping,
    MappingKey,
    TableMapping,
)
from crmbridge.config.model import (
    CAMPAIGN_OPT_OUT_FIELDS,
    CrmbridgeConfig,
    OptOutPair,
    OptOutSettings,
    ServiceSettings,
    StateSettings,
)
from crmbridge.config.types import parse_duration

__all__ = [
    "CAMPAIGN_OPT_OUT_FIELDS",
    "ActivityColumns",
    "ActivityTable",
    "ActivityTables",
    "CampaignSettings",
    "CertificateCredential",
    "ConfigFileUnreadable",
    "CrmbridgeConfig",
    "DynamicsSettings",
    "EventSource",
    "EventTypes",
    "EventsSettings",
    "ExportsSource",
    "FieldMapping",
    "FilterCondition",
    "FilterOp",
    "Filters",
    "FollowupTasks",
    "JournalSource",
    "LinkMapping",
    "MappingKey",
    "OptOutPair",
    "OptOutSettings",
    "Rollups",
    "ServiceSettings",
    "SftpLocation",
    "StateSettings",
    "TableMapping",
    "config_json_schema",
    "load_config",
    "parse_config",
    "parse_duration",
]


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of crmbridge.yaml, for editors and for ``crmbridge config schema``."""
    schema = CrmbridgeConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
