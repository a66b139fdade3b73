"""Who may do what in a room. Every permission rule of the chat lives here."""

from __future__ import annotations

from dataclasses import dataclass

from chat.errors import ErrorCode, RelaisError
from chat.models import Membership, Role, Room


def access_membership(*, room_id: int, practitioner_id: str) -> Membership:
    """The caller's membership; NOT_MEMBER when absent (a missing room looks the same)."""
    membership = (
        Membership.objects.select_related("room")
        .filter(room_id=room_id, practitioner_id=practitioner_id)
        .first()
    )
    if membership is None:
        raise RelaisError(ErrorCode.NOT_MEMBER)
    return membership


def access_admin(*, room_id: int, practitioner_id: str) -> Membership:
    """The caller's membership when it is an admin one; NOT_ADMIN otherwise."""
    membership = access_membership(room_id=room_id, practitioner_id=practitioner_id)
    if membership.role != Role.ADMIN:
        raise RelaisError(ErrorCode.NOT_ADMIN)
    return membership


@dataclass(frozen=True, slots=True)
class ReadAccess:
    """Who may read a room's state and envelopes, and from where: envelopes with
    ``seq > after_seq``."""

    room: Room
    after_seq: int


def access_reader(*, room_id: int, practitioner_id: str) -> ReadAccess:
    """A member reads from when they joined; the organisation whose archiver device the
    room's verified state names reads from when it was named. NOT_MEMBER otherwise.

    Reading is all an archiver may do: it has no ``Membership``, so it cannot send, and
    every other permission here stays member-only."""
    membership = (
        Membership.objects.select_related("room")
        .filter(room_id=room_id, practitioner_id=practitioner_id)
        .first()
    )
    if membership is not None:
        return ReadAccess(room=membership.room, after_seq=membership.joined_after_seq)
    room = Room.objects.filter(pk=room_id, archiver_device__practitioner_id=practitioner_id).first()
    if room is None:
        raise RelaisError(ErrorCode.NOT_MEMBER)
    return ReadAccess(room=room, after_seq=room.archiver_after_seq)
