"""Unread counts per room, from the read cursors and the rooms' last sequence numbers.

A message is unread when it is visible to the member (after ``joined_after_seq``),
was sent by someone else, and comes after the furthest point any of the member's
devices has read (``DeviceCursor.read_seq``): what was read on the phone is not unread
on the laptop. Counting is bounded: at most the newest ``UNREAD_COUNT_LIMIT`` sequence
numbers of a room are looked at (clients show "999+"), so a room left unread for months
costs no more than a busy day.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.db.models import Count, Max, Q

from chat.models import DeviceCursor, Envelope
from chat.services.rooms import room_positions

UNREAD_COUNT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class RoomUnread:
    room_id: int
    last_seq: int
    read_seq: int
    """The furthest any of the practitioner's devices has read (0: nothing)."""
    unread: int
    capped: bool
    """True when only the newest ``UNREAD_COUNT_LIMIT`` envelopes were counted."""


def unread_counts(*, practitioner_id: str) -> list[RoomUnread]:
    """The practitioner's rooms, by id, with what is unread in each. Two queries, and a
    third only when some room has something new."""
    positions = room_positions(practitioner_id=practitioner_id)
    reads: dict[int, int] = dict(
        DeviceCursor.objects.filter(
            device__practitioner_id=practitioner_id,
            room_id__in=[position.room_id for position in positions],
        )
        .values("room_id")
        .annotate(read=Max("read_seq"))
        .values_list("room_id", "read")
    )
    windows: dict[int, tuple[int, int, bool]] = {}
    for position in positions:
        start = max(reads.get(position.room_id, 0), position.joined_after_seq)
        if position.last_seq > start:
            lower = max(start, position.last_seq - UNREAD_COUNT_LIMIT)
            windows[position.room_id] = (lower, position.last_seq, lower > start)
    counts: dict[int, int] = {}
    if windows:
        ranges = reduce(
            or_,
            (
                Q(room_id=room, seq__gt=lower, seq__lte=upper)
                for room, (lower, upper, _capped) in windows.items()
            ),
        )
        counts = dict(
            Envelope.objects.filter(ranges)
            .exclude(sender_practitioner_id=practitioner_id)
            .values("room_id")
            .annotate(count=Count("id"))
            .values_list("room_id", "count")
        )
    return [
        RoomUnread(
            room_id=position.room_id,
            last_seq=position.last_seq,
            read_seq=reads.get(position.room_id, 0),
            unread=counts.get(position.room_id, 0),
            capped=windows.get(position.room_id, (0, 0, False))[2],
        )
        for position in sorted(positions, key=lambda p: p.room_id)
    ]
