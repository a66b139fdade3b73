"""Link requests between a practitioner's devices (``e2ee.linking``).

The server files a new device's request under a random id and passes the sealed
answer of an approving device back; it cannot read the answer, and it cannot swap the
request unnoticed (the link code, shown from screen to screen, commits to it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat.clock import SYSTEM_CLOCK
from chat.errors import ErrorCode, RelaisError
from chat.models import Device
from chat.services.devices import DeviceIdentity
from chat.services.to_device import do_queue_notice
from e2ee import linking
from e2ee.encoding import b64u, canonical_json
from e2ee.errors import CryptoError
from keyring.models import LinkRequest

LIFETIME_MS = 10 * 60 * 1000  # a link code is valid for ten minutes
MAX_BUNDLE_BYTES = linking.MAX_BUNDLE_BYTES


@dataclass(frozen=True, slots=True)
class LinkView:
    link_id: str
    device: int
    device_name: str
    request: bytes
    approved: bool
    bundle: bytes | None
    expires_at_ms: int


def do_open_link_request(*, identity: DeviceIdentity, request: bytes) -> LinkRequest:
    """File the calling (new) device's link request; a previous one is replaced."""
    try:
        body = linking.parse_request(request)
    except CryptoError as error:
        raise RelaisError(ErrorCode.BAD_KEYS, error.detail) from None
    if (body["national_id"], body["device"]) != (identity.practitioner_id, identity.device_id):
        raise RelaisError(ErrorCode.BAD_KEYS, "The request must name this device.")
    now_ms = SYSTEM_CLOCK.now_ms()
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=identity.device_id)
        if device.public_keys.get("sign_key"):
            raise RelaisError(ErrorCode.CONFLICT, "This device is already certified.")
        LinkRequest.objects.filter(device=device).delete()
        for _attempt in range(5):
            try:
                with transaction.atomic():
                    return LinkRequest.objects.create(
                        link_id=b64u(secrets.token_bytes(linking.LINK_ID_BYTES)),
                        device=device,
                        practitioner_id=identity.practitioner_id,
                        request=canonical_json(body),
                        created_at_ms=now_ms,
                        expires_at_ms=now_ms + LIFETIME_MS,
                    )
            except IntegrityError:
                continue  # that id is taken: draw another
    raise RelaisError(ErrorCode.SERVER_BUSY)


def _live(identity: DeviceIdentity, link_id: str) -> LinkRequest:
    """The practitioner's unexpired request ``link_id``; NOT_FOUND for anything else."""
    found = (
        LinkRequest.objects.select_related("device")
        .filter(
            link_id=link_id,
            practitioner_id=identity.practitioner_id,
            expires_at_ms__gt=SYSTEM_CLOCK.now_ms(),
            device__revoked_at__isnull=True,
        )
        .first()
    )
    if found is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "No such link code, or it expired.")
    return found


def link_request_view(*, identity: DeviceIdentity, link_id: str) -> LinkView:
    """A request as one of the practitioner's devices sees it; the sealed answer only
    to the device that asked."""
    found = _live(identity, link_id)
    return LinkView(
        link_id=found.link_id,
        device=found.device_id,
        device_name=found.device.name,
        request=bytes(found.request),
        approved=found.bundle is not None,
        bundle=bytes(found.bundle)
        if found.bundle is not None and found.device_id == identity.device_id
        else None,
        expires_at_ms=found.expires_at_ms,
    )


def do_approve_link(*, identity: DeviceIdentity, link_id: str, bundle: bytes) -> None:
    """Another device of the same practitioner, already certified, answers the request
    with a sealed bundle; the new device is told."""
    if not 0 < len(bundle) <= MAX_BUNDLE_BYTES:
        raise RelaisError(ErrorCode.BODY_TOO_LARGE)
    with transaction.atomic():
        found = _live(identity, link_id)
        found = LinkRequest.objects.select_for_update().get(pk=found.pk)
        if found.device_id == identity.device_id:
            raise RelaisError(ErrorCode.BAD_REQUEST, "A device cannot approve itself.")
        approver = Device.objects.get(pk=identity.device_id)
        if not approver.public_keys.get("sign_key"):
            raise RelaisError(ErrorCode.CONFLICT, "Only a certified device can approve.")
        if found.bundle is not None:
            raise RelaisError(ErrorCode.CONFLICT, "This link request was already answered.")
        found.bundle = bundle
        found.approved_by_id = identity.device_id
        found.save(update_fields=["bundle", "approved_by"])
        notice = {"v": 2, "type": "link_approved", "link_id": link_id}
        do_queue_notice(device_ids=[found.device_id], body=canonical_json(notice))
