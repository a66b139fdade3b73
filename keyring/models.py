"""What devices exchange through the server without the server reading it
(docs/protocol.md §10.4 and §10.9): each device's current key-agreement key (public,
signed by the device), link requests between a practitioner's devices, and the backups
sealed to the practitioner's recovery code.
"""

from __future__ import annotations

from django.db import models

from chat.models import Device
from directory.models import Practitioner


class PublishedKexKey(models.Model):
    """A device's newest key-agreement key: the signed document as the device published
    it (``e2ee.kex``). Senders verify it themselves; the server only keeps the newest."""

    device = models.OneToOneField(
        Device, on_delete=models.CASCADE, primary_key=True, related_name="kex_key"
    )
    serial = models.BigIntegerField()
    document = models.BinaryField(max_length=1024)
    expires_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"key-agreement key {self.serial} of device {self.device_id}"


class LinkRequest(models.Model):
    """A new device asking one of its practitioner's devices for the identity key.

    ``request`` is the canonical request the new device signed into its link code;
    ``bundle`` the sealed answer of the approving device (opaque to the server)."""

    link_id = models.CharField(max_length=8, primary_key=True)
    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="link_request")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE)
    request = models.BinaryField(max_length=2048)
    bundle = models.BinaryField(max_length=65536, null=True)
    approved_by = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, related_name="approved_links"
    )
    created_at_ms = models.BigIntegerField()
    expires_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"link request {self.link_id} of device {self.device_id}"


class IdentityBackup(models.Model):
    """The identity key and account secret, sealed to the recovery code."""

    practitioner = models.OneToOneField(
        Practitioner, on_delete=models.CASCADE, primary_key=True, related_name="identity_backup"
    )
    sealed = models.BinaryField(max_length=8192)
    updated_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"identity backup of {self.practitioner_id}"


class HistoryKey(models.Model):
    """One sender key at the first index a device of the practitioner could read,
    sealed to the recovery code. ``key_id`` is chosen by the client (a hash) so that
    the same key sent twice is stored once."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE)
    key_id = models.CharField(max_length=64)
    sealed = models.BinaryField(max_length=8192)
    created_at_ms = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practitioner", "key_id"], name="history_key_unique")
        ]

    def __str__(self) -> str:
        return f"history key {self.key_id[:8]} of {self.practitioner_id}"
