"""Pro Santé Connect logins in progress and the PSC sessions behind device tokens.

PSC access tokens are never stored: they are used once, to read the userinfo, and
dropped. What is kept, sealed (AES-GCM, see ``sealing.py``): the refresh token, used
only to notice that the PSC session ended, and the ID token, needed as ``id_token_hint``
for the logout. See docs/identity.md.
"""

from __future__ import annotations

from django.db import models

from chat.models import Device
from directory.models import Practitioner


class LoginAttempt(models.Model):
    """One login through PSC, from ``start`` to the client redeeming its one-time code.

    ``state_hash`` is the SHA-256 of the OAuth ``state``; the client's PKCE challenge
    (``client_code_challenge``) binds the final one-time code to the app or page that
    started the login.
    """

    state_hash = models.BinaryField(max_length=32, unique=True)
    nonce = models.CharField(max_length=64)
    code_verifier = models.CharField(max_length=128)
    redirect_uri = models.CharField(max_length=512)
    client_redirect_uri = models.CharField(max_length=512)
    client_state = models.CharField(max_length=256, blank=True)
    client_code_challenge = models.CharField(max_length=128)
    device_name = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    login_code_hash = models.BinaryField(max_length=32, unique=True, null=True, blank=True)
    sealed_tokens = models.BinaryField(null=True, blank=True)
    subject = models.CharField(max_length=256, blank=True)
    activities = models.JSONField(default=list, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"PSC login {self.pk}"


class PscSession(models.Model):
    """The PSC session of one device: checked with the refresh token, ended at logout."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="psc_session")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="psc_sessions"
    )
    subject = models.CharField(max_length=256)
    sealed_tokens = models.BinaryField()
    activities = models.JSONField(default=list, blank=True)
    activity = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    checked_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["checked_at"],
                name="psc_session_to_check",
                condition=models.Q(ended_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"PSC session of device {self.device_id}"
