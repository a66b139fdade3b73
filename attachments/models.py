"""An encrypted attachment as the server knows it: opaque bytes tied to one message.

The upload names the room and the client message id of the message that will carry the
attachment's descriptor (key, hash) inside its encrypted envelope. The server cannot read
that envelope, so the tie is made from the outside: the blob belongs to the envelope that
the uploading device stores in that room under that client id (the envelope's
idempotency key). See docs/attachments.md.
"""

from __future__ import annotations

import uuid

from django.db import models

from chat.models import Device, Room
from directory.models import Practitioner


def new_attachment_id() -> str:
    """128 random bits as 32 hex digits: unguessable, and safe in a storage path."""
    return uuid.uuid4().hex


class AttachmentState(models.TextChoices):
    UPLOADING = "uploading", "En cours d'envoi"
    COMPLETE = "complete", "Complète"


class Attachment(models.Model):
    """One encrypted file, from its first uploaded part to its purge.

    ``size`` is the ciphertext size declared when the upload starts; it counts against
    the uploader's quota from that moment. ``sha256`` is set when the upload completes
    and the server has hashed the assembled blob.
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_attachment_id)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    uploader = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="+")
    uploader_device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=64)
    size = models.BigIntegerField()
    part_size = models.IntegerField()
    state = models.CharField(
        max_length=16, choices=AttachmentState.choices, default=AttachmentState.UPLOADING
    )
    sha256 = models.CharField(max_length=64, blank=True)
    storage_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["uploader", "state"], name="attachment_by_uploader"),
            models.Index(fields=["state", "updated_at"], name="attachment_by_age"),
            models.Index(fields=["uploader_device", "message_id"], name="attachment_by_message"),
        ]

    def __str__(self) -> str:
        return f"attachment {self.pk} ({self.state})"

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def expected_part_size(self, index: int) -> int:
        """Every part is ``part_size`` bytes except the last, which holds the rest."""
        if index < self.part_count - 1:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)


class AttachmentPart(models.Model):
    """A part received during an upload; deleted when the upload completes or is purged."""

    attachment = models.ForeignKey(Attachment, on_delete=models.CASCADE, related_name="parts")
    index = models.IntegerField()
    size = models.IntegerField()
    storage_name = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["attachment", "index"], name="attachment_part_unique"),
        ]

    def __str__(self) -> str:
        return f"part {self.index} of {self.attachment_id}"
