"""Identity keys, device certificates and revocations in the key-transparency log, and
the lookups clients verify (docs/protocol.md §10.4).

Every entry is appended in the transaction that records it, under the lock of the
log head (dense indexes, and ``prev`` always names the label's newest entry). The
server checks what a client can check — the identity key's binding, the device's
cross-signature under the current identity key, its self-signature — so it never
appends an entry that no client would accept (defence in depth: clients check again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.errors import ErrorCode, RelaisError
from chat.models import Device, DeviceKind
from chat.services.devices import DeviceIdentity, do_revoke_device
from chat.services.to_device import do_queue_notice
from directory.models import Practitioner, Source
from e2ee import transparency
from e2ee.encoding import JsonObject, b64u, canonical_json, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import PublicDeviceKeys
from e2ee.transparency import (
    DeviceEntry,
    IdentityEntry,
    IdentityKind,
    LabelChain,
    LogRecord,
    RevocationEntry,
)
from e2ee.tree_heads import TreeHead
from keylog import tree
from keylog.keys import log_keys, log_public, log_signing_key
from keylog.models import LogEntry

MAX_ENTRIES_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    index: int
    leaf: bytes
    head: TreeHead


def label_of(national_id: str) -> tuple[bytes, bytes]:
    """The VRF label of ``national_id`` and its proof."""
    return transparency.label_for(log_keys().vrf_secret, national_id)


def identity_kind_of(national_id: str) -> IdentityKind:
    source = Practitioner.objects.filter(pk=national_id).values_list("source", flat=True).first()
    return "organisation" if source == Source.ORGANISATION else "practitioner"


def _append(
    *, national_id: str, device_id: int | None, sign_key: bytes | None, record: Any
) -> AppendedEntry:
    """Append the entry ``record(label, prev)`` makes. Caller holds a transaction."""
    head = tree.locked_head()
    label, _ = label_of(national_id)
    prev = (
        LogEntry.objects.filter(label=label).order_by("-index").values_list("index", flat=True)
    ).first()
    entry: LogRecord = record(label, -1 if prev is None else prev)
    leaf = transparency.issue_entry(log_signing_key(), entry)
    kind = {IdentityEntry: "identity", DeviceEntry: "device", RevocationEntry: "revocation"}
    LogEntry.objects.create(
        index=head.size,
        kind=kind[type(entry)],
        label=label,
        prev=entry.prev,
        national_id=national_id,
        device_id=device_id,
        sign_key=b64u(sign_key) if sign_key else "",
        leaf=leaf,
        created_at_ms=tree.CLOCK.now_ms(),
    )
    index, signed = tree.append_leaf(head, leaf)
    return AppendedEntry(index=index, leaf=leaf, head=signed)


def chain_of(national_id: str) -> LabelChain:
    """The verified chain of ``national_id``'s label, from the stored entries."""
    label, _ = label_of(national_id)
    rows = LogEntry.objects.filter(label=label).order_by("index").values_list("index", "leaf")
    public = log_public()
    records = [
        (i, transparency.parse_log_entry(bytes(leaf), log_public=public)) for i, leaf in rows
    ]
    return transparency.verify_chain(national_id=national_id, label=label, entries=records)


def _locked_device(identity: DeviceIdentity) -> Device:
    device = Device.objects.select_for_update().get(pk=identity.device_id)
    if device.revoked_at is not None:
        raise RelaisError(ErrorCode.AUTH_FAILED)
    return device


def do_create_identity(
    *, identity: DeviceIdentity, identity_key: bytes, binding: bytes, reset: bool = False
) -> AppendedEntry:
    """Publish the practitioner's (or organisation's) identity key.

    Once per person: with one already in the log, only an explicit ``reset`` from a
    device that logged in less than ``KEYLOG_RESET_WINDOW`` seconds ago replaces it
    (every device lost). A reset revokes the person's other devices (reason
    ``identity_reset``): their certificates named the old key."""
    national_id = identity.practitioner_id
    try:
        transparency.check_identity_binding(
            IdentityEntry(b"", -1, identity_key, "practitioner", binding, 0), national_id
        )
    except CryptoError:
        raise RelaisError(ErrorCode.BAD_KEYS) from None
    kind = identity_kind_of(national_id)
    with transaction.atomic():
        device = _locked_device(identity)
        tree.locked_head()
        existing = chain_of(national_id).identity_key
        if existing is not None and not reset:
            raise RelaisError(
                ErrorCode.CONFLICT,
                "An identity key exists: link this device from another of yours, or reset.",
            )
        if existing is not None:
            window = timedelta(seconds=int(settings.KEYLOG_RESET_WINDOW))
            if timezone.now() - device.created_at > window or existing == identity_key:
                raise RelaisError(
                    ErrorCode.CONFLICT, "An identity reset needs a new key and a fresh login."
                )
        appended = _append(
            national_id=national_id,
            device_id=None,
            sign_key=None,
            record=lambda label, prev: IdentityEntry(
                label=label,
                prev=prev,
                identity_key=identity_key,
                kind=kind,
                binding=binding,
                issued_at=tree.CLOCK.now_ms(),
            ),
        )
        if existing is not None:
            others = (
                Device.objects.filter(practitioner_id=national_id, revoked_at__isnull=True)
                .exclude(pk=identity.device_id)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            for other in list(others):
                do_revoke_device_keys(identity=identity, device_id=other, reason="identity_reset")
            device.public_keys = {}  # certified under the old key: certify again
            device.save(update_fields=["public_keys"])
    return appended


def do_certify_device(
    *,
    identity: DeviceIdentity,
    keys: PublicDeviceKeys,
    signature: bytes,
    cross_signature: bytes,
    kex_signature: bytes,
) -> AppendedEntry:
    """Certify the calling device's signing key under its owner's current identity key.

    ``signature`` is the device's self-signature, ``cross_signature`` the identity key's
    (made on a device that holds it), ``kex_signature`` the device's signature of its
    key-agreement key (kept on the device row, not in the log). The certificate's kind
    is the device's: ``archiver`` for an organisation's archiver, ``device`` otherwise.
    The owner's other devices are told (a ``device_certified`` notice)."""
    national_id = identity.practitioner_id
    with transaction.atomic():
        device = _locked_device(identity)
        tree.locked_head()
        current = chain_of(national_id).identity_key
        if current is None:
            raise RelaisError(ErrorCode.CONFLICT, "Publish your identity key first.")
        if device.public_keys.get("identity_key") == b64u(current):
            raise RelaisError(ErrorCode.CONFLICT, "This device's keys are already certified.")
        kind: transparency.DeviceKind = (
            "archiver" if device.kind == DeviceKind.ARCHIVER else "device"
        )
        entry = DeviceEntry(
            label=b"",
            prev=-1,
            device=identity.device_id,
            kind=kind,
            identity_key=current,
            sign_key=keys.sign_key,
            cross_sig=cross_signature,
            self_sig=signature,
            issued_at=tree.CLOCK.now_ms(),
        )
        try:
            if kind != transparency.device_kind_for(identity_kind_of(national_id)):
                raise CryptoError(CryptoErrorCode.BAD_ENCODING, "kind")
            transparency.check_device_signatures(entry, national_id)
            transparency.verify_kex_key(
                national_id=national_id,
                device=identity.device_id,
                sign_key=keys.sign_key,
                kex_key=keys.kex_key,
                signature=kex_signature,
            )
        except CryptoError:
            raise RelaisError(ErrorCode.BAD_KEYS) from None
        appended = _append(
            national_id=national_id,
            device_id=identity.device_id,
            sign_key=keys.sign_key,
            record=lambda label, prev: DeviceEntry(
                **{**_fields(entry), "label": label, "prev": prev}
            ),
        )
        device.public_keys = {
            **keys.to_json(),
            "kex_signature": b64u(kex_signature),
            "identity_key": b64u(current),
            "log_index": appended.index,
        }
        device.save(update_fields=["public_keys"])
        others = list(
            Device.objects.filter(practitioner_id=national_id, revoked_at__isnull=True)
            .exclude(pk=identity.device_id)
            .values_list("pk", flat=True)
        )
        if others:
            notice = {
                "v": 2,
                "type": "device_certified",
                "device": identity.device_id,
                "index": appended.index,
            }
            do_queue_notice(device_ids=others, body=canonical_json(notice))
    return appended


def _fields(entry: DeviceEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in DeviceEntry.__slots__}


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
        certified = [
            key
            for key in LogEntry.objects.filter(device_id=device_id, kind="device")
            .values_list("sign_key", flat=True)
            .distinct()
            if not LogEntry.objects.filter(
                device_id=device_id, kind="revocation", sign_key=key
            ).exists()
        ]
        for key in certified:
            sign_key = unb64u(key, length=32)
            _append(
                national_id=identity.practitioner_id,
                device_id=device_id,
                sign_key=sign_key,
                record=lambda label, prev, sign_key=sign_key: RevocationEntry(
                    label=label,
                    prev=prev,
                    device=device_id,
                    sign_key=sign_key,
                    reason=reason,
                    revoked_at=tree.CLOCK.now_ms(),
                ),
            )
        do_revoke_device(device_id=device_id)


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


def certified_keys(
    *, national_id: str, device_id: int, kind: transparency.DeviceKind = "device"
) -> PublicDeviceKeys | None:
    """The device's keys if the log certifies its signing key for ``national_id`` under
    the current identity key, with this ``kind``, unrevoked; the key-agreement key is
    the one the device signed (kept on its row)."""
    certified = chain_of(national_id).devices.get(device_id)
    if certified is None or certified.kind != kind:
        return None
    row = Device.objects.filter(pk=device_id, practitioner_id=national_id).first()
    if row is None or row.public_keys.get("sign_key") != b64u(certified.sign_key):
        return None
    return PublicDeviceKeys.from_json(row.public_keys)


# Reading the log -------------------------------------------------------------------


def entries_page(*, start: int, end: int) -> list[LogEntry]:
    if not 0 <= start <= end or end - start > MAX_ENTRIES_PAGE:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"At most {MAX_ENTRIES_PAGE} entries per page.")
    return list(
        LogEntry.objects.filter(index__gte=start, index__lt=end)
        .order_by("index")
        .only("index", "leaf")
    )


def lookup(national_id: str) -> JsonObject:
    """Everything a client needs to verify ``national_id``'s keys: the label and its VRF
    proof, the served head with its cosignatures, every entry of the label in that head
    with its inclusion proof, and the devices' signed key-agreement keys."""
    label, proof = label_of(national_id)
    served = tree.served_head()
    rows = list(
        LogEntry.objects.filter(label=label, index__lt=served.head.size)
        .order_by("index")
        .only("index", "leaf")
    )
    proofs = tree.inclusion_proofs(indexes=[r.index for r in rows], size=served.head.size)
    kex_keys = [
        {
            "device": device,
            "kex_key": keys["kex_key"],
            "signature": keys["kex_signature"],
        }
        for device, keys in Device.objects.filter(
            practitioner_id=national_id, revoked_at__isnull=True
        )
        .exclude(public_keys={})
        .order_by("pk")
        .values_list("pk", "public_keys")
        if "kex_signature" in keys
    ]
    return {
        "national_id": national_id,
        "label": b64u(label),
        "vrf_proof": b64u(proof),
        **served.to_json(),
        "entries": [
            {"index": r.index, "entry": bytes(r.leaf).decode("utf-8"), "proof": proofs[r.index]}
            for r in rows
        ],
        "kex_keys": kex_keys,
    }
