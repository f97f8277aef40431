"""Opt-outs through the real CLI against both emulators, in each of the four modes (issue 9, "Done when").

Expectations are written by hand from the issue's rules, per mode, as (Dynamics donotbulkemail, Campaign
blackListEmail); nothing here imports crmbridge's merge. One sync takes both sides as the baseline first (the
tables flow creates the profiles in the same run), then each test changes one or both sides and syncs again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest

from tests.e2e.harness import Emulators, ForkedCli, OptOutsSection, Org, state_url
from tests.e2e.kill import KillProxy
from tests.e2e.oracle import both_flags

pytestmark = pytest.mark.e2e

MakeOrg = Callable[..., Org]
MODES = ["disabled", "dynamics_to_campaign", "campaign_to_dynamics", "bidirectional"]
PAIR = "donotbulkemail:blackListEmail"


def _started(
    make_org: MakeOrg, cli: ForkedCli, optouts: OptOutsSection, *, campaign_url: str | None = None
) -> tuple[Org, list[str], dict[str, tuple[bool, bool | None]]]:
    """A small org after its first sync: the active contacts opted out on neither side (in a stable order), and
    every active contact's (Dynamics, Campaign) flags at that point."""
    org = make_org(contacts=16, vehicles_share=0.0, seed=17, optouts=optouts)
    if campaign_url is not None:
        org.config = org.emulators.write_config(org.config.parent, campaign_url=campaign_url, optouts=optouts)
    cli.sync(org.config)
    active = [c["contactid"] for c in org.dataverse.rows("contacts", ["contactid", "statecode"]) if c["statecode"] == 0]
    flags = both_flags(org.dataverse, org.campaign, sorted(str(c) for c in active))
    return org, [contact for contact, pair in flags.items() if pair == (False, False)], flags


def _text(output: str) -> str:
    """Terminal tables as plain text, one space between words (no box drawing, no wrapping at cell borders)."""
    return re.sub(r"\s+", " ", re.sub(r"[│┃━─┏┓┗┛┡┩└┘┳┻╇┴┬]", " ", output))


def _modified_on(org: Org, contact: str) -> str:
    rows = org.dataverse.rows("contacts", ["contactid", "modifiedon"])
    return str(next(r["modifiedon"] for r in rows if str(r["contactid"]) == contact))


def _history(cli: ForkedCli, org: Org, contact: str) -> tuple[int, str]:
    done = cli.run("optouts", "history", contact, "--state", state_url(org.config), check=False)
    return done.returncode, _text(done.stdout)


def _quiet(cli: ForkedCli, org: Org) -> None:
    """Another pass writes nothing: what crmbridge wrote comes back as an echo and is recognised (no ping-pong)."""
    counts = cli.sync(org.config).report()["optouts"]
    if counts is not None:
        assert counts["written_dynamics"] == 0 and counts["written_campaign"] == 0, counts


# --- propagation each allowed way, none the other way, none when disabled ---------------------------------

PROPAGATED = {  # contact A opted out in Dynamics, contact B in Campaign: (Dynamics, Campaign) after one pass
    "disabled": {"A": (True, False), "B": (False, True)},
    "dynamics_to_campaign": {"A": (True, True), "B": (False, True)},
    "campaign_to_dynamics": {"A": (True, False), "B": (True, True)},
    "bidirectional": {"A": (True, True), "B": (True, True)},
}


@pytest.mark.parametrize("mode", MODES)
def test_opt_outs_travel_only_the_ways_the_mode_allows_and_a_further_pass_writes_nothing(
    make_org: MakeOrg, forked_cli: ForkedCli, mode: str
) -> None:
    org, clean, before = _started(make_org, forked_cli, OptOutsSection(mode))
    a, b, *others = clean
    org.update("contact", [a], {"donotbulkemail": True})
    org.campaign_optout(b, {"blackListEmail": True})

    forked_cli.sync(org.config)
    after = both_flags(org.dataverse, org.campaign, clean)
    assert {"A": after[a], "B": after[b]} == PROPAGATED[mode]
    assert all(after[c] == (False, False) for c in others)
    untouched = [c for c in before if c not in (a, b)]  # opted out on one side or both before crmbridge began
    assert both_flags(org.dataverse, org.campaign, untouched) == {c: before[c] for c in untouched}

    _quiet(forked_cli, org)
    assert both_flags(org.dataverse, org.campaign, clean) == after
    code, history = _history(forked_cli, org, a)
    if mode in ("dynamics_to_campaign", "bidirectional"):
        assert code == 0 and "campaign False → True" in history, history
    else:
        assert code == 1, history


# --- a conflict with equal timestamps ----------------------------------------------------------------------

AFTER_EQUAL_TIME_CONFLICT = {  # both sides opted out; then at one instant Campaign opts in and Dynamics edits the row
    "disabled": (True, False),  # nothing travels
    "dynamics_to_campaign": (True, False),  # a Campaign-only edit stands until Dynamics changes the flag
    "campaign_to_dynamics": (False, False),  # Campaign's change travels
    "bidirectional": (True, True),  # adobe rule: Campaign not strictly newer, so opt-out = true wins
}


@pytest.mark.parametrize("mode", MODES)
def test_conflict_with_equal_timestamps_is_won_by_the_opt_out_and_logged_with_both_sides(
    make_org: MakeOrg, forked_cli: ForkedCli, mode: str
) -> None:
    org, clean, _ = _started(make_org, forked_cli, OptOutsSection(mode))
    x = clean[0]
    org.update("contact", [x], {"donotbulkemail": True})
    org.campaign_optout(x, {"blackListEmail": True})
    forked_cli.sync(org.config)
    assert both_flags(org.dataverse, org.campaign, [x])[x] == (True, True)

    org.update("contact", [x], {"jobtitle": "Head of Marketing"})  # not mapped: only modifiedon moves
    moment = _modified_on(org, x)  # Dataverse dates rows to the second: Campaign gets the same instant
    org.campaign_optout(x, {"blackListEmail": False}, at=moment)
    report = forked_cli.sync(org.config).report()

    assert both_flags(org.dataverse, org.campaign, [x])[x] == AFTER_EQUAL_TIME_CONFLICT[mode]
    _, history = _history(forked_cli, org, x)
    when = moment.replace("T", " ").rstrip("Z")
    if mode == "bidirectional":
        assert report["optouts"]["conflicts"] == 1
        conflict = f"{PAIR} True ({when}) False ({when}) dynamics adobe True"
        assert conflict in history, history
        assert "campaign False → True" in history, history
    else:
        # One-way modes have no conflicts (the source decides); disabled runs no opt-out pass at all.
        assert report["optouts"] is None if mode == "disabled" else report["optouts"]["conflicts"] == 0
        assert PAIR not in history.split("Conflicts for contact")[-1], history
    _quiet(forked_cli, org)


# --- an opt-out made in Campaign while crmbridge is not running ---------------------------------------------

AFTER_DOWNTIME = {  # an opt-out in Campaign while no crmbridge process runs; Dynamics renames the contact meanwhile
    "disabled": (False, True),
    "dynamics_to_campaign": (False, True),
    "campaign_to_dynamics": (True, True),
    "bidirectional": (True, True),
}


@pytest.mark.parametrize("mode", MODES)
def test_opt_out_made_in_campaign_while_crmbridge_is_down_is_picked_up_on_the_next_start(
    make_org: MakeOrg, forked_cli: ForkedCli, mode: str
) -> None:
    org, clean, _ = _started(make_org, forked_cli, OptOutsSection(mode))
    y = clean[0]
    org.campaign_optout(y, {"blackListEmail": True})
    # The next start's tables pass rewrites y's profile (new last name) before the opt-out pass reads it.
    org.update("contact", [y], {"lastname": "Nakamura-Øster"})

    forked_cli.sync(org.config)
    assert both_flags(org.dataverse, org.campaign, [y])[y] == AFTER_DOWNTIME[mode]
    _quiet(forked_cli, org)


# --- a change made in Campaign between crmbridge's poll and its write ----------------------------------------

AFTER_CHANGE_OF_MIND = {  # Campaign opts out; right after crmbridge's poll saw that, Campaign opts back in
    "disabled": (False, False),
    "dynamics_to_campaign": (False, False),
    "campaign_to_dynamics": (False, False),  # Campaign's last word travels
    "bidirectional": (False, False),  # Campaign's opt-in is the newest change anywhere: it wins (adobe rule)
}


class _ChangeAfterPoll:
    """A ``before_reply`` hook: once crmbridge's lastModified poll has been answered by Campaign, and before that
    answer reaches crmbridge, the contact opts back in on the landing page."""

    def __init__(self, org: Org, contact: str) -> None:
        self.org, self.contact = org, contact
        self.fired = threading.Event()

    def __call__(self, method: str, path: str, query: str) -> None:
        poll = method == "GET" and path.endswith("/profile") and "lastModified" in unquote(query)
        if poll and not self.fired.is_set():
            self.fired.set()
            self.org.campaign_optout(self.contact, {"blackListEmail": False})


@pytest.mark.parametrize("mode", MODES)
def test_campaign_change_between_poll_and_write_is_not_overwritten(
    make_org: MakeOrg, forked_cli: ForkedCli, emulators: Emulators, mode: str
) -> None:
    with KillProxy(emulators.campaign.base_url) as proxy:
        org, clean, _ = _started(make_org, forked_cli, OptOutsSection(mode), campaign_url=proxy.base_url)
        z = clean[0]
        org.campaign_optout(z, {"blackListEmail": True})
        hook = _ChangeAfterPoll(org, z)
        proxy.before_reply = hook
        forked_cli.sync(org.config)
        proxy.before_reply = None
        if mode == "disabled":  # no opt-out pass, no poll to hook: the same two changes, one after the other
            assert not hook.fired.is_set()
            org.campaign_optout(z, {"blackListEmail": False})
        assert hook.fired.is_set() or mode == "disabled"
        # The opt-out crmbridge polled is gone before it writes: nothing of it may land in Dynamics. (Were it
        # written, the next pass would see a Dynamics opt-out dated after the Campaign opt-in whenever the two
        # fall in different seconds, and the adobe rule would then overwrite the opt-in.)
        assert both_flags(org.dataverse, org.campaign, [z])[z] == (False, False)
        forked_cli.sync(org.config)
        assert both_flags(org.dataverse, org.campaign, [z])[z] == AFTER_CHANGE_OF_MIND[mode]
        _quiet(forked_cli, org)
        assert both_flags(org.dataverse, org.campaign, [z])[z] == AFTER_CHANGE_OF_MIND[mode]


# --- a tenant without per-flag timestamps ------------------------------------------------------------------

WITHOUT_FLAG_TIMESTAMPS = {  # P: Campaign opt-out. Q, R: opted out on both sides, then Campaign opts in 2 s after
    # (Q) or 1 s before (R) Dynamics edits the row; the profile's lastModified is all that dates Campaign's change.
    "disabled": {"P": (False, True), "Q": (True, False), "R": (True, False)},
    "dynamics_to_campaign": {"P": (False, True), "Q": (True, False), "R": (True, False)},
    "campaign_to_dynamics": {"P": (True, True), "Q": (False, False), "R": (False, False)},
    "bidirectional": {"P": (True, True), "Q": (False, False), "R": (True, True)},  # adobe: newer Campaign wins
}
CHECK_PER_FLAG = "the tenant has per-flag …LastModified timestamps: the flow uses them"
CHECK_LAST_MODIFIED = "the tenant has no per-flag …LastModified timestamps: profile lastModified"


def _moment(dataverse_time: str, shift_seconds: int = 0) -> datetime:
    return datetime.fromisoformat(dataverse_time.replace("Z", "+00:00")) + timedelta(seconds=shift_seconds)


def _shown(moment: datetime) -> str:
    """How ``optouts history`` prints a time."""
    return f"{moment:%Y-%m-%d %H:%M:%S}"


@pytest.mark.parametrize("mode", MODES)
def test_tenant_without_flag_timestamps_propagates_and_resolves_conflicts_by_profile_last_modified(
    make_org: MakeOrg, forked_cli: ForkedCli, mode: str
) -> None:
    org, clean, _ = _started(make_org, forked_cli, OptOutsSection(mode))
    if mode == "bidirectional":  # the same finding in every enabled mode: once is enough with the timestamps on
        check = _text(forked_cli.run("check", "-c", str(org.config)).stdout)
        assert CHECK_PER_FLAG in check, check
    org.campaign_flag_timestamps(False)
    check = _text(forked_cli.run("check", "-c", str(org.config)).stdout)
    assert (CHECK_LAST_MODIFIED in check) is (mode != "disabled"), check

    p, q, r = clean[:3]
    org.update("contact", [q, r], {"donotbulkemail": True})
    for contact in (q, r):
        org.campaign_optout(contact, {"blackListEmail": True})
    forked_cli.sync(org.config)
    assert both_flags(org.dataverse, org.campaign, [q, r]) == {q: (True, True), r: (True, True)}

    org.campaign_optout(p, {"blackListEmail": True})
    org.update("contact", [q, r], {"jobtitle": "Buyer"})  # not mapped: only modifiedon moves
    q_dynamics, r_dynamics = _moment(_modified_on(org, q)), _moment(_modified_on(org, r))
    q_campaign, r_campaign = q_dynamics + timedelta(seconds=2), r_dynamics - timedelta(seconds=1)
    org.campaign_optout(q, {"blackListEmail": False}, at=q_campaign.isoformat())
    org.campaign_optout(r, {"blackListEmail": False}, at=r_campaign.isoformat())
    report = forked_cli.sync(org.config).report()

    after = both_flags(org.dataverse, org.campaign, [p, q, r])
    assert {"P": after[p], "Q": after[q], "R": after[r]} == WITHOUT_FLAG_TIMESTAMPS[mode]
    if mode == "bidirectional":
        assert report["optouts"]["conflicts"] == 2
        _, history = _history(forked_cli, org, q)
        conflict = f"{PAIR} True ({_shown(q_dynamics)}) False ({_shown(q_campaign)}) campaign adobe False"
        assert conflict in history, history
        _, history = _history(forked_cli, org, r)
        conflict = f"{PAIR} True ({_shown(r_dynamics)}) False ({_shown(r_campaign)}) dynamics adobe True"
        assert conflict in history, history
    else:
        assert report["optouts"] is None or report["optouts"]["conflicts"] == 0
    _quiet(forked_cli, org)
