"""Rooms, members, devices and the opaque envelopes the server stores and relays.

The server never holds plaintext: an envelope body is ciphertext made by a client.
See docs/architecture.md and docs/protocol.md.
"""

from __future__ import annotations

from django.db import models

from directory.models import Practitioner


class DeviceKind(models.TextChoices):
    """What a device is, as its certificate in the key-transparency log says.

    ``device``: a practitioner's phone, browser or bot. ``archiver``: the archiver device
    of an organisation (``Practitioner.is_organisation``), which rooms may include so it
    receives their keys; created by ``manage.py create_archiver`` only (docs/e2ee.md).
    """

    DEVICE = "device", "Appareil d'un professionnel"
    ARCHIVER = "archiver", "Archiveur d'une organisation"


class Device(models.Model):
    """One phone, browser or bot of a practitioner, or an organisation's archiver; it
    holds a device token.

    Only the SHA-256 of the token is stored. Public keys are defined by the E2E layer.
    """

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=DeviceKind.choices, default=DeviceKind.DEVICE)
    token_hash = models.BinaryField(max_length=32, unique=True)
    public_keys = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The token stops working at this time unless used before (each use pushes it back,
    # at most once a day). None: never (an organisation's archiver, a service process).
    token_expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"device {self.pk} of {self.practitioner_id}"


class RoomKind(models.TextChoices):
    DIRECT = "direct", "Direct (deux personnes)"
    CARE_TEAM = "care_team", "Équipe de soins"
    TELEEXPERTISE = "teleexpertise", "Téléexpertise"


class Room(models.Model):
    """A conversation. Its title and patient identity live inside the encrypted state.

    ``last_seq`` is the sequence number of the newest envelope; the next envelope takes
    ``last_seq + 1`` under this row's lock.

    ``uid`` is the room id the clients chose and sign (docs/protocol.md, "Room state").
    ``state_epoch``/``state_head`` are the newest verified state event; ``policy`` and
    ``archiver`` mirror the verified state so every member sees them. Memberships are
    derived from the verified chain (``RoomStateEvent``), never written otherwise.

    ``archiver_device`` is the device the state names as archiver (not a member: it has
    no ``Membership``, so it cannot send); its organisation may read the room's state and
    the envelopes after ``archiver_after_seq`` (the room's ``last_seq`` when it was
    named).
    """

    kind = models.CharField(max_length=16, choices=RoomKind.choices)
    created_by = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="created_rooms"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seq = models.BigIntegerField(default=0)
    uid = models.CharField(max_length=22, unique=True, null=True, blank=True)
    state_epoch = models.BigIntegerField(default=-1)
    state_head = models.CharField(max_length=43, blank=True, default="")
    policy = models.JSONField(default=dict, blank=True)
    archiver = models.JSONField(null=True, blank=True)
    archiver_device = models.ForeignKey(
        Device, on_delete=models.PROTECT, null=True, blank=True, related_name="archived_rooms"
    )
    archiver_after_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.kind} room {self.pk}"


class Role(models.TextChoices):
    ADMIN = "admin", "Administrateur"
    MEMBER = "member", "Membre"


class Membership(models.Model):
    """A practitioner in a room. ``joined_after_seq`` bounds the history they may read."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    joined_after_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "practitioner"], name="membership_unique"),
        ]
        indexes = [models.Index(fields=["practitioner", "room"], name="membership_by_practitioner")]

    def __str__(self) -> str:
        return f"{self.practitioner_id} in room {self.room_id} ({self.role})"


class Envelope(models.Model):
    """One encrypted message as stored: opaque bytes with its place in the room.

    ``(room, seq)`` is unique and dense (1, 2, 3, ...). ``(sender_device, client_id)``
    is unique: a retried send finds the original row instead of storing twice.
    """

    # Every index and foreign-key check costs a write or a lookup per envelope on the hot
    # path (docs/performance.md), so only what a reader needs is kept:
    # * ``room`` and ``sender_device`` have no index of their own: the unique
    #   constraints below start with them;
    # * ``sender_device`` and ``sender_practitioner`` are not foreign keys in the
    #   database (a key check locks the referenced row for every insert). Devices and
    #   practitioners are never deleted: they are revoked or deactivated, and the
    #   admin refuses to delete them; Django's PROTECT still guards ORM deletes.
    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, related_name="envelopes", db_index=False
    )
    seq = models.BigIntegerField()
    sender_device = models.ForeignKey(
        Device, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    sender_practitioner = models.ForeignKey(
        Practitioner,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    client_id = models.CharField(max_length=64)
    body = models.BinaryField()
    size = models.IntegerField()
    created_at_ms = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="envelope_room_seq"),
            models.UniqueConstraint(
                fields=["sender_device", "client_id"], name="envelope_idempotency"
            ),
        ]

    def __str__(self) -> str:
        return f"envelope {self.room_id}#{self.seq}"


class DeviceCursor(models.Model):
    """How far a device has received (``delivered_seq``) and read (``read_seq``) a room."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="cursors")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    delivered_seq = models.BigIntegerField(default=0)
    read_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "room"], name="cursor_unique"),
        ]

    def __str__(self) -> str:
        return f"cursor of device {self.device_id} in room {self.room_id}"


class RoomStateEvent(models.Model):
    """One signed room-state event, as the client sent it, verified and in chain order.

    ``body`` is the canonical JSON the author device signed; ``hash`` its chain hash
    (base64url). The server checked the whole chain before storing it, and every client
    checks it again.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="state_events")
    epoch = models.BigIntegerField()
    action = models.CharField(max_length=16)
    author_device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    hash = models.CharField(max_length=43)
    body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "epoch"], name="state_event_room_epoch"),
        ]

    def __str__(self) -> str:
        return f"state event {self.room_id}@{self.epoch} ({self.action})"


class ToDeviceMessage(models.Model):
    """A message for one device, queued until that device acknowledges it.

    ``kind`` is ``key_share`` (an HPKE-sealed sender key, opaque to the server) or
    ``notice`` (a server notice, e.g. a new device certified for the practitioner).
    """

    recipient = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="inbox")
    sender_device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sender_practitioner = models.ForeignKey(
        Practitioner, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16)
    body = models.BinaryField()
    created_at_ms = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["recipient", "id"], name="to_device_by_recipient")]

    def __str__(self) -> str:
        return f"to-device {self.pk} for device {self.recipient_id}"
