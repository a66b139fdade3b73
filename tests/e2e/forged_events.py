"""What a dishonest server does to a room's signed state chain: it reads the chain it
stores and appends an event of its choosing, updating the room as if it had verified
it. The tests that use it check that members (and the archiver) refuse the result."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chat.models import Room, RoomStateEvent
from e2ee import state as chain
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair


def stored_state(room_id: int) -> chain.RoomState:
    """The room's state as the chain the server stores gives it."""
    events = [
        bytes(b)
        for b in RoomStateEvent.objects.filter(room_id=room_id)
        .order_by("epoch")
        .values_list("body", flat=True)
    ]
    return chain.replay_chain(events)


def append_event(
    room_id: int,
    current: chain.RoomState,
    *,
    author: tuple[str, int],
    key_pair: DeviceKeyPair,
    action: str,
    content: dict[str, Any],
    author_device_id: int | None = None,
    **room_fields: Any,
) -> bytes:
    """Sign ``action`` with ``key_pair`` in ``author``'s name, store it as the next
    epoch (under ``author_device_id``, the author's device unless given) and set the
    room's head to it along with ``room_fields``. Returns the stored event."""
    raw = chain.sign_event(
        state=current,
        room=current.room,
        author=author,
        key_pair=key_pair,
        action=action,
        content=content,
        timestamp=1,
    )
    head = b64u(chain.event_hash(raw))
    with transaction.atomic():
        RoomStateEvent.objects.create(
            room_id=room_id,
            epoch=current.epoch + 1,
            action=action,
            author_device_id=author[1] if author_device_id is None else author_device_id,
            hash=head,
            body=raw,
        )
        Room.objects.filter(pk=room_id).update(
            state_epoch=current.epoch + 1, state_head=head, **room_fields
        )
    return raw
