"""Health professionals as the national directory (RPPS / ADELI) describes them.

A practitioner has one row per person (keyed by the national id) and one ``Activity``
per situation d'exercice (place of practice), as in the Annuaire Santé extract
``PS_LibreAcces_Personne_activite``. ``MailboxAddress`` holds the MSSanté addresses of
``Extraction_Correspondance_MSSante``. See docs/identity.md.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from directory.normalise import name_keys, search_key


class Source(models.TextChoices):
    MANUAL = "manual", "Saisie manuelle ou démonstration"
    ANNUAIRE = "annuaire", "Extraction Annuaire Santé"
    PSC = "psc", "Pro Santé Connect (absent de l'annuaire local)"
    # Not a person: a health structure holding archiver devices (chat.services.organisations).
    ORGANISATION = "organisation", "Organisation (structure de santé, archivage)"


class Practitioner(models.Model):
    """A health professional, keyed by the national id (``8``+RPPS or ``0``+ADELI).

    Filled from the Annuaire Santé extracts and from Pro Santé Connect at login. The
    ``is_authenticated`` property lets Django REST framework treat the practitioner of
    an authenticated device as ``request.user``.

    ``name_key``/``reversed_name_key``/``town_key`` are search keys kept by ``save()``
    (and computed by the importer for its bulk writes). On PostgreSQL these columns use
    the "C" collation, so one B-tree index serves both the prefix ``LIKE`` and the
    ordering of results (migration 0002).
    """

    national_id = models.CharField(primary_key=True, max_length=32)
    civility = models.CharField(max_length=8, blank=True)
    first_name = models.CharField(max_length=128)
    last_name = models.CharField(max_length=128)
    profession_code = models.CharField(max_length=8)
    profession_label = models.CharField(max_length=128, blank=True)
    specialty_code = models.CharField(max_length=16, blank=True)
    specialty_label = models.CharField(max_length=256, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    town = models.CharField(max_length=128, blank=True)
    mssante_addresses = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    name_key = models.CharField(max_length=260, blank=True, default="")
    reversed_name_key = models.CharField(max_length=260, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    # Digest of the directory data last imported for this person: a re-import of an
    # unchanged row writes nothing.
    row_hash = models.CharField(max_length=32, blank=True, default="")
    check_digit_valid = models.BooleanField(default=True)

    class Meta:
        ordering = ["name_key", "national_id"]
        indexes = [
            models.Index(
                fields=["name_key", "national_id"],
                name="practitioner_name",
                condition=Q(is_active=True),
            ),
            models.Index(
                fields=["reversed_name_key", "national_id"],
                name="practitioner_reversed_name",
                condition=Q(is_active=True),
            ),
            models.Index(
                fields=["profession_code", "name_key", "national_id"],
                name="practitioner_profession",
                condition=Q(is_active=True),
            ),
            models.Index(
                fields=["specialty_code", "name_key", "national_id"],
                name="practitioner_specialty",
                condition=Q(is_active=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.national_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name_key, self.reversed_name_key = name_keys(
            first_name=self.first_name, last_name=self.last_name
        )
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"first_name", "last_name"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "name_key", "reversed_name_key"}
        super().save(*args, **kwargs)
        self.activities.exclude(name_key=self.name_key).update(name_key=self.name_key)

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_organisation(self) -> bool:
        """A health structure (``source=organisation``): it holds archiver devices only,
        never logs in, and is not listed in directory searches."""
        return self.source == Source.ORGANISATION


class Activity(models.Model):
    """One situation d'exercice of a practitioner: where and how they practise.

    ``activity_hash`` identifies the row's content; a re-import keeps rows whose hash is
    unchanged, adds new ones and deletes the ones that disappeared.
    """

    # No separate index: the unique constraint below starts with the practitioner.
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    activity_hash = models.CharField(max_length=32)
    profession_code = models.CharField(max_length=8, blank=True)
    specialty_code = models.CharField(max_length=16, blank=True)
    mode_code = models.CharField(max_length=8, blank=True)
    mode_label = models.CharField(max_length=64, blank=True)
    sector_code = models.CharField(max_length=16, blank=True)
    sector_label = models.CharField(max_length=128, blank=True)
    structure_id = models.CharField(max_length=64, blank=True)
    structure_name = models.CharField(max_length=256, blank=True)
    siret = models.CharField(max_length=20, blank=True)
    finess = models.CharField(max_length=20, blank=True)
    street = models.CharField(max_length=256, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    town = models.CharField(max_length=128, blank=True)
    town_key = models.CharField(max_length=130, blank=True, default="")
    # The practitioner's name_key, copied so that a place's activities come out of one
    # index already in name order (kept equal by Practitioner.save and the importer).
    name_key = models.CharField(max_length=260, blank=True, default="")
    department_code = models.CharField(max_length=8, blank=True)
    phone = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["practitioner", "activity_hash"], name="activity_unique_content"
            ),
        ]
        indexes = [
            models.Index(
                fields=["postcode", "name_key", "practitioner", "profession_code"],
                name="activity_postcode",
            ),
            models.Index(
                fields=["town_key", "name_key", "practitioner", "profession_code"],
                name="activity_town",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner_id} at {self.structure_name or self.town}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.town_key = search_key(self.town)
        self.name_key = self.practitioner.name_key
        super().save(*args, **kwargs)


class MailboxKind(models.TextChoices):
    PERSONAL = "PER", "Personnelle"
    ORGANISATION = "ORG", "Organisationnelle"
    APPLICATION = "APP", "Applicative"
    CABINET = "CAB", "Cabinet"


class MailboxAddress(models.Model):
    """An MSSanté mailbox of the national directory (lower-cased address, unique)."""

    address = models.CharField(primary_key=True, max_length=256)
    kind = models.CharField(max_length=3, choices=MailboxKind.choices)
    # The holder's national id for a personal mailbox (not a foreign key: the MSSanté
    # extract may name people missing from the local copy of the directory).
    national_id = models.CharField(max_length=32, blank=True, db_index=True)
    organisation = models.CharField(max_length=256, blank=True)
    row_hash = models.CharField(max_length=32, blank=True, default="")

    def __str__(self) -> str:
        return self.address
