"""Who may do what in a room. Every permission rule of the chat lives here."""

from __future__ import annotations

from chat.errors import ErrorCode, RelaisError
from chat.models import Membership, Role


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
