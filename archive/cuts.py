"""When a room's messages become an archive: the cut policy (docs/archive.md, "The
archiver service").

An archive covers an exact range ``[first_seq, last_seq]`` of a room's sequence numbers.
The first archive of a room starts at the first message the server served to the
archiver (the room's messages from when it was named); each later one starts right
after the previous one ends, so consecutive archives of a room have no gap and no
overlap. A room is cut:

* ``teleexpertise_final``: its téléexpertise reached a final state (closed, declined,
  cancelled, expired): the archive ends at that event (an expiry has no event: it ends
  at the last message received when the expiry was learnt);
* ``idle``: a care-team or direct conversation had no new message for ``idle``;
* ``daily``: at ``daily_hour`` (local time of ``timezone``), whatever is not archived yet;
* ``on_demand``: the operator asked (``python -m client archive cut``);
* ``archiver_removed``: the room stopped naming the archiver: what it received before
  the removal is archived, and nothing after.

Everything here is pure: time comes in as an argument (aware datetimes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

FINAL_STATES = frozenset({"closed", "declined", "cancelled", "expired"})
PARIS = ZoneInfo("Europe/Paris")


class CutReason(StrEnum):
    TELEEXPERTISE_FINAL = "teleexpertise_final"
    IDLE = "idle"
    DAILY = "daily"
    ON_DEMAND = "on_demand"
    ARCHIVER_REMOVED = "archiver_removed"


@dataclass(frozen=True, slots=True)
class CutPolicy:
    """``idle``: a care-team or direct conversation quiet this long is cut (a
    téléexpertise waits for its final state, or the daily cut). ``daily_hour``: the local
    hour of the daily cut, for every room (None: no daily cut)."""

    idle: timedelta = timedelta(hours=2)
    daily_hour: int | None = 20
    timezone: ZoneInfo = PARIS

    def __post_init__(self) -> None:
        if self.idle <= timedelta(0):
            raise ValueError("the idle time is positive")
        if self.daily_hour is not None and not 0 <= self.daily_hour <= 23:
            raise ValueError("the daily cut hour is 0 to 23")

    def last_daily_cut(self, now: datetime) -> datetime | None:
        """The most recent daily cut time at or before ``now`` (None: no daily cut)."""
        if self.daily_hour is None:
            return None
        local = now.astimezone(self.timezone)
        today = datetime.combine(local.date(), time(self.daily_hour), tzinfo=self.timezone)
        if today > local:
            previous = local.date() - timedelta(days=1)
            today = datetime.combine(previous, time(self.daily_hour), tzinfo=self.timezone)
        return today


@dataclass(frozen=True, slots=True)
class RoomProgress:
    """What the archiver knows of one room, kept in the outbox.

    ``archived_up_to``: the last sequence number of the last archive (None before the
    first message); ``received_up_to``: the last message received; ``last_message_at``:
    when it arrived; ``final_seq``: where a final téléexpertise event (or expiry) ends
    the case, not yet archived; ``last_cut_at``: when the last archive was cut;
    ``cut_requested``: the operator asked for a cut; ``removed``: the room no longer
    names the archiver."""

    room_id: int
    kind: str
    archived_up_to: int | None = None
    received_up_to: int | None = None
    last_message_at: datetime | None = None
    final_seq: int | None = None
    last_cut_at: datetime | None = None
    cut_requested: bool = False
    removed: bool = False

    def received(self, seq: int, at: datetime) -> RoomProgress:
        """A message arrived (sequence numbers grow; gaps are messages the archiver
        could not read, which stay inside the ranges)."""
        if self.removed or (self.received_up_to is not None and seq <= self.received_up_to):
            return self
        start = self.archived_up_to if self.archived_up_to is not None else seq - 1
        return replace(self, archived_up_to=start, received_up_to=seq, last_message_at=at)

    def case_ended(self, seq: int | None) -> RoomProgress:
        """The téléexpertise reached a final state at event ``seq`` (None: an expiry,
        which has no event)."""
        end = seq if seq is not None else self.received_up_to
        if end is None or (self.archived_up_to is not None and end <= self.archived_up_to):
            return self
        return replace(self, final_seq=end)

    @property
    def unarchived(self) -> bool:
        return (
            self.received_up_to is not None
            and self.archived_up_to is not None
            and self.received_up_to > self.archived_up_to
        )


@dataclass(frozen=True, slots=True)
class Cut:
    room_id: int
    first_seq: int
    last_seq: int
    reason: CutReason
    cut_at: datetime


def due_cut(progress: RoomProgress, *, now: datetime, policy: CutPolicy) -> Cut | None:
    """The archive to cut now for this room, or None. The caller stores the archive and
    ``after_cut`` in one transaction."""
    if progress.archived_up_to is None or progress.received_up_to is None:
        return None
    if progress.received_up_to <= progress.archived_up_to:
        return None
    first = progress.archived_up_to + 1
    if progress.final_seq is not None and progress.final_seq >= first:
        return Cut(progress.room_id, first, progress.final_seq, CutReason.TELEEXPERTISE_FINAL, now)
    reason: CutReason | None = None
    if progress.removed:
        reason = CutReason.ARCHIVER_REMOVED
    elif progress.cut_requested:
        reason = CutReason.ON_DEMAND
    elif (
        progress.kind != "teleexpertise"
        and progress.last_message_at is not None
        and now - progress.last_message_at >= policy.idle
    ):
        reason = CutReason.IDLE
    else:
        daily = policy.last_daily_cut(now)
        since = progress.last_cut_at or progress.last_message_at
        if daily is not None and since is not None and since < daily:
            reason = CutReason.DAILY
    if reason is None:
        return None
    return Cut(progress.room_id, first, progress.received_up_to, reason, now)


def after_cut(progress: RoomProgress, cut: Cut) -> RoomProgress:
    """The room once ``cut`` is stored: archived up to its end."""
    if progress.archived_up_to is not None and cut.first_seq != progress.archived_up_to + 1:
        raise ValueError("a cut starts right after the last archive")
    final = progress.final_seq
    if final is not None and final <= cut.last_seq:
        final = None
    return replace(
        progress,
        archived_up_to=cut.last_seq,
        final_seq=final,
        last_cut_at=cut.cut_at,
        cut_requested=False,
    )
