"""Device tokens: issue, authenticate, expire, resume, revoke.

A token is 32 random bytes (base64url); only its SHA-256 is stored, so a database leak
does not hand out sessions. A practitioner's device token expires when it has not been
used for ``RELAIS_TOKEN_IDLE_DAYS`` (each use pushes the expiry back, at most once a
day); the practitioner then logs in again, and the app, which still holds their
identity key, certifies a new device and moves it into its rooms (docs/protocol.md
§10.4). An organisation's archiver token does not expire (a service process holds it in
a file).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat.conf import relais_settings
from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, device_topic, publish_on_commit
from chat.models import Device, DeviceKind
from directory.models import Practitioner

SLIDE_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who is on the other end of a connection or request."""

    device_id: int
    practitioner_id: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _expiry(kind: str) -> datetime | None:
    if kind == DeviceKind.ARCHIVER:
        return None
    return timezone.now() + timedelta(seconds=relais_settings().token_idle_seconds)


def _issue(*, owner: Practitioner, device_name: str, kind: DeviceKind) -> tuple[Device, str]:
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(
        practitioner=owner,
        name=device_name[:64],
        kind=kind,
        token_hash=hash_token(token),
        token_expires_at=_expiry(kind),
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
    """The device of a valid, unrevoked, unexpired token of an active practitioner, or
    None. A use pushes the token's expiry back (at most one write a day)."""
    if not token or len(token) > 128:
        return None
    now = timezone.now()
    row = (
        Device.objects.filter(
            Q(token_expires_at__isnull=True) | Q(token_expires_at__gt=now),
            token_hash=hash_token(token),
            revoked_at__isnull=True,
            practitioner__is_active=True,
        )
        .values_list("pk", "practitioner_id", "token_expires_at")
        .first()
    )
    if row is None:
        return None
    device_id, practitioner_id, expires_at = row
    idle = timedelta(seconds=relais_settings().token_idle_seconds)
    if expires_at is not None and expires_at < now + idle - SLIDE_EVERY:
        Device.objects.filter(pk=device_id, token_expires_at=expires_at).update(
            token_expires_at=now + idle
        )
    return DeviceIdentity(device_id=device_id, practitioner_id=practitioner_id)


def do_revoke_device(*, device_id: int) -> None:
    """Revoke a device: its token stops working and its open connections are closed. The
    devices of everyone who shares a room with its practitioner are told (a
    ``device_revoked`` notice), so they stop sharing keys with it at once and its
    practitioner's other device removes it from their rooms."""
    from chat.services.to_device import queue_revocation_notices

    with transaction.atomic():
        updated = Device.objects.filter(pk=device_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            publish_on_commit(
                device_topic(device_id), HubEvent(kind="device_revoked", device=device_id)
            )
            queue_revocation_notices(device_id=device_id)
