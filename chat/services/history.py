"""Reading stored envelopes: catch-up planning for ``sync`` and REST history pages."""

from __future__ import annotations

from dataclasses import dataclass

from chat.errors import ErrorCode, RelaisError
from chat.models import DeviceCursor, Envelope
from chat.services.access import access_reader
from chat.services.rooms import room_positions


@dataclass(frozen=True, slots=True)
class SyncEntry:
    """Send the envelopes ``start < seq <= end`` of ``room_id``."""

    room_id: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SyncPlan:
    entries: list[SyncEntry]
    errors: list[tuple[int, ErrorCode]]


def plan_sync(*, device_id: int, practitioner_id: str, requested: dict[int, int]) -> SyncPlan:
    """Decide what a ``sync`` sends: listed rooms from the client's position, the other
    rooms of the practitioner from the device's delivered cursor, never before the
    member joined."""
    positions = {p.room_id: p for p in room_positions(practitioner_id=practitioner_id)}
    cursors = dict(
        DeviceCursor.objects.filter(device_id=device_id).values_list("room_id", "delivered_seq")
    )
    entries: list[SyncEntry] = []
    errors: list[tuple[int, ErrorCode]] = []
    for room_id, seq in requested.items():
        position = positions.get(room_id)
        if position is None:
            errors.append((room_id, ErrorCode.NOT_MEMBER))
        elif seq < 0 or seq > position.last_seq:
            errors.append((room_id, ErrorCode.BAD_SEQUENCE))
        else:
            start = max(seq, position.joined_after_seq)
            entries.append(SyncEntry(room_id=room_id, start=start, end=position.last_seq))
    for room_id, position in positions.items():
        if room_id in requested:
            continue
        start = max(cursors.get(room_id, 0), position.joined_after_seq)
        entries.append(
            SyncEntry(room_id=room_id, start=min(start, position.last_seq), end=position.last_seq)
        )
    return SyncPlan(entries=entries, errors=errors)


def history_page(
    *,
    practitioner_id: str,
    room_id: int,
    after_seq: int | None,
    before_seq: int | None,
    limit: int,
) -> list[Envelope]:
    """A page of envelopes, ascending. ``after_seq`` pages forward, ``before_seq`` backward
    (the newest ``limit`` before it); with neither, the newest page. For a member, or
    for the organisation archiving the room (``access_reader``)."""
    reader = access_reader(room_id=room_id, practitioner_id=practitioner_id)
    if after_seq is not None and before_seq is not None:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Give either after or before, not both.")
    visible = Envelope.objects.filter(room_id=room_id, seq__gt=reader.after_seq)
    if after_seq is not None:
        if after_seq > reader.room.last_seq:
            raise RelaisError(ErrorCode.BAD_SEQUENCE)
        return list(visible.filter(seq__gt=after_seq).order_by("seq")[:limit])
    if before_seq is not None:
        visible = visible.filter(seq__lt=before_seq)
    newest = list(visible.order_by("-seq")[:limit])
    newest.reverse()
    return newest
