"""Who may get a push for a committed envelope (before presence is looked at).

A subscription is a target for envelope ``seq`` of a room when its device:

* is not revoked, and belongs to an active practitioner who is a member of the room
  and could read the envelope (``joined_after_seq < seq``);
* does not belong to the sender's practitioner (nobody is woken by their own message,
  on any of their devices);
* has not muted the room, and its practitioner has not either (mutes with an ``until``
  in the past no longer count);
* has a subscription that has not expired.

Connected devices are removed later, at send time (``dispatcher``), because presence
may change between the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q

from chat.models import Device
from push.jobs import PushJob
from push.models import PushSubscription, RoomMute
from push.sender import PushTarget


def push_targets(*, jobs: Sequence[PushJob], now: datetime) -> list[list[PushTarget]]:
    """For each job, the subscriptions to push to; three queries for the whole batch."""
    if not jobs:
        return []
    room_ids = {job.room_id for job in jobs}
    rows = (
        PushSubscription.objects.filter(
            device__revoked_at__isnull=True,
            device__practitioner__is_active=True,
            device__practitioner__memberships__room_id__in=room_ids,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list(
            "id",
            "device_id",
            "device__practitioner_id",
            "endpoint",
            "p256dh",
            "auth",
            "device__practitioner__memberships__room_id",
            "device__practitioner__memberships__joined_after_seq",
        )
    )
    by_room: dict[int, list[tuple[PushTarget, str, int]]] = defaultdict(list)
    for sub_id, device_id, practitioner_id, endpoint, p256dh, auth, room_id, joined in rows:
        target = PushTarget(
            subscription_id=sub_id, device_id=device_id, endpoint=endpoint, p256dh=p256dh, auth=auth
        )
        by_room[room_id].append((target, practitioner_id, joined))

    muted_practitioners: set[tuple[int, str]] = set()
    muted_devices: set[tuple[int, int]] = set()
    mutes = (
        RoomMute.objects.filter(room_id__in=room_ids)
        .filter(Q(until__isnull=True) | Q(until__gt=now))
        .values_list("room_id", "practitioner_id", "device_id")
    )
    for room_id, practitioner_id, device_id in mutes:
        if practitioner_id is not None:
            muted_practitioners.add((room_id, practitioner_id))
        if device_id is not None:
            muted_devices.add((room_id, device_id))

    senders = dict(
        Device.objects.filter(pk__in={job.sender_device_id for job in jobs}).values_list(
            "pk", "practitioner_id"
        )
    )
    result: list[list[PushTarget]] = []
    for job in jobs:
        sender_practitioner = senders.get(job.sender_device_id)
        result.append(
            [
                target
                for target, practitioner_id, joined_after_seq in by_room.get(job.room_id, ())
                if practitioner_id != sender_practitioner
                and target.device_id != job.sender_device_id
                and joined_after_seq < job.seq
                and (job.room_id, practitioner_id) not in muted_practitioners
                and (job.room_id, target.device_id) not in muted_devices
            ]
        )
    return result


def still_pushable(*, targets: Sequence[PushTarget]) -> set[int]:
    """The ids among ``targets`` whose subscription still exists, with the same endpoint,
    for a device that is not revoked (checked again before a retry)."""
    wanted = {target.subscription_id: target.endpoint for target in targets}
    rows = PushSubscription.objects.filter(
        pk__in=wanted, device__revoked_at__isnull=True
    ).values_list("pk", "endpoint")
    return {pk for pk, endpoint in rows if wanted.get(pk) == endpoint}


def do_remove_gone_subscription(*, subscription_id: int, endpoint: str) -> bool:
    """Delete a subscription the push service reported gone (404/410).

    Matches the endpoint too, so a subscription the device replaced meanwhile stays.
    """
    deleted, _ = PushSubscription.objects.filter(pk=subscription_id, endpoint=endpoint).delete()
    return deleted > 0


def do_prune_revoked_subscriptions() -> int:
    """Delete the subscriptions of revoked devices (they never get a push anyway)."""
    deleted, _ = PushSubscription.objects.filter(device__revoked_at__isnull=False).delete()
    return deleted
