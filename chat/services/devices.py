"""Device tokens: issue, authenticate, revoke.

A token is 32 random bytes (base64url); only its SHA-256 is stored, so a database leak
does not hand out sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from chat.fanout import HubEvent, device_topic, publish_on_commit
from chat.models import Device
from directory.models import Practitioner


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who is on the other end of a connection or request."""

    device_id: int
    practitioner_id: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def do_issue_device_token(*, practitioner: Practitioner, device_name: str) -> tuple[Device, str]:
    """Create a device for ``practitioner`` and return it with its new token (shown once)."""
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(
        practitioner=practitioner, name=device_name[:64], token_hash=hash_token(token)
    )
    return device, token


def authenticate_token(*, token: str) -> DeviceIdentity | None:
    """The device of a valid, unrevoked token of an active practitioner, or None."""
    if not token or len(token) > 128:
        return None
    row = (
        Device.objects.filter(
            token_hash=hash_token(token),
            revoked_at__isnull=True,
            practitioner__is_active=True,
        )
        .values_list("pk", "practitioner_id")
        .first()
    )
    if row is None:
        return None
    return DeviceIdentity(device_id=row[0], practitioner_id=row[1])


def do_revoke_device(*, device_id: int) -> None:
    """Revoke a device: its token stops working and its open connections are closed."""
    with transaction.atomic():
        updated = Device.objects.filter(pk=device_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            publish_on_commit(
                device_topic(device_id), HubEvent(kind="device_revoked", device=device_id)
            )
