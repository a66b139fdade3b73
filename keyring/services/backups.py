"""Backups sealed to a practitioner's recovery code (``e2ee.recovery``): the identity
backup, and history keys. The server stores opaque bytes for the practitioner and
gives them back to any of their devices — including a freshly logged-in one, which is
how a practitioner who lost every device gets their identity back with the code.
"""

from __future__ import annotations

import re

from django.db import transaction

from chat.clock import SYSTEM_CLOCK
from chat.errors import ErrorCode, RelaisError
from chat.models import Device
from chat.services.devices import DeviceIdentity
from keyring.models import HistoryKey, IdentityBackup

MAX_SEALED_BYTES = 8192
MAX_BATCH = 500
MAX_HISTORY_KEYS = 1_000_000  # per practitioner
KEY_ID = re.compile(r"[0-9a-f]{64}")


def _require_certified(identity: DeviceIdentity) -> None:
    keys = Device.objects.filter(pk=identity.device_id).values_list("public_keys", flat=True)
    if not keys.first():
        raise RelaisError(ErrorCode.CONFLICT, "Only a certified device can write backups.")


def do_store_identity_backup(*, identity: DeviceIdentity, sealed: bytes) -> None:
    if not 0 < len(sealed) <= MAX_SEALED_BYTES:
        raise RelaisError(ErrorCode.BODY_TOO_LARGE)
    _require_certified(identity)
    IdentityBackup.objects.update_or_create(
        practitioner_id=identity.practitioner_id,
        defaults={"sealed": sealed, "updated_at_ms": SYSTEM_CLOCK.now_ms()},
    )


def identity_backup(*, identity: DeviceIdentity) -> bytes:
    found = IdentityBackup.objects.filter(practitioner_id=identity.practitioner_id).first()
    if found is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "No identity backup for you.")
    return bytes(found.sealed)


def do_store_history_keys(*, identity: DeviceIdentity, keys: list[tuple[str, bytes]]) -> None:
    """Store sealed history keys (idempotent on their id)."""
    if not 1 <= len(keys) <= MAX_BATCH:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"Send 1 to {MAX_BATCH} keys at once.")
    for key_id, sealed in keys:
        if not KEY_ID.fullmatch(key_id):
            raise RelaisError(ErrorCode.BAD_REQUEST, "A key id is 64 lowercase hex digits.")
        if not 0 < len(sealed) <= MAX_SEALED_BYTES:
            raise RelaisError(ErrorCode.BODY_TOO_LARGE)
    _require_certified(identity)
    now_ms = SYSTEM_CLOCK.now_ms()
    with transaction.atomic():
        held = HistoryKey.objects.filter(practitioner_id=identity.practitioner_id).count()
        if held + len(keys) > MAX_HISTORY_KEYS:
            raise RelaisError(ErrorCode.QUOTA_EXCEEDED)
        HistoryKey.objects.bulk_create(
            [
                HistoryKey(
                    practitioner_id=identity.practitioner_id,
                    key_id=key_id,
                    sealed=sealed,
                    created_at_ms=now_ms,
                )
                for key_id, sealed in keys
            ],
            ignore_conflicts=True,
        )


def history_keys(*, identity: DeviceIdentity, after: int, limit: int) -> list[HistoryKey]:
    return list(
        HistoryKey.objects.filter(practitioner_id=identity.practitioner_id, pk__gt=after).order_by(
            "pk"
        )[:limit]
    )
