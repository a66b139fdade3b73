"""The to-device queue: messages for one device (sender-key shares, server notices).

A sender-key share is sealed with HPKE to the recipient's key, so the server stores and
forwards opaque bytes. A message stays queued until the recipient acknowledges it
(REST), so a device that was offline gets its keys when it comes back; connected
devices also get it live as a ``to_device`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from chat.clock import SYSTEM_CLOCK
from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, device_topic, publish_on_commit
from chat.frames import encode, encode_body
from chat.models import Device, Membership, Room, ToDeviceMessage
from chat.services.devices import DeviceIdentity
from e2ee.encoding import canonical_json

MAX_BODY_BYTES = 4096
MAX_BATCH = 600
MAX_QUEUED_PER_DEVICE = 10_000
KEY_SHARE = "key_share"
NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class Outgoing:
    device_id: int
    body: bytes


def to_device_frame(message: ToDeviceMessage) -> dict[str, object]:
    sender = (
        {"device": message.sender_device_id, "practitioner": message.sender_practitioner_id}
        if message.sender_device_id is not None
        else None
    )
    return {
        "id": message.pk,
        "kind": message.kind,
        "sender": sender,
        "body": encode_body(bytes(message.body)),
        "ts": message.created_at_ms,
    }


def _publish(message: ToDeviceMessage) -> None:
    text = encode({"type": "to_device", **to_device_frame(message)})
    publish_on_commit(
        device_topic(message.recipient_id), HubEvent(kind="frame", text=text, device=0)
    )


def check_batch(*, messages: list[Outgoing]) -> None:
    if not 1 <= len(messages) <= MAX_BATCH:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"Send 1 to {MAX_BATCH} messages at once.")
    if any(len(m.body) > MAX_BODY_BYTES for m in messages):
        raise RelaisError(ErrorCode.BODY_TOO_LARGE)


def reachable_devices(*, identity: DeviceIdentity, device_ids: list[int]) -> set[int]:
    """Which of ``device_ids`` the caller may write to or look up: unrevoked devices of
    the caller's practitioner, of someone who shares a room with them, or the archiver
    device of one of their rooms. Deny by default."""
    people = set(
        Membership.objects.filter(
            room__memberships__practitioner_id=identity.practitioner_id
        ).values_list("practitioner_id", flat=True)
    ) | {identity.practitioner_id}
    archivers = Room.objects.filter(
        memberships__practitioner_id=identity.practitioner_id, archiver_device__isnull=False
    ).values("archiver_device_id")
    return set(
        Device.objects.filter(pk__in=device_ids, revoked_at__isnull=True)
        .filter(Q(practitioner_id__in=people) | Q(pk__in=archivers))
        .values_list("pk", flat=True)
    )


def do_send_to_devices(*, identity: DeviceIdentity, messages: list[Outgoing]) -> list[int]:
    """Queue key shares for devices (all or nothing) and tell the connected ones.

    Recipients must be ``reachable_devices`` (NOT_FOUND otherwise); the queue of each is
    bounded."""
    check_batch(messages=messages)
    now_ms = SYSTEM_CLOCK.now_ms()
    recipient_ids = sorted({m.device_id for m in messages})
    with transaction.atomic():
        live = reachable_devices(identity=identity, device_ids=recipient_ids)
        missing = [d for d in recipient_ids if d not in live]
        if missing:
            raise RelaisError(ErrorCode.NOT_FOUND, f"Unknown or revoked device: {missing[0]}.")
        for device_id in recipient_ids:
            queued = ToDeviceMessage.objects.filter(recipient_id=device_id).count()
            if queued >= MAX_QUEUED_PER_DEVICE:
                raise RelaisError(ErrorCode.RATE_LIMITED, f"Device {device_id} has a full queue.")
        rows = ToDeviceMessage.objects.bulk_create(
            ToDeviceMessage(
                recipient_id=m.device_id,
                sender_device_id=identity.device_id,
                sender_practitioner_id=identity.practitioner_id,
                kind=KEY_SHARE,
                body=m.body,
                created_at_ms=now_ms,
            )
            for m in messages
        )
        for row in rows:
            _publish(row)
    return [row.pk for row in rows]


def do_queue_notice(*, device_ids: list[int], body: bytes) -> None:
    """Queue a server notice (not secret) for devices; call inside the caller's
    transaction. Published after commit."""
    now_ms = SYSTEM_CLOCK.now_ms()
    rows = ToDeviceMessage.objects.bulk_create(
        ToDeviceMessage(recipient_id=device_id, kind=NOTICE, body=body, created_at_ms=now_ms)
        for device_id in device_ids
    )
    for row in rows:
        _publish(row)


def pending_messages(
    *, identity: DeviceIdentity, after_id: int, limit: int
) -> list[ToDeviceMessage]:
    return list(
        ToDeviceMessage.objects.filter(recipient_id=identity.device_id, pk__gt=after_id).order_by(
            "pk"
        )[:limit]
    )


def do_acknowledge(*, identity: DeviceIdentity, up_to_id: int) -> int:
    """Delete this device's messages up to ``up_to_id``; returns how many."""
    deleted, _ = ToDeviceMessage.objects.filter(
        recipient_id=identity.device_id, pk__lte=up_to_id
    ).delete()
    return deleted


def queue_revocation_notices(*, device_id: int) -> None:
    """Tell the devices of the revoked device's practitioner and of everyone who shares a
    room with them (``{"v":2,"type":"device_revoked","national_id","device"}``). A hint:
    each device checks the revocation in the log before acting on it. Call inside the
    revoking transaction."""
    practitioner_id = (
        Device.objects.filter(pk=device_id).values_list("practitioner_id", flat=True).get()
    )
    people = set(
        Membership.objects.filter(room__memberships__practitioner_id=practitioner_id).values_list(
            "practitioner_id", flat=True
        )
    ) | {practitioner_id}
    recipients = list(
        Device.objects.filter(practitioner_id__in=people, revoked_at__isnull=True)
        .exclude(public_keys={})
        .values_list("pk", flat=True)
    )
    if recipients:
        notice = {
            "v": 2,
            "type": "device_revoked",
            "national_id": practitioner_id,
            "device": device_id,
        }
        do_queue_notice(device_ids=recipients, body=canonical_json(notice))
