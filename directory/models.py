"""Health professionals as the national directory (RPPS / ADELI) describes them."""

from __future__ import annotations

from django.db import models


class Practitioner(models.Model):
    """A health professional, keyed by the national id (``8``+RPPS or ``0``+ADELI).

    Filled from the Annuaire Santé extracts and from Pro Santé Connect at login. The
    ``is_authenticated`` property lets Django REST framework treat the practitioner of
    an authenticated device as ``request.user``.
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

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.national_id})"

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
