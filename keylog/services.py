"""Certify and revoke device keys; serve tree heads, entries and proofs.

Every certificate and revocation is appended to the log in the transaction that
records it, with a new signed tree head. Proofs are computed from the stored leaf
hashes (RFC 9162 algorithms in ``e2ee.merkle``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat.clock import SYSTEM_CLOCK
from chat.errors import ErrorCode, RelaisError
from chat.models import Device, DeviceKind
from chat.services.devices import DeviceIdentity, do_revoke_device
from chat.services.to_device import do_queue_notice
from e2ee import merkle, transparency
from e2ee.encoding import b64u, canonical_json, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import PublicDeviceKeys
from keylog.models import LogEntry, LogHead, SignedTreeHead
from keylog.signing import log_public, log_signing_key

MAX_ENTRIES_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    index: int
    leaf: bytes
    head: transparency.TreeHead


def _locked_head() -> LogHead:
    """The log head row, locked. Created on first use (a flushed test database has none)."""
    head = LogHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        try:
            with transaction.atomic():
                LogHead.objects.create(pk=1, size=0, edge={"size": 0, "edge": []})
        except IntegrityError:
            pass  # created concurrently
        head = LogHead.objects.select_for_update().get(pk=1)
    return head


def _current_size() -> int:
    size = LogHead.objects.filter(pk=1).values_list("size", flat=True).first()
    return size or 0


def _append(
    *, kind: str, national_id: str, device_id: int, sign_key: bytes, leaf: bytes
) -> AppendedEntry:
    """Append one leaf and sign the new head. Caller holds a transaction."""
    head = _locked_head()
    tree = merkle.CompactTree.from_json(head.edge)
    index = head.size
    hashed = merkle.leaf_hash(leaf)
    now_ms = SYSTEM_CLOCK.now_ms()
    LogEntry.objects.create(
        index=index,
        kind=kind,
        national_id=national_id,
        device_id=device_id,
        sign_key=b64u(sign_key),
        leaf=leaf,
        leaf_hash=hashed,
        created_at_ms=now_ms,
    )
    tree.append(hashed)
    signed = transparency.sign_tree_head(
        log_key=log_signing_key(), size=tree.size, root=tree.root(), timestamp=now_ms
    )
    SignedTreeHead.objects.create(
        size=signed.size, root=signed.root, timestamp_ms=now_ms, signature=signed.signature
    )
    head.size = tree.size
    head.edge = tree.to_json()
    head.save(update_fields=["size", "edge"])
    return AppendedEntry(index=index, leaf=leaf, head=signed)


def do_certify_device(
    *, identity: DeviceIdentity, keys: PublicDeviceKeys, signature: bytes
) -> AppendedEntry:
    """Certify the calling device's keys for its practitioner (once per device).

    The device proves it holds the signing key with a registration signature. The
    certificate's kind is the device's: ``archiver`` for an organisation's archiver
    (made by ``manage.py create_archiver``), ``device`` for every other device. The
    practitioner's other devices are told (a ``device_certified`` notice), so a device
    they do not know does not go unnoticed."""
    try:
        transparency.verify_registration(
            national_id=identity.practitioner_id,
            device=identity.device_id,
            keys=keys,
            signature=signature,
        )
    except CryptoError:
        raise RelaisError(ErrorCode.BAD_KEYS) from None
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=identity.device_id)
        if device.revoked_at is not None:
            raise RelaisError(ErrorCode.AUTH_FAILED)
        if device.public_keys:
            raise RelaisError(ErrorCode.CONFLICT, "This device's keys are already certified.")
        leaf = transparency.issue_certificate(
            log_key=log_signing_key(),
            national_id=identity.practitioner_id,
            device=identity.device_id,
            kind="archiver" if device.kind == DeviceKind.ARCHIVER else "device",
            keys=keys,
            self_signature=signature,
            issued_at=SYSTEM_CLOCK.now_ms(),
        )
        appended = _append(
            kind="certificate",
            national_id=identity.practitioner_id,
            device_id=identity.device_id,
            sign_key=keys.sign_key,
            leaf=leaf,
        )
        device.public_keys = {**keys.to_json(), "log_index": appended.index}
        device.save(update_fields=["public_keys"])
        others = list(
            Device.objects.filter(practitioner_id=identity.practitioner_id, revoked_at__isnull=True)
            .exclude(pk=identity.device_id)
            .values_list("pk", flat=True)
        )
        if others:
            notice = {
                "v": 1,
                "type": "device_certified",
                "national_id": identity.practitioner_id,
                "device": identity.device_id,
                "index": appended.index,
            }
            do_queue_notice(device_ids=others, body=canonical_json(notice))
    return appended


def do_revoke_device_keys(*, identity: DeviceIdentity, device_id: int, reason: str) -> None:
    """Revoke one of the practitioner's own devices (a lost phone, or this one): its
    token stops working and, if it had certified keys, a revocation enters the log."""
    with transaction.atomic():
        device = (
            Device.objects.select_for_update()
            .filter(pk=device_id, practitioner_id=identity.practitioner_id)
            .first()
        )
        if device is None:
            raise RelaisError(ErrorCode.NOT_FOUND, "No such device of yours.")
        keys = device.public_keys
        already = LogEntry.objects.filter(device_id=device_id, kind="revocation").exists()
        if keys and not already:
            sign_key = unb64u(keys["sign_key"], length=32)
            leaf = transparency.issue_revocation(
                log_key=log_signing_key(),
                national_id=identity.practitioner_id,
                device=device_id,
                sign_key=sign_key,
                reason=reason,
                revoked_at=SYSTEM_CLOCK.now_ms(),
            )
            _append(
                kind="revocation",
                national_id=identity.practitioner_id,
                device_id=device_id,
                sign_key=sign_key,
                leaf=leaf,
            )
        do_revoke_device(device_id=device_id)


def certified_keys(
    *, national_id: str, device_id: int, kind: transparency.DeviceKind = "device"
) -> PublicDeviceKeys | None:
    """The device's keys if the log certifies them for ``national_id``, with this
    ``kind``, and no revocation followed."""
    entries = list(
        LogEntry.objects.filter(device_id=device_id, national_id=national_id)
        .order_by("index")
        .values_list("kind", "leaf")
    )
    if not entries or any(kind == "revocation" for kind, _ in entries):
        return None
    record = transparency.parse_log_entry(bytes(entries[0][1]), log_public=log_public())
    if not isinstance(record, transparency.Certificate) or record.kind != kind:
        return None
    return record.keys


# Reading the log -------------------------------------------------------------------


def tree_head(*, size: int | None = None) -> transparency.TreeHead:
    """The signed head of the current log, or of an earlier ``size`` it had."""
    if size is None:
        size = _current_size()
    if size == 0:
        return transparency.sign_tree_head(
            log_key=log_signing_key(), size=0, root=merkle.EMPTY_ROOT, timestamp=0
        )
    row = SignedTreeHead.objects.filter(size=size).first()
    if row is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "The log never had this size.")
    return transparency.TreeHead(
        size=row.size,
        root=bytes(row.root),
        timestamp=row.timestamp_ms,
        signature=bytes(row.signature),
    )


def tree_head_json(head: transparency.TreeHead) -> dict[str, object]:
    return head.to_json(log_public=log_public())


def _leaf_hashes(size: int) -> list[bytes]:
    return [
        bytes(h)
        for h in LogEntry.objects.filter(index__lt=size)
        .order_by("index")
        .values_list("leaf_hash", flat=True)
    ]


def inclusion_proofs(*, indexes: list[int], size: int) -> dict[int, list[str]]:
    hashes = _leaf_hashes(size)
    return {i: [b64u(node) for node in merkle.inclusion_proof(hashes, i)] for i in indexes}


def consistency(*, first: int, second: int) -> list[str]:
    if not 0 <= first <= second:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Need 0 <= first <= second.")
    if second > _current_size():
        raise RelaisError(ErrorCode.NOT_FOUND, "The log is not that large yet.")
    return [b64u(node) for node in merkle.consistency_proof(_leaf_hashes(second), first)]


def entries_page(*, start: int, end: int) -> list[LogEntry]:
    if not 0 <= start <= end or end - start > MAX_ENTRIES_PAGE:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"At most {MAX_ENTRIES_PAGE} entries per page.")
    return list(LogEntry.objects.filter(index__gte=start, index__lt=end).order_by("index"))


def practitioner_entries(*, national_id: str, size: int) -> list[LogEntry]:
    return list(LogEntry.objects.filter(national_id=national_id, index__lt=size).order_by("index"))


def do_revoke_other_devices(*, identity: DeviceIdentity, reason: str) -> list[int]:
    """Revoke every other device of the caller's practitioner ("log out everywhere
    else"): tokens and keys, all or nothing. Returns the revoked devices' ids."""
    with transaction.atomic():
        others = list(
            Device.objects.select_for_update()
            .filter(practitioner_id=identity.practitioner_id, revoked_at__isnull=True)
            .exclude(pk=identity.device_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for device_id in others:
            do_revoke_device_keys(identity=identity, device_id=device_id, reason=reason)
    return others
