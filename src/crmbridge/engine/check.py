"""``crmbridge check``: reads the live metadata both sides expose, once, then applies ``check_rules``.

Dataverse: table definitions (change tracking), columns and types. Campaign: ``resourceType`` of each resource,
its filter catalogue, and one profile to see whether the tenant sends per-flag ``…LastModified`` timestamps.
"""

from __future__ import annotations

from contextlib import aclosing

from crmbridge.campaign.client import CampaignClient
from crmbridge.config import CrmbridgeConfig
from crmbridge.dynamics.client import DataverseClient
from crmbridge.engine.adapters import campaign_resource
from crmbridge.engine.check_rules import Finding, LiveMetadata, check_config
from crmbridge.engine.provision import activity_tables_needed
from crmbridge.exceptions import ConfigError, RecordError

__all__ = ["gather_metadata", "run_check"]

OPT_OUT_TIMESTAMP_SUFFIX = "LastModified"


def _tables_of(config: CrmbridgeConfig) -> list[str]:
    names = [m.table for m in config.mappings if m.enabled]
    if config.optouts.mode != "disabled" or (config.events is not None and config.events.rollups.enabled):
        names.append("contact")
    if config.events is not None and config.events.enabled:
        names += [spec.logical_name for spec in activity_tables_needed(config.events)]
    return list(dict.fromkeys(names))


def _resources_of(config: CrmbridgeConfig) -> list[str]:
    names = [campaign_resource(m.resource) for m in config.mappings if m.enabled]
    if config.optouts.mode != "disabled":
        names.append("profile")
    return list(dict.fromkeys(names))


async def _flag_timestamps(campaign: CampaignClient, config: CrmbridgeConfig) -> bool | None:
    """Whether a profile carries ``<flag>LastModified`` for the paired flags; None when there is no profile."""
    flags = [pair.campaign for pair in config.optouts.pairs] or ["blackListEmail"]
    async with aclosing(campaign.iter_records("profile", page_size=1)) as rows:
        async for row in rows:
            return all(f"{flag}{OPT_OUT_TIMESTAMP_SUFFIX}" in row for flag in flags)
    return None


async def gather_metadata(
    config: CrmbridgeConfig, dataverse: DataverseClient, campaign: CampaignClient
) -> LiveMetadata:
    live = LiveMetadata()
    for table in _tables_of(config):
        info = await dataverse.metadata.table(table)
        live.tables[table] = info
        if info is not None:
            live.attributes[table] = {a.logical_name: a for a in await dataverse.metadata.attributes(table)}
    for resource in _resources_of(config):
        try:
            meta = await campaign.describe(resource)
        except (RecordError, ConfigError):
            # An unknown resource is answered 404 (or ACS's "Check your URI" 500): reported as missing.
            live.resources[resource] = None
            continue
        live.resources[resource] = meta
        live.filters[resource] = await campaign.filter_names(meta)
    if config.optouts.mode != "disabled" and live.resources.get("profile") is not None:
        live.flag_timestamps = await _flag_timestamps(campaign, config)
    return live


async def run_check(config: CrmbridgeConfig, dataverse: DataverseClient, campaign: CampaignClient) -> list[Finding]:
    """Every finding of the configuration against both live services."""
    return check_config(config, await gather_metadata(config, dataverse, campaign))
