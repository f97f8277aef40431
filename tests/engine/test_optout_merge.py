"""The opt-out merge: literal cases from Adobe's documented rule, then properties over random edit sequences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmbridge.engine.optout_merge import ConflictRule, FlagState, MergeDecision, OptOutMode, merge_optout

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BI = OptOutMode.BIDIRECTIONAL


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- literal cases ----------------------------------------------------------------------------------------------


def test_agreeing_sides_write_nothing_and_store_the_value_as_base() -> None:
    decision = merge_optout(BI, ConflictRule.ADOBE, None, FlagState(True, at(1)), FlagState(True, at(2)))
    assert decision == MergeDecision(base=True, reason="in agreement")


def test_opt_out_on_one_side_propagates_to_the_other_under_every_rule() -> None:
    for rule in ConflictRule:
        decision = merge_optout(BI, rule, False, FlagState(False, at(0)), FlagState(True, at(5)))
        assert (decision.write_dynamics, decision.write_campaign, decision.conflict) == (True, None, False), rule


def test_adobe_rule_newer_campaign_opt_in_wins_over_dynamics_opt_out() -> None:
    decision = merge_optout(BI, ConflictRule.ADOBE, True, FlagState(True, at(1)), FlagState(False, at(2)))
    assert decision.write_dynamics is False
    assert decision.conflict and decision.winner == "campaign"


def test_adobe_rule_equal_timestamps_keep_the_opt_out() -> None:
    decision = merge_optout(BI, ConflictRule.ADOBE, True, FlagState(True, at(2)), FlagState(False, at(2)))
    assert (decision.write_dynamics, decision.write_campaign) == (None, True)
    assert decision.conflict and decision.winner == "opt_out"
    assert "equal" in decision.reason


def test_adobe_rule_campaign_time_in_the_same_second_as_the_dynamics_row_is_not_newer() -> None:
    # Dataverse says :05 for a change made at :05.6; Campaign's :05.35 may be the older of the two.
    dynamics = FlagState(True, T0 + timedelta(seconds=5))
    campaign = FlagState(False, T0 + timedelta(seconds=5, milliseconds=350))
    decision = merge_optout(OptOutMode.BIDIRECTIONAL, ConflictRule.ADOBE, True, dynamics, campaign)
    assert (decision.write_campaign, decision.winner) == (True, "opt_out")
    later = FlagState(False, T0 + timedelta(seconds=6))
    assert merge_optout(OptOutMode.BIDIRECTIONAL, ConflictRule.ADOBE, True, dynamics, later).write_dynamics is False


def test_adobe_rule_dynamics_opt_in_never_wins_over_campaign_opt_out() -> None:
    decision = merge_optout(BI, ConflictRule.ADOBE, True, FlagState(False, at(9)), FlagState(True, at(1)))
    assert (decision.write_dynamics, decision.write_campaign, decision.base) == (True, None, True)


def test_adobe_rule_without_campaign_timestamp_keeps_the_opt_out() -> None:
    decision = merge_optout(BI, ConflictRule.ADOBE, True, FlagState(True, at(1)), FlagState(False, None))
    assert decision.write_campaign is True and decision.winner == "opt_out"


def test_never_agreed_sides_are_a_conflict_decided_by_the_named_side() -> None:
    d, c = FlagState(True, at(1)), FlagState(False, at(2))
    assert merge_optout(BI, ConflictRule.DYNAMICS_WINS, None, d, c).write_campaign is True
    assert merge_optout(BI, ConflictRule.CAMPAIGN_WINS, None, d, c).write_dynamics is False
    assert merge_optout(BI, ConflictRule.CAMPAIGN_WINS, None, d, c).conflict


def test_one_way_mode_overwrites_target_only_when_the_source_changed() -> None:
    mode = OptOutMode.DYNAMICS_TO_CAMPAIGN
    source_changed = merge_optout(mode, ConflictRule.ADOBE, False, FlagState(True), FlagState(False))
    assert (source_changed.write_campaign, source_changed.write_dynamics) == (True, None)
    target_edited = merge_optout(mode, ConflictRule.ADOBE, False, FlagState(False), FlagState(True))
    assert not target_edited.writes and target_edited.base is False


def test_campaign_to_dynamics_mode_writes_only_dynamics() -> None:
    decision = merge_optout(
        OptOutMode.CAMPAIGN_TO_DYNAMICS, ConflictRule.ADOBE, None, FlagState(False), FlagState(True)
    )
    assert (decision.write_dynamics, decision.write_campaign) == (True, None)


def test_disabled_mode_never_writes() -> None:
    decision = merge_optout(OptOutMode.DISABLED, ConflictRule.ADOBE, None, FlagState(True), FlagState(False))
    assert not decision.writes and not decision.conflict


# --- properties over edit sequences -----------------------------------------------------------------------------


@dataclass
class World:
    """Both sides of one contact/pair as crmbridge's merges and outside edits leave them."""

    dynamics: FlagState
    campaign: FlagState
    base: bool | None
    clock: int = 0

    def tick(self) -> datetime:
        self.clock += 1
        return at(self.clock)

    def apply(self, decision: MergeDecision) -> None:
        if decision.write_dynamics is not None:
            self.dynamics = FlagState(decision.write_dynamics, self.tick())
        if decision.write_campaign is not None:
            self.campaign = FlagState(decision.write_campaign, self.tick())
        self.base = decision.base


# An edit: (side, value, how many minutes later; 0 gives equal timestamps)
edits = st.lists(st.tuples(st.sampled_from(["dynamics", "campaign"]), st.booleans(), st.integers(0, 3)), max_size=6)
rounds = st.lists(edits, min_size=1, max_size=5)
start = st.tuples(st.booleans(), st.booleans(), st.one_of(st.none(), st.booleans()))


def _edit(world: World, side: str, value: bool, later: int) -> None:
    world.clock += later
    state = FlagState(value, at(world.clock))
    if side == "dynamics":
        world.dynamics = state
    else:
        world.campaign = state


@settings(deadline=None)
@given(start=start, history=rounds, rule=st.sampled_from(list(ConflictRule)), mode=st.sampled_from(list(OptOutMode)))
def test_merge_is_idempotent_and_never_oscillates(
    start: tuple[bool, bool, bool | None],
    history: list[list[tuple[str, bool, int]]],
    rule: ConflictRule,
    mode: OptOutMode,
) -> None:
    world = World(FlagState(start[0], at(0)), FlagState(start[1], at(0)), start[2])
    for round_edits in history:
        for side, value, later in round_edits:
            _edit(world, side, value, later)
        world.apply(merge_optout(mode, rule, world.base, world.dynamics, world.campaign))
        # Merging again with no outside change must write nothing and report no conflict.
        again = merge_optout(mode, rule, world.base, world.dynamics, world.campaign)
        assert not again.writes and not again.conflict, again
        assert again.base == world.base


@settings(deadline=None)
@given(start=start, history=rounds, rule=st.sampled_from([ConflictRule.ADOBE, ConflictRule.OPT_OUT_WINS]))
def test_opt_out_is_only_reversed_by_a_strictly_newer_campaign_opt_in_under_adobe(
    start: tuple[bool, bool, bool | None], history: list[list[tuple[str, bool, int]]], rule: ConflictRule
) -> None:
    world = World(FlagState(start[0], at(0)), FlagState(start[1], at(0)), start[2])
    for round_edits in history:
        for side, value, later in round_edits:
            _edit(world, side, value, later)
        decision = merge_optout(BI, rule, world.base, world.dynamics, world.campaign)
        # crmbridge never writes an opt-in into a side holding an opt-out ...
        if world.campaign.value:
            assert decision.write_campaign is not False
        if world.dynamics.value and decision.write_dynamics is False:
            # ... except Adobe's rule: a strictly newer Campaign opt-in wins over Dynamics.
            assert rule is ConflictRule.ADOBE
            assert world.campaign.value is False
            assert world.campaign.changed_at is not None and world.dynamics.changed_at is not None
            assert world.campaign.changed_at > world.dynamics.changed_at
        world.apply(decision)


@settings(deadline=None)
@given(start=start, history=rounds, rule=st.sampled_from([ConflictRule.DYNAMICS_WINS, ConflictRule.CAMPAIGN_WINS]))
def test_named_side_value_ends_on_both_sides_in_every_conflict(
    start: tuple[bool, bool, bool | None], history: list[list[tuple[str, bool, int]]], rule: ConflictRule
) -> None:
    world = World(FlagState(start[0], at(0)), FlagState(start[1], at(0)), start[2])
    for round_edits in history:
        for side, value, later in round_edits:
            _edit(world, side, value, later)
        named = world.dynamics.value if rule is ConflictRule.DYNAMICS_WINS else world.campaign.value
        decision = merge_optout(BI, rule, world.base, world.dynamics, world.campaign)
        world.apply(decision)
        assert world.dynamics.value == world.campaign.value  # bidirectional always converges in one merge
        if decision.conflict:
            assert world.dynamics.value == named


@pytest.mark.parametrize("rule", list(ConflictRule))
def test_every_bidirectional_merge_leaves_both_sides_equal(rule: ConflictRule) -> None:
    for base in (None, True, False):
        for d in (True, False):
            for c in (True, False):
                world = World(FlagState(d, at(1)), FlagState(c, at(1)), base)
                world.apply(merge_optout(BI, rule, base, world.dynamics, world.campaign))
                assert world.dynamics.value == world.campaign.value
