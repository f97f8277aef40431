"""The opt-out merge: given both sides' flag and the last agreed value, decide what to write. Pure, no I/O.

The base (the last value both sides agreed on) says which side changed. One side changed: propagate, except
that an opt-in reversing the other side's opt-out is a conflict under the opt-out-protecting rules (Adobe's
and ``opt_out_wins``), because peers' users lose trust when crmbridge re-subscribes somebody. Both sides
changed, or no base yet and the sides differ: a conflict, decided by the configured rule and always reported.

Adobe's rule (shared/reference/adobe-d365-integration.md §3.9): a strictly newer Campaign attribute timestamp
wins; when Dynamics is newer, the timestamps are equal or one is missing, opt-out (True) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ConflictRule",
    "FlagState",
    "MergeDecision",
    "OptOutMode",
    "merge_optout",
    "pair_key",
]


class OptOutMode(StrEnum):
    DISABLED = "disabled"
    DYNAMICS_TO_CAMPAIGN = "dynamics_to_campaign"
    CAMPAIGN_TO_DYNAMICS = "campaign_to_dynamics"
    BIDIRECTIONAL = "bidirectional"


class ConflictRule(StrEnum):
    ADOBE = "adobe"
    OPT_OUT_WINS = "opt_out_wins"
    DYNAMICS_WINS = "dynamics_wins"
    CAMPAIGN_WINS = "campaign_wins"


@dataclass(frozen=True, slots=True)
class FlagState:
    """One side's current value of an opt-out flag and when that side says it last changed."""

    value: bool
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MergeDecision:
    """What to do for one contact and one pair. ``None`` writes mean: leave that side alone."""

    base: bool | None  # the new last-agreed value to store
    write_dynamics: bool | None = None
    write_campaign: bool | None = None
    conflict: bool = False
    winner: str | None = None  # "dynamics" | "campaign" | "opt_out" for conflicts
    reason: str = ""

    @property
    def writes(self) -> bool:
        return self.write_dynamics is not None or self.write_campaign is not None


def _newer(a: datetime | None, b: datetime | None) -> bool:
    """True when ``a`` is strictly newer than ``b`` (a missing timestamp is never newer), to the second.

    Dataverse dates rows to the whole second: a Campaign change in the same second as a Dynamics one is not
    provably newer (it may well be older), so at that precision the two are equal and the opt-out wins.
    """
    return a is not None and b is not None and a.replace(microsecond=0) > b.replace(microsecond=0)


def _apply(value: bool, dynamics: FlagState, campaign: FlagState) -> tuple[bool | None, bool | None]:
    return (
        value if dynamics.value != value else None,
        value if campaign.value != value else None,
    )


def _decide(
    value: bool, dynamics: FlagState, campaign: FlagState, *, reason: str, winner: str | None = None
) -> MergeDecision:
    write_d, write_c = _apply(value, dynamics, campaign)
    return MergeDecision(
        base=value,
        write_dynamics=write_d,
        write_campaign=write_c,
        conflict=winner is not None,
        winner=winner,
        reason=reason,
    )


def _resolve_conflict(rule: ConflictRule, dynamics: FlagState, campaign: FlagState, why: str) -> MergeDecision:
    if rule is ConflictRule.DYNAMICS_WINS:
        return _decide(dynamics.value, dynamics, campaign, reason=f"{why}; rule dynamics_wins", winner="dynamics")
    if rule is ConflictRule.CAMPAIGN_WINS:
        return _decide(campaign.value, dynamics, campaign, reason=f"{why}; rule campaign_wins", winner="campaign")
    if rule is ConflictRule.ADOBE and _newer(campaign.changed_at, dynamics.changed_at):
        return _decide(
            campaign.value,
            dynamics,
            campaign,
            reason=f"{why}; Campaign change is newer (rule adobe)",
            winner="campaign",
        )
    detail = (
        "Dynamics change is newer, equal or undated (rule adobe)" if rule is ConflictRule.ADOBE else "rule opt_out_wins"
    )
    return _decide(True, dynamics, campaign, reason=f"{why}; opt-out wins: {detail}", winner="opt_out")


def _one_way(source: FlagState, target: FlagState, base: bool | None, *, source_is_dynamics: bool) -> MergeDecision:
    """Unidirectional modes: the source's changes overwrite the target; target-only edits stand until then."""
    if source.value == target.value:
        return MergeDecision(base=source.value, reason="in agreement")
    if base is not None and source.value == base:
        # Only the target moved (a manual edit there): left alone until the source changes (Adobe's behaviour).
        return MergeDecision(base=base, reason="only the target changed; the source is unchanged")
    value = source.value
    if source_is_dynamics:
        return MergeDecision(base=value, write_campaign=value, reason="Dynamics changed; one-way to Campaign")
    return MergeDecision(base=value, write_dynamics=value, reason="Campaign changed; one-way to Dynamics")


def merge_optout(
    mode: OptOutMode,
    rule: ConflictRule,
    base: bool | None,
    dynamics: FlagState,
    campaign: FlagState,
) -> MergeDecision:
    """Decide the writes for one contact and one opt-out pair. Idempotent: merging the result again writes nothing."""
    if mode is OptOutMode.DISABLED:
        return MergeDecision(base=base, reason="opt-out sync disabled")
    if mode is OptOutMode.DYNAMICS_TO_CAMPAIGN:
        return _one_way(dynamics, campaign, base, source_is_dynamics=True)
    if mode is OptOutMode.CAMPAIGN_TO_DYNAMICS:
        return _one_way(campaign, dynamics, base, source_is_dynamics=False)

    if dynamics.value == campaign.value:
        return MergeDecision(base=dynamics.value, reason="in agreement")
    if base is None:
        return _resolve_conflict(rule, dynamics, campaign, "the sides differ and have never agreed")
    # The values differ, so exactly one side differs from the base: that side changed.
    changed, changed_name = (dynamics, "Dynamics") if dynamics.value != base else (campaign, "Campaign")
    if changed.value:
        return _decide(True, dynamics, campaign, reason=f"{changed_name} opted out; propagated")
    if rule in (ConflictRule.ADOBE, ConflictRule.OPT_OUT_WINS):
        return _resolve_conflict(rule, dynamics, campaign, f"{changed_name} opted in over the other side's opt-out")
    return _decide(False, dynamics, campaign, reason=f"{changed_name} opted in; propagated")


def pair_key(dynamics_column: str, campaign_field: str) -> str:
    """How a pair is named in the state store (bases, audit log, conflicts)."""
    return f"{dynamics_column}:{campaign_field}"
