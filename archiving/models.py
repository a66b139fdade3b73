"""What an archiver reports of each room it archives: numbers and a stable error code,
never content (docs/archive.md, "Operator view")."""

from __future__ import annotations

from django.db import models

from chat.models import Device, Room


class ArchiveRoomStatus(models.Model):
    """The latest report of ``archiver_device`` about ``room``: archived up to which
    sequence number, received up to which, how many archives are in each state, the
    last error code (``smtp_unreachable``, ``903``...), and for the room's last archive
    how many recipients the MSSanté operator accepted and refused and how many members
    got no copy (no address in the directory): numbers, the addresses stay at the
    organisation."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    archiver_device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    archived_up_to = models.BigIntegerField(null=True)
    received_up_to = models.BigIntegerField(null=True)
    pending = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    integrated = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    last_error_code = models.CharField(max_length=40, blank=True, default="")
    recipients_accepted = models.PositiveIntegerField(default=0)
    recipients_refused = models.PositiveIntegerField(default=0)
    members_not_sent = models.PositiveIntegerField(default=0)
    reported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "archiver_device"], name="archive_status_one_per_room"
            )
        ]
        verbose_name = "état d'archivage d'un salon / room archive status"
        verbose_name_plural = "états d'archivage / room archive status"

    def __str__(self) -> str:
        return f"room {self.room_id} by archiver {self.archiver_device_id}"
