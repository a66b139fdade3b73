"""Push subscriptions of devices and per-room mutes. See docs/push.md.

An endpoint is a capability URL: whoever knows it (with the VAPID key) can wake the
device. It is shown only to the device that registered it and never logged.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from chat.models import Device, Room
from directory.models import Practitioner

MAX_ENDPOINT_LENGTH = 2048


class PushSubscription(models.Model):
    """The Web Push subscription of one device (the browser's ``PushSubscription``).

    ``p256dh`` (the browser's P-256 public key, 65 bytes) and ``auth`` (16 bytes) are
    stored in base64url, as browsers give them. One per device; an endpoint belongs to
    one device at a time (a browser logged in again as another device takes it over).
    """

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="push")
    endpoint = models.CharField(max_length=MAX_ENDPOINT_LENGTH, unique=True)
    p256dh = models.CharField(max_length=88)
    auth = models.CharField(max_length=24)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"push subscription of device {self.device_id}"


class RoomMute(models.Model):
    """No push for a room, for every device of a practitioner or for one device.

    Exactly one of ``practitioner`` and ``device`` is set. ``until`` (optional) ends
    the mute by itself.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(practitioner__isnull=False, device__isnull=True)
                    | Q(practitioner__isnull=True, device__isnull=False)
                ),
                name="room_mute_one_scope",
            ),
            models.UniqueConstraint(
                fields=["room", "practitioner"],
                condition=Q(practitioner__isnull=False),
                name="room_mute_practitioner_unique",
            ),
            models.UniqueConstraint(
                fields=["room", "device"],
                condition=Q(device__isnull=False),
                name="room_mute_device_unique",
            ),
        ]

    def __str__(self) -> str:
        scope = f"device {self.device_id}" if self.device_id else str(self.practitioner_id)
        return f"room {self.room_id} muted for {scope}"
