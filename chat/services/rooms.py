"""Rooms and membership: create, list, add and remove members.

The end-to-end encryption layer will make every membership change a signed state
event; the rules below (admins decide, the server orders) stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, practitioner_topic, publish_on_commit, room_topic
from chat.frames import encode
from chat.models import Membership, Role, Room, RoomKind
from chat.services.access import access_admin, access_membership
from directory.models import Practitioner

MAX_ROOM_MEMBERS = 500


@dataclass(frozen=True, slots=True)
class RoomPosition:
    """Where a room stands for one member: its newest seq, and where their history starts."""

    room_id: int
    last_seq: int
    joined_after_seq: int


def _active_practitioners(national_ids: list[str]) -> dict[str, Practitioner]:
    found = {
        practitioner.national_id: practitioner
        for practitioner in Practitioner.objects.filter(
            national_id__in=national_ids, is_active=True
        )
    }
    missing = sorted(set(national_ids) - set(found))
    if missing:
        raise RelaisError(ErrorCode.NOT_FOUND, f"Unknown practitioner: {', '.join(missing)}.")
    return found


def do_create_room(*, creator: Practitioner, kind: str, member_ids: list[str]) -> Room:
    """Create a room; the creator is its admin, the others members."""
    if kind not in RoomKind.values:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"Unknown room kind {kind!r}.")
    others = sorted(set(member_ids) - {creator.national_id})
    if kind == RoomKind.DIRECT and len(others) != 1:
        raise RelaisError(ErrorCode.BAD_REQUEST, "A direct room has exactly two people.")
    if len(others) + 1 > MAX_ROOM_MEMBERS:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"A room has at most {MAX_ROOM_MEMBERS} members.")
    _active_practitioners(others)
    with transaction.atomic():
        room = Room.objects.create(kind=kind, created_by=creator)
        Membership.objects.create(room=room, practitioner=creator, role=Role.ADMIN)
        Membership.objects.bulk_create(
            Membership(room=room, practitioner_id=national_id, role=Role.MEMBER)
            for national_id in others
        )
        for national_id in [creator.national_id, *others]:
            _announce(
                room_id=room.pk, practitioner_id=national_id, role=Role.MEMBER, seq=0, added=True
            )
    return room


def do_add_member(
    *, actor: Practitioner, room_id: int, practitioner_id: str, role: str = Role.MEMBER
) -> Membership:
    """An admin adds a practitioner; they see the history from now on."""
    if role not in Role.values:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"Unknown role {role!r}.")
    with transaction.atomic():
        access_admin(room_id=room_id, practitioner_id=actor.national_id)
        # Taken under the room's row lock, so no envelope slips between the
        # position read and the membership becoming visible.
        room = Room.objects.select_for_update().get(pk=room_id)
        if room.kind == RoomKind.DIRECT:
            raise RelaisError(ErrorCode.BAD_REQUEST, "A direct room keeps its two people.")
        _active_practitioners([practitioner_id])
        if Membership.objects.filter(room=room, practitioner_id=practitioner_id).exists():
            raise RelaisError(ErrorCode.CONFLICT, "Already a member.")
        if room.memberships.count() >= MAX_ROOM_MEMBERS:
            raise RelaisError(ErrorCode.CONFLICT, f"A room has at most {MAX_ROOM_MEMBERS} members.")
        membership = Membership.objects.create(
            room=room, practitioner_id=practitioner_id, role=role, joined_after_seq=room.last_seq
        )
        _announce(
            room_id=room.pk,
            practitioner_id=practitioner_id,
            role=role,
            seq=room.last_seq,
            added=True,
        )
    return membership


def do_remove_member(*, actor: Practitioner, room_id: int, practitioner_id: str) -> None:
    """An admin removes a member, or a member leaves. The last admin cannot leave others
    without an admin."""
    with transaction.atomic():
        if practitioner_id == actor.national_id:
            membership = access_membership(room_id=room_id, practitioner_id=practitioner_id)
        else:
            access_admin(room_id=room_id, practitioner_id=actor.national_id)
            membership = access_membership(room_id=room_id, practitioner_id=practitioner_id)
        room = Room.objects.select_for_update().get(pk=room_id)
        if membership.role == Role.ADMIN:
            other_admins = room.memberships.filter(role=Role.ADMIN).exclude(pk=membership.pk)
            others = room.memberships.exclude(pk=membership.pk)
            if others.exists() and not other_admins.exists():
                raise RelaisError(
                    ErrorCode.CONFLICT, "Name another administrator before the last one leaves."
                )
        membership.delete()
        _announce(
            room_id=room.pk,
            practitioner_id=practitioner_id,
            role=membership.role,
            seq=room.last_seq,
            added=False,
        )


def _announce(*, room_id: int, practitioner_id: str, role: str, seq: int, added: bool) -> None:
    action = "added" if added else "removed"
    text = encode(
        {
            "type": "membership",
            "room": room_id,
            "action": action,
            "practitioner": practitioner_id,
            "role": role,
        }
    )
    event = HubEvent(
        kind=f"member_{action}", room=room_id, seq=seq, text=text, practitioner=practitioner_id
    )
    publish_on_commit(room_topic(room_id), event)
    if added:
        # The newcomer's connections are not listening to the room yet.
        publish_on_commit(practitioner_topic(practitioner_id), event)


def room_positions(*, practitioner_id: str) -> list[RoomPosition]:
    """The rooms of a practitioner with their newest seq and the start of visible history."""
    rows = Membership.objects.filter(practitioner_id=practitioner_id).values_list(
        "room_id", "room__last_seq", "joined_after_seq"
    )
    return [
        RoomPosition(room_id=r, last_seq=last, joined_after_seq=start) for r, last, start in rows
    ]


def rooms_of(*, practitioner_id: str) -> list[Room]:
    return list(
        Room.objects.filter(memberships__practitioner_id=practitioner_id)
        .prefetch_related("memberships")
        .order_by("-last_seq", "pk")
    )
