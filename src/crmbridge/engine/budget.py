"""The API budget of a tables pass, estimated from its dry run: Dataverse requests, Campaign requests and ACS
"engine calls" (pure functions over the dry run's counts and planned links).

What a real pass sends, by the code paths of :mod:`crmbridge.engine.adapters` and :mod:`crmbridge.campaign`:

- Dataverse: one GET per page of the change read, plus one metadata GET per table whose mapping has no
  ``entity_set`` (looked up once per command).
- Campaign, per row written: a create is a lookup by key (GET) then a POST (the POST alone when
  ``campaign.keys_are_identification_keys``); an update is one PATCH addressed by the key; a delete is one DELETE
  addressed by the key. A written child adds one GET per distinct parent it links to (a parent's PKey is looked up
  once per pass). Skipped, filtered, parked and failed rows send nothing.
- Engine calls by the licence's 1/1/2 rule (campaign-standard-api.md §8): 1 per insert, 1 per delete, 2 per update;
  a row crmbridge skips is never sent, so it costs none.

The estimate assumes each create finds no row in Campaign and each delete finds its row; retries (429, outages),
token requests and the dead letters an operator asked to retry are not included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.adapters import campaign_resource
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.table_spec import build_table_spec
from crmbridge.engine.tables import PassStats

__all__ = ["ApiBudget", "estimate_dry_run", "estimate_pass"]


@dataclass(frozen=True, slots=True)
class ApiBudget:
    """Requests and engine calls of one pass (or a sum of them)."""

    dataverse_requests: int = 0
    campaign_requests: int = 0
    engine_calls: int = 0

    def __add__(self, other: ApiBudget) -> ApiBudget:
        return ApiBudget(
            self.dataverse_requests + other.dataverse_requests,
            self.campaign_requests + other.campaign_requests,
            self.engine_calls + other.engine_calls,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "dataverse_requests": self.dataverse_requests,
            "campaign_requests": self.campaign_requests,
            "engine_calls": self.engine_calls,
        }


def estimate_pass(
    stats: PassStats, *, parent_lookups: int = 0, create_first: bool = False, metadata_requests: int = 0
) -> ApiBudget:
    """The budget of the real pass whose dry run counted ``stats``."""
    per_create = 1 if create_first else 2
    campaign = stats.created * per_create + stats.updated + stats.deleted + parent_lookups
    return ApiBudget(
        dataverse_requests=stats.pages + metadata_requests,
        campaign_requests=campaign,
        engine_calls=stats.created + 2 * stats.updated + stats.deleted,
    )


def estimate_dry_run(
    config: CrmbridgeConfig, results: Sequence[PassStats], planned: PlannedLinks
) -> dict[str, ApiBudget]:
    """Per mapping of a dry run (its ``results`` and the links it ``planned``), the budget of the real pass."""
    budgets: dict[str, ApiBudget] = {}
    tables_looked_up: set[str] = set()
    for stats in results:
        mapping = config.mapping(stats.mapping)
        metadata = 0
        if mapping.entity_set is None and mapping.table not in tables_looked_up:
            tables_looked_up.add(mapping.table)
            metadata = 1
        targets = {
            parent.campaign_link: (campaign_resource(parent.parent_resource), parent.parent_key_field)
            for parent in build_table_spec(config, mapping).parents
        }
        parents = {(*targets[field], key) for field, key in planned.parent_keys_of(mapping.name) if field in targets}
        budgets[stats.mapping] = estimate_pass(
            stats,
            parent_lookups=len(parents),
            create_first=config.campaign.keys_are_identification_keys,
            metadata_requests=metadata,
        )
    return budgets
