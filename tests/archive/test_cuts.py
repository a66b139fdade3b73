"""The cut policy: when a room becomes an archive, and that a room's archives cover its
messages with no gap and no overlap (hypothesis drives arbitrary histories)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive.content import REASONS
from archive.cuts import PARIS, Cut, CutPolicy, CutReason, RoomProgress, after_cut, due_cut
from archive.packaging import REASON_NAMES

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)  # 09:00 in Paris
POLICY = CutPolicy(idle=timedelta(hours=2), daily_hour=20)


def room(kind: str = "care_team") -> RoomProgress:
    return RoomProgress(room_id=7, kind=kind)


def test_nothing_received_nothing_cut():
    assert due_cut(room(), now=START + timedelta(days=3), policy=POLICY) is None


def test_the_first_archive_starts_at_the_first_message_served():
    progress = room().received(41, START).received(42, START + timedelta(minutes=5))
    cut = due_cut(progress, now=START + timedelta(minutes=5, hours=2), policy=POLICY)
    assert cut == Cut(7, 41, 42, CutReason.IDLE, START + timedelta(minutes=5, hours=2))


def test_an_idle_conversation_is_cut_after_the_idle_time_not_before():
    progress = room().received(1, START)
    assert (
        due_cut(progress, now=START + timedelta(hours=2) - timedelta(seconds=1), policy=POLICY)
        is None
    )
    cut = due_cut(progress, now=START + timedelta(hours=2), policy=POLICY)
    assert cut is not None
    assert (cut.first_seq, cut.last_seq, cut.reason) == (1, 1, CutReason.IDLE)


def test_a_teleexpertise_is_not_cut_when_idle_but_on_its_final_event():
    progress = room("teleexpertise").received(1, START).received(2, START)
    assert due_cut(progress, now=START + timedelta(hours=5), policy=POLICY) is None
    progress = progress.received(3, START + timedelta(hours=5)).received(
        4, START + timedelta(hours=5)
    )
    progress = progress.case_ended(3)  # the close; a later message stays for the next archive
    cut = due_cut(progress, now=START + timedelta(hours=5), policy=POLICY)
    assert cut is not None
    assert (cut.first_seq, cut.last_seq, cut.reason) == (1, 3, CutReason.TELEEXPERTISE_FINAL)
    after = after_cut(progress, cut)
    assert (after.archived_up_to, after.final_seq) == (3, None)
    assert due_cut(after, now=START + timedelta(hours=5), policy=POLICY) is None


def test_an_expiry_ends_the_case_at_the_last_message_received():
    progress = room("teleexpertise").received(1, START).received(2, START).case_ended(None)
    cut = due_cut(progress, now=START, policy=POLICY)
    assert cut is not None
    assert (cut.first_seq, cut.last_seq, cut.reason) == (1, 2, CutReason.TELEEXPERTISE_FINAL)


def test_the_daily_cut_is_at_the_local_hour_in_paris_summer_and_winter():
    for day in (datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 7, 10, tzinfo=UTC)):
        morning = day.replace(hour=8)
        progress = room("teleexpertise").received(1, morning)
        eight_pm = datetime(day.year, day.month, day.day, 20, tzinfo=PARIS)
        assert due_cut(progress, now=eight_pm - timedelta(seconds=1), policy=POLICY) is None
        cut = due_cut(progress, now=eight_pm, policy=POLICY)
        assert cut is not None
        assert cut.reason is CutReason.DAILY
        # Cut at 20:00: the next message waits for the next evening.
        after = after_cut(progress, cut).received(2, eight_pm + timedelta(minutes=1))
        assert due_cut(after, now=eight_pm + timedelta(hours=3), policy=POLICY) is None
        next_day = eight_pm + timedelta(days=1)
        later = due_cut(after, now=next_day, policy=POLICY)
        assert later is not None
        assert (later.first_seq, later.last_seq, later.reason) == (2, 2, CutReason.DAILY)


def test_on_demand_and_removal():
    progress = room().received(5, START)
    assert due_cut(progress, now=START, policy=POLICY) is None
    requested = RoomProgress(**{**_fields(progress), "cut_requested": True})
    cut = due_cut(requested, now=START, policy=POLICY)
    assert cut is not None
    assert cut.reason is CutReason.ON_DEMAND
    assert not after_cut(requested, cut).cut_requested
    removed = RoomProgress(**{**_fields(progress), "removed": True})
    cut = due_cut(removed, now=START, policy=POLICY)
    assert cut is not None
    assert cut.reason is CutReason.ARCHIVER_REMOVED
    # Nothing received after the removal counts.
    assert after_cut(removed, cut).received(6, START).received_up_to == 5


def test_a_cut_must_follow_the_last_archive():
    progress = room().received(1, START).received(2, START)
    with pytest.raises(ValueError, match="right after"):
        after_cut(progress, Cut(7, 2, 2, CutReason.ON_DEMAND, START))


def test_the_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="positive"):
        CutPolicy(idle=timedelta(0))
    with pytest.raises(ValueError, match="0 to 23"):
        CutPolicy(daily_hour=24)


def _fields(progress: RoomProgress) -> dict:
    return {name: getattr(progress, name) for name in RoomProgress.__slots__}


steps = st.lists(
    st.one_of(
        st.tuples(st.just("message"), st.integers(1, 3)),  # a message, after a gap of 0-2
        st.tuples(st.just("wait"), st.integers(1, 60 * 30)),  # minutes
        st.tuples(st.just("final"), st.booleans()),  # with an event, or an expiry
        st.tuples(st.just("demand"), st.just(0)),
        st.tuples(st.just("remove"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["care_team", "direct", "teleexpertise"]),
    start_seq=st.integers(1, 1000),
    history=steps,
    idle_minutes=st.integers(1, 600),
    daily_hour=st.one_of(st.none(), st.integers(0, 23)),
)
def test_consecutive_archives_have_no_gap_and_no_overlap(
    kind, start_seq, history, idle_minutes, daily_hour
):
    policy = CutPolicy(idle=timedelta(minutes=idle_minutes), daily_hour=daily_hour)
    progress = RoomProgress(room_id=1, kind=kind)
    now, seq = START, start_seq - 1
    received: list[int] = []
    cuts: list[Cut] = []

    def cut_what_is_due() -> None:
        nonlocal progress
        while (cut := due_cut(progress, now=now, policy=policy)) is not None:
            cuts.append(cut)
            progress = after_cut(progress, cut)

    for action, value in history:
        if action == "message":
            seq += value
            before = progress.received_up_to
            progress = progress.received(seq, now)
            if progress.received_up_to != before:
                received.append(seq)
        elif action == "wait":
            now += timedelta(minutes=value)
        elif action == "final":
            progress = progress.case_ended(seq if value and received else None)
        elif action == "demand":
            progress = RoomProgress(**{**_fields(progress), "cut_requested": True})
        else:
            progress = RoomProgress(**{**_fields(progress), "removed": True})
        cut_what_is_due()
    # A last on-demand cut takes whatever is left.
    progress = RoomProgress(**{**_fields(progress), "cut_requested": True})
    cut_what_is_due()

    if not received:
        assert cuts == []
        return
    assert cuts[0].first_seq == received[0]
    for earlier, later in itertools.pairwise(cuts):
        assert later.first_seq == earlier.last_seq + 1
    for cut in cuts:
        assert cut.first_seq <= cut.last_seq
    assert cuts[-1].last_seq == received[-1]
    covered = [s for s in received if any(c.first_seq <= s <= c.last_seq for c in cuts)]
    assert covered == received


def test_every_cut_reason_is_an_archive_reason():
    assert {REASON_NAMES[reason] for reason in CutReason} == REASONS
    assert REASON_NAMES[CutReason.ARCHIVER_REMOVED] == "archiver_removed"
