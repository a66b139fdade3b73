"""Publishing and looking up devices' current key-agreement keys (``e2ee.kex``).

The server checks what it can — the device's own signature with its certified signing
key, the serial going up, the lifetime — so a device cannot lock others out with a bad
document; senders check everything again themselves and never rely on these checks.
"""

from __future__ import annotations

from django.db import transaction

from chat.clock import SYSTEM_CLOCK
from chat.errors import ErrorCode, RelaisError
from chat.models import Device
from chat.services.devices import DeviceIdentity
from chat.services.to_device import reachable_devices
from e2ee import kex
from e2ee.encoding import unb64u
from e2ee.errors import CryptoError
from keyring.models import PublishedKexKey

MAX_LOOKUP = 200  # device numbers per request: the URL stays well under servers' limits


def do_publish_kex(*, identity: DeviceIdentity, document: bytes) -> PublishedKexKey:
    """Make ``document`` the calling device's current key-agreement key."""
    now_ms = SYSTEM_CLOCK.now_ms()
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=identity.device_id)
        sign_key = device.public_keys.get("sign_key")
        if not sign_key:
            raise RelaisError(ErrorCode.CONFLICT, "Certify this device's keys first.")
        try:
            verified = kex.verify_kex(
                document,
                national_id=identity.practitioner_id,
                device=identity.device_id,
                sign_key=unb64u(sign_key, length=32),
                now_ms=now_ms,
            )
        except CryptoError as error:
            raise RelaisError(ErrorCode.BAD_KEYS, error.detail or error.code.value) from None
        current = PublishedKexKey.objects.filter(device=device).first()
        if current is not None and verified.serial <= current.serial:
            raise RelaisError(ErrorCode.CONFLICT, f"Serial {current.serial + 1} or more expected.")
        published, _ = PublishedKexKey.objects.update_or_create(
            device=device,
            defaults={
                "serial": verified.serial,
                "document": document,
                "expires_at_ms": verified.expires_at,
            },
        )
    return published


def kex_keys(*, identity: DeviceIdentity, device_ids: list[int]) -> dict[int, bytes]:
    """The published documents of the devices the caller may share keys with (others are
    left out, as are devices that never published one)."""
    if len(device_ids) > MAX_LOOKUP:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"At most {MAX_LOOKUP} devices at once.")
    allowed = reachable_devices(identity=identity, device_ids=device_ids)
    return {
        row.device_id: bytes(row.document)
        for row in PublishedKexKey.objects.filter(device_id__in=allowed)
    }
