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

from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, device_topic, publish_on_commit
from chat.models import Device, DeviceKind
from directory.models import Practitioner


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who is on the other end of a connection or request."""

    device_id: int
    practitioner_id: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _issue(*, owner: Practitioner, device_name: str, kind: DeviceKind) -> tuple[Device, str]:
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(
        practitioner=owner, name=device_name[:64], kind=kind, token_hash=hash_token(token)
    )
    return device, token


def do_issue_device_token(*, practitioner: Practitioner, device_name: str) -> tuple[Device, str]:
    """Create a device for ``practitioner`` and return it with its new token (shown once).

    Every login (Pro Santé Connect, development) comes here. An organisation never logs
    in: NOT_FOUND, as for an unknown practitioner (its archivers come from
    ``do_issue_archiver_token``)."""
    if practitioner.is_organisation:
        raise RelaisError(ErrorCode.NOT_FOUND, "An organisation cannot log in.")
    return _issue(owner=practitioner, device_name=device_name, kind=DeviceKind.DEVICE)


def do_issue_archiver_token(*, organisation: Practitioner, device_name: str) -> tuple[Device, str]:
    """Create an archiver device for an organisation (``chat.services.organisations``)
    and return it with its new token (shown once). BAD_REQUEST for a practitioner."""
    if not organisation.is_organisation:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Only an organisation has archiver devices.")
    return _issue(owner=organisation, device_name=device_name, kind=DeviceKind.ARCHIVER)


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
