"""Which base the opt-out merge starts from when the store has none yet, or holds a write never confirmed. Pure.

The first pass takes both sides as they are (the baseline) without storing a base per contact; later, a side
whose timestamp is before the baseline still holds its baseline value. A write is marked in the store before it
is made (its value without a time) and confirmed with the pass's batch; a process killed in between leaves the
mark, and the next pass decides from both sides whether the write landed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from crmbridge.engine.optout_merge import FlagState
from crmbridge.state import OptOutState

__all__ = [
    "Baseline",
    "base_after_unconfirmed_write",
    "both_as_at_baseline",
    "inferred_base",
    "untouched_since_baseline",
]


@dataclass(frozen=True, slots=True)
class Baseline:
    """When the first pass took both sides as they were, each on its own service's clock.

    Each side's change times come from its own server, whose clock may differ from crmbridge's and from the
    other's: the newest modifiedon of the baseline read and the newest profile lastModified stand for "then".
    """

    dynamics: datetime | None
    campaign: datetime | None

    def to_text(self) -> str:
        return json.dumps({side: None if at is None else at.isoformat() for side, at in self._sides().items()})

    @classmethod
    def from_text(cls, text: str | None) -> Baseline:
        if not text:
            return cls(None, None)
        if not text.startswith("{"):  # stored before the sides had their own times: crmbridge's clock for both
            moment = datetime.fromisoformat(text)
            return cls(moment, moment)
        data = json.loads(text)
        return cls(
            *(
                None if data.get(side) is None else datetime.fromisoformat(data[side])
                for side in ("dynamics", "campaign")
            )
        )

    def _sides(self) -> dict[str, datetime | None]:
        return {"dynamics": self.dynamics, "campaign": self.campaign}


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


def both_as_at_baseline(baseline: Baseline, dynamics: FlagState, campaign: FlagState) -> bool:
    """Neither side changed since the first pass took them as they were: there is nothing to propagate."""
    dynamics_old = untouched_since_baseline(baseline.dynamics, dynamics, whole_seconds=True)
    return dynamics_old and untouched_since_baseline(baseline.campaign, campaign)


def inferred_base(baseline: Baseline, dynamics: FlagState, campaign: FlagState) -> bool | None:
    """No stored base yet: a side untouched since the baseline still holds the value both started from."""
    dynamics_old = untouched_since_baseline(baseline.dynamics, dynamics, whole_seconds=True)
    campaign_old = untouched_since_baseline(baseline.campaign, campaign)
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
