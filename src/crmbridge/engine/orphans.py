"""Children of parents crmbridge deleted in Campaign: deleted with their parent, or kept and counted.

When a parent row leaves Campaign (deleted in Dynamics with ``deletes: propagate``, or out of the parent mapping's
filter with ``on_filtered_out: delete``), the child rows linked to it stay behind. ACS hides a child whose
1-cardinality link points at nothing, in the UI and the API (adobe-d365-integration.md §6.2), and privacy deletes
reach custom resources only through links to the profile (§3.11): such children are dead weight with personal data
in them. So by default (``links[].on_parent_deleted: delete``) a child pass deletes the children of parents deleted
since its last successful pass, as ACS does for a link whose deletion behaviour cascades; ``keep`` leaves them and
counts them as ``orphaned``. A delete of a child that ACS already cascaded is a no-op (the target treats a missing
record as deleted). A deleted child comes back when it changes in Dynamics again, or with ``crmbridge replay``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmbridge.state import Batch, DeadLetter, Flow

if TYPE_CHECKING:
    from crmbridge.engine.tables import PassStats, TablesFlow

__all__ = ["settle_orphans"]


async def settle_orphans(flow: TablesFlow, stats: PassStats) -> None:
    """Delete (or count) this mapping's live rows whose parent crmbridge deleted since the last successful pass."""
    spec, store = flow.spec, flow.store
    # Overlapping the previous pass is harmless: children already deleted are no longer live links.
    since = store.last_success_started(Flow.TABLES, spec.name)
    for parent in spec.parents:
        if not parent.parent_deletes_rows:
            # The parent mapping never deletes in Campaign: a parent link marked deleted (after a re-baseline)
            # only means the row is gone from Dynamics, while the Campaign parent and its children stay.
            continue
        gone = store.deleted_links_since(parent.parent_mapping, since)
        if flow.dry_run:  # what this dry run's parent pass would have deleted
            gone += flow.planned.deleted(parent.parent_mapping)
        if not gone:
            continue
        orphans = store.children_of(spec.name, parent.campaign_link, {link.target_key for link in gone})
        stats.orphaned += len(orphans)
        if not orphans or parent.on_parent_deleted == "keep":
            continue
        if flow.dry_run:
            stats.deleted += len(orphans)
            continue
        errors = await flow.delete_keys({child.source_id: child.target_key for child in orphans})
        stats.deleted += len(orphans) - len(errors)
        stats.failed += len(errors)
        if errors:
            now = flow.clock()
            batch = Batch(Flow.TABLES, spec.name)
            for source_id, error in errors.items():
                reason = f"its parent {parent.parent_mapping} was deleted in Campaign; deleting it failed: {error}"
                batch.dead_letter(
                    DeadLetter(Flow.TABLES, spec.name, source_id, None, type(error).__name__, reason, now)
                )
            store.commit(batch)
