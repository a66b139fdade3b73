"""What the server keeps about a téléexpertise: the lifecycle it routes and reminds by,
and each practitioner's billing counter and encrypted ledger.

Nothing here names the patient or says what was asked or answered: the request, the
clarifications and the report travel end to end encrypted in the room
(docs/teleexpertise.md). A billing act carries a keyed pseudonym of the patient, made
on the practitioner's devices with a key the server never sees, and the ledger entry as
ciphertext.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from chat.models import Device, Room
from directory.models import Practitioner
from teleexpertise.workflow import Action, State

MAX_LEDGER_ENTRY_BYTES = 8 * 1024


class Teleexpertise(models.Model):
    """The lifecycle of the téléexpertise of one room (kind ``teleexpertise``).

    ``deadline`` is when the requérant wishes the answer (the requis may set another
    when accepting); the clock reminds the requis before it and marks the request
    ``expired`` after it. ``reminders_sent`` counts the reminder times already passed
    (``RELAIS_TELEEXPERTISE_REMINDERS``); ``open_questions`` the clarification
    questions not answered yet.
    """

    room = models.OneToOneField(
        Room, on_delete=models.CASCADE, primary_key=True, related_name="teleexpertise"
    )
    requerant = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    requis = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=[(s.value, s.value) for s in State])
    requested_at = models.DateTimeField()
    state_changed_at = models.DateTimeField()
    deadline = models.DateTimeField()
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    open_questions = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["deadline"],
                name="teleexpertise_active_deadline",
                condition=Q(state__in=[State.REQUESTED, State.ACCEPTED]),
            ),
            models.Index(fields=["requerant", "state"], name="teleexpertise_requerant"),
            models.Index(fields=["requis", "state"], name="teleexpertise_requis"),
        ]

    def __str__(self) -> str:
        return f"téléexpertise of room {self.room_id} ({self.state})"


class Transition(models.Model):
    """One step of the lifecycle: who took it (None: the server's clock), when, and
    which envelope carries its end-to-end encrypted event (``message_id``, ``seq``).

    ``(device, message_id)`` is unique: a step retried with the same message id finds
    the first one instead of being taken twice.
    """

    teleexpertise = models.ForeignKey(
        Teleexpertise, on_delete=models.CASCADE, related_name="transitions"
    )
    action = models.CharField(max_length=24, choices=[(a.value, a.value) for a in Action])
    state = models.CharField(max_length=16, choices=[(s.value, s.value) for s in State])
    actor = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    device = models.ForeignKey(
        Device, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    message_id = models.CharField(max_length=64, blank=True, default="")
    seq = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "message_id"],
                condition=Q(device__isnull=False),
                name="transition_idempotency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} of room {self.teleexpertise_id}"


class ActCode(models.TextChoices):
    """NGAP codes: RQD for the requérant, TE2 for the requis (domain facts §6)."""

    RQD = "RQD", "Demande de téléexpertise (requérant)"
    TE2 = "TE2", "Téléexpertise (requis)"


class BillingAct(models.Model):
    """One act of one practitioner, counted per (practitioner, code, year, pseudonym).

    ``pseudonym`` (base64url of 32 bytes) is an HMAC of the patient's identity under a
    key only that practitioner's devices hold, so the server can count a patient's acts
    for the yearly limit without learning who the patient is, and cannot link the
    patients of two practitioners. ``entry`` is the ledger entry, AES-256-GCM under
    another key of the practitioner: the server stores it so every device of the
    practitioner can list and export the acts, and cannot read it.
    """

    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    teleexpertise = models.ForeignKey(
        Teleexpertise, on_delete=models.PROTECT, related_name="billing_acts"
    )
    code = models.CharField(max_length=8, choices=ActCode.choices)
    year = models.PositiveSmallIntegerField()
    pseudonym = models.CharField(max_length=43)
    billable = models.BooleanField()
    entry = models.BinaryField(max_length=MAX_LEDGER_ENTRY_BYTES)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["practitioner", "teleexpertise"], name="billing_act_once_per_case"
            ),
        ]
        indexes = [
            models.Index(
                fields=["practitioner", "pseudonym", "code", "year"], name="billing_act_counter"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} of {self.practitioner_id} ({self.year})"
