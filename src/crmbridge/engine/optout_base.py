"""Which base the opt-out merge starts from when the store has none yet, or holds a write never confirmed. Pure.

The first pass takes both sides as they are (the baseline) without storing a base per contact; later, a side
whose timestamp is before the baseline still holds its baseline value. A write is marked in the store before it
is made (its value without a time) and confirmed with the pass's batch; a process killed in between leaves the
mark, and the next pass decides from both sides whether the write landed.
"""

from __future__ import annotations

from datetime import datetime

from crmbridge.engine.optout_merge import FlagState
from crmbridge.state import OptOutState

__all__ = ["base_after_unconfirmed_write", "both_as_at_baseline", "inferred_base", "untouched_since_baseline"]


def untouched_since_baseline(baseline: datetime | None, side: FlagState, *, whole_seconds: bool = False) -> bool:
    """The side's timestamp is before the baseline, so it still holds the value the baseline took.

    Dataverse dates rows to the whole second (modifiedon ...:16Z for a change at :16.6): for its side
    (``whole_seconds``) only a time before the baseline's own second proves "before".
    """
    if baseline is None or side.changed_at is None:
        return False
    if whole_seconds:
        return side.changed_at < baseline.replace(microsecond=0)
    return side.changed_at <= baseline


def both_as_at_baseline(baseline: datetime | None, dynamics: FlagState, campaign: FlagState) -> bool:
    """Neither side changed since the first pass took them as they were: there is nothing to propagate."""
    return untouched_since_baseline(baseline, dynamics, whole_seconds=True) and untouched_since_baseline(
        baseline, campaign
    )


def inferred_base(baseline: datetime | None, dynamics: FlagState, campaign: FlagState) -> bool | None:
    """No stored base yet: a side untouched since the baseline still holds the value both started from."""
    dynamics_old = untouched_since_baseline(baseline, dynamics, whole_seconds=True)
    campaign_old = untouched_since_baseline(baseline, campaign)
    if dynamics_old and not campaign_old:
        return dynamics.value
    if campaign_old and not dynamics_old:
        return campaign.value
    return None


def base_after_unconfirmed_write(
    state: OptOutState, dynamics: FlagState, campaign: FlagState, *, campaign_flag_dated: bool
) -> bool | None:
    """The stored base, or the value of a write crmbridge began but never recorded when that write landed.

    A side's value stored without a time marks such a write (every value read from a side comes with its
    modifiedon or lastModified). The side holding it now means it landed: crmbridge's echo, not a change. On a
    Campaign flag with its own timestamp, a change dated after the mark also means it landed (the flag moved
    away from the written value since). Otherwise it counts as not written: at worst an opt-out is written again.
    """
    if state.dynamics_seen_at is None and state.dynamics_value is not None and dynamics.value == state.dynamics_value:
        return state.dynamics_value
    if state.campaign_seen_at is None and state.campaign_value is not None:
        moved_since = campaign.changed_at is not None and campaign.changed_at > state.updated_at
        if campaign.value == state.campaign_value or (campaign_flag_dated and moved_since):
            return state.campaign_value
    return state.base_value
