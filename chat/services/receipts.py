"""Delivery and read receipts: a per-device cursor per room, told to the room."""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Greatest

from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, publish_on_commit, room_topic
from chat.frames import encode
from chat.models import DeviceCursor
from chat.services.access import access_membership
from chat.services.devices import DeviceIdentity


def do_record_receipt(*, identity: DeviceIdentity, room_id: int, seq: int, kind: str) -> None:
    """Move the device's cursor forward (never back) and announce it to the room."""
    with transaction.atomic():
        membership = access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
        if seq > membership.room.last_seq or seq <= membership.joined_after_seq:
            raise RelaisError(ErrorCode.BAD_SEQUENCE)
        cursor, _created = DeviceCursor.objects.select_for_update().get_or_create(
            device_id=identity.device_id, room_id=room_id
        )
        changes = {"delivered_seq": Greatest("delivered_seq", seq)}
        if kind == "read":
            changes["read_seq"] = Greatest("read_seq", seq)
        DeviceCursor.objects.filter(pk=cursor.pk).update(**changes)
        text = encode(
            {
                "type": "receipt",
                "room": room_id,
                "seq": seq,
                "kind": kind,
                "device": identity.device_id,
                "practitioner": identity.practitioner_id,
            }
        )
        publish_on_commit(
            room_topic(room_id),
            HubEvent(kind="frame", room=room_id, seq=seq, text=text, device=identity.device_id),
        )
