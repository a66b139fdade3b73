"""Key-transparency log entries, protocol version 2 (docs/protocol.md §10.4).

Each practitioner (and each organisation, for its archivers) has one Ed25519
*identity key*. The log holds, under a hidden *label* per person (a VRF output of the
national id, ``label_for``), a chain of entries:

* ``identity``: the identity key, with the key's own signature binding it to the
  national id (``binding``). A later identity entry replaces it (an identity reset).
* ``device``: a device signing key, cross-signed by the identity key (``cross_sig``) and
  self-signed by the device (``self_sig``). The server alone cannot make one that
  verifies: it does not hold the identity key.
* ``revocation``: a device key that must no longer be used.

Every entry is signed by the log and names the previous entry of its label (``prev``),
so a lookup returns an unbroken chain. A leaf of the Merkle tree is the canonical JSON
``{"entry": body, "sig": b64u}``. National ids never appear in an entry: the binding
and device signatures cover them, so only someone who knows the national id can check
them (``verify_chain``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import labels, vrf
from e2ee.encoding import (
    JsonObject,
    b64u,
    canonical_json,
    expect_int,
    expect_object,
    expect_str,
    parse_canonical,
    unb64u,
)
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import KEY_BYTES, SIGNATURE_BYTES, raw_public, sign, verify

DeviceKind = Literal["device", "archiver"]
IdentityKind = Literal["practitioner", "organisation"]
DEVICE_KINDS = ("device", "archiver")
IDENTITY_KINDS = ("practitioner", "organisation")
REVOCATION_REASONS = ("lost", "logout", "replaced", "administrative", "identity_reset")
LABEL_BYTES = 32
VERSION = 2


def log_key_id(log_public_key: bytes) -> str:
    """The log's name: base64url of SHA-256 of its Ed25519 public key."""
    return b64u(hashlib.sha256(log_public_key).digest())


def log_public_key(log_key: Ed25519PrivateKey) -> bytes:
    return raw_public(log_key)


def device_kind_for(identity_kind: IdentityKind) -> DeviceKind:
    """An organisation's devices are archivers; a practitioner's are devices."""
    return "archiver" if identity_kind == "organisation" else "device"


# Labels (VRF) ---------------------------------------------------------------------


def label_input(national_id: str) -> bytes:
    """alpha = ``relais/v2/log-label`` || 0x00 || UTF-8(national id)."""
    return labels.LOG_LABEL + b"\x00" + national_id.encode("utf-8")


def label_for(vrf_secret: bytes, national_id: str) -> tuple[bytes, bytes]:
    """(label, VRF proof): the label is the first 32 bytes of the VRF output."""
    proof = vrf.prove(vrf_secret, label_input(national_id))
    return vrf.proof_to_hash(proof)[:LABEL_BYTES], proof


def verify_label(*, vrf_public: bytes, national_id: str, label: bytes, proof: bytes) -> None:
    """Raise BAD_PROOF unless ``label`` is the log's one label for ``national_id``."""
    if vrf.verify(vrf_public, label_input(national_id), proof)[:LABEL_BYTES] != label:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "label is not the VRF output")


# What the practitioner's keys sign ------------------------------------------------


def identity_binding_body(*, national_id: str, identity_key: bytes) -> JsonObject:
    return {
        "v": VERSION,
        "type": "identity_binding",
        "national_id": national_id,
        "identity_key": b64u(identity_key),
    }


def sign_identity_binding(identity: Ed25519PrivateKey, national_id: str) -> bytes:
    body = identity_binding_body(national_id=national_id, identity_key=raw_public(identity))
    return sign(identity, labels.IDENTITY_BINDING, body)


def device_body(
    kind_of_signature: Literal["device_certificate", "device_registration"],
    *,
    national_id: str,
    device: int,
    kind: DeviceKind,
    sign_key: bytes,
    identity_key: bytes,
) -> JsonObject:
    return {
        "v": VERSION,
        "type": kind_of_signature,
        "national_id": national_id,
        "device": device,
        "kind": kind,
        "sign_key": b64u(sign_key),
        "identity_key": b64u(identity_key),
    }


def sign_device_certificate(
    identity: Ed25519PrivateKey, *, national_id: str, device: int, kind: DeviceKind, sign_key: bytes
) -> bytes:
    """The identity key's cross-signature of a device (``cross_sig``)."""
    body = device_body(
        "device_certificate",
        national_id=national_id,
        device=device,
        kind=kind,
        sign_key=sign_key,
        identity_key=raw_public(identity),
    )
    return sign(identity, labels.DEVICE_CERTIFICATE, body)


def sign_device_registration(
    device_key: Ed25519PrivateKey,
    *,
    national_id: str,
    device: int,
    kind: DeviceKind,
    identity_key: bytes,
) -> bytes:
    """The device's own signature of the same body (``self_sig``): it holds the key."""
    body = device_body(
        "device_registration",
        national_id=national_id,
        device=device,
        kind=kind,
        sign_key=raw_public(device_key),
        identity_key=identity_key,
    )
    return sign(device_key, labels.DEVICE_REGISTRATION, body)


def kex_key_body(*, national_id: str, device: int, sign_key: bytes, kex_key: bytes) -> JsonObject:
    return {
        "v": VERSION,
        "type": "kex_registration",
        "national_id": national_id,
        "device": device,
        "sign_key": b64u(sign_key),
        "kex_key": b64u(kex_key),
    }


def sign_kex_key(
    device_key: Ed25519PrivateKey, *, national_id: str, device: int, kex_key: bytes
) -> bytes:
    """The device's signature of its first X25519 key-agreement key, given when it is
    certified (not in the log; later keys are published with ``e2ee.kex``)."""
    body = kex_key_body(
        national_id=national_id, device=device, sign_key=raw_public(device_key), kex_key=kex_key
    )
    return sign(device_key, labels.KEX_REGISTRATION, body)


def verify_kex_key(
    *, national_id: str, device: int, sign_key: bytes, kex_key: bytes, signature: bytes
) -> None:
    body = kex_key_body(national_id=national_id, device=device, sign_key=sign_key, kex_key=kex_key)
    verify(sign_key, signature, labels.KEX_REGISTRATION, body)


# Log entries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityEntry:
    label: bytes
    prev: int
    identity_key: bytes
    kind: IdentityKind
    binding: bytes
    issued_at: int


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    label: bytes
    prev: int
    device: int
    kind: DeviceKind
    identity_key: bytes
    sign_key: bytes
    cross_sig: bytes
    self_sig: bytes
    issued_at: int


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    label: bytes
    prev: int
    device: int
    sign_key: bytes
    reason: str
    revoked_at: int


LogRecord = IdentityEntry | DeviceEntry | RevocationEntry
_LOG_LABELS = {
    "identity": labels.LOG_IDENTITY,
    "device": labels.LOG_DEVICE,
    "revocation": labels.LOG_REVOCATION,
}
_FIELDS = {
    "identity": {"identity_key", "kind", "binding", "issued_at"},
    "device": {
        "device",
        "kind",
        "identity_key",
        "sign_key",
        "cross_sig",
        "self_sig",
        "issued_at",
    },
    "revocation": {"device", "sign_key", "reason", "revoked_at"},
}
_COMMON = {"v", "type", "log", "label", "prev"}


def _leaf(log_key: Ed25519PrivateKey, entry_type: str, body: JsonObject) -> bytes:
    full: JsonObject = {
        "v": VERSION,
        "type": entry_type,
        "log": log_key_id(log_public_key(log_key)),
        **body,
    }
    signature = sign(log_key, _LOG_LABELS[entry_type], full)
    return canonical_json({"entry": full, "sig": b64u(signature)})


def issue_entry(log_key: Ed25519PrivateKey, record: LogRecord) -> bytes:
    """The leaf (canonical bytes) of ``record``, signed by the log."""
    common: JsonObject = {"label": b64u(record.label), "prev": record.prev}
    if isinstance(record, IdentityEntry):
        return _leaf(
            log_key,
            "identity",
            {
                **common,
                "identity_key": b64u(record.identity_key),
                "kind": record.kind,
                "binding": b64u(record.binding),
                "issued_at": record.issued_at,
            },
        )
    if isinstance(record, DeviceEntry):
        return _leaf(
            log_key,
            "device",
            {
                **common,
                "device": record.device,
                "kind": record.kind,
                "identity_key": b64u(record.identity_key),
                "sign_key": b64u(record.sign_key),
                "cross_sig": b64u(record.cross_sig),
                "self_sig": b64u(record.self_sig),
                "issued_at": record.issued_at,
            },
        )
    if record.reason not in REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {record.reason!r}")
    return _leaf(
        log_key,
        "revocation",
        {
            **common,
            "device": record.device,
            "sign_key": b64u(record.sign_key),
            "reason": record.reason,
            "revoked_at": record.revoked_at,
        },
    )


def entry_label(leaf: bytes) -> bytes:
    """The label of a leaf, without checking anything else (a monitor's quick look at
    entries that are not its own). Raises CryptoError if there is none."""
    try:
        value = json.loads(leaf)
        return unb64u(value["entry"]["label"], length=LABEL_BYTES, field="label")
    except (ValueError, KeyError, TypeError):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "log entry without a label") from None


def parse_log_entry(leaf: bytes, *, log_public: bytes) -> LogRecord:
    """Check a leaf's encoding and log signature; return what it says. The binding and
    device signatures need the national id: ``verify_chain`` checks them."""
    outer = expect_object(parse_canonical(leaf), {"entry", "sig"}, field="log entry")
    body = outer["entry"]
    signature = unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig")
    if not isinstance(body, dict) or body.get("type") not in _FIELDS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown log entry type")
    entry_type = str(body["type"])
    expect_object(body, _COMMON | _FIELDS[entry_type], field=entry_type)
    if body["v"] != VERSION or body["log"] != log_key_id(log_public):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "log entry from another log or version")
    verify(log_public, signature, _LOG_LABELS[entry_type], body)
    label = unb64u(body["label"], length=LABEL_BYTES, field="label")
    prev = expect_int(body["prev"], field="prev", minimum=-1)
    if entry_type == "identity":
        if body["kind"] not in IDENTITY_KINDS:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown identity kind")
        return IdentityEntry(
            label=label,
            prev=prev,
            identity_key=unb64u(body["identity_key"], length=KEY_BYTES, field="identity_key"),
            kind=body["kind"],
            binding=unb64u(body["binding"], length=SIGNATURE_BYTES, field="binding"),
            issued_at=expect_int(body["issued_at"], field="issued_at"),
        )
    device = expect_int(body["device"], field="device", minimum=1)
    sign_key = unb64u(body["sign_key"], length=KEY_BYTES, field="sign_key")
    if entry_type == "revocation":
        reason = expect_str(body["reason"], field="reason", max_length=32)
        if reason not in REVOCATION_REASONS:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown revocation reason")
        return RevocationEntry(
            label=label,
            prev=prev,
            device=device,
            sign_key=sign_key,
            reason=reason,
            revoked_at=expect_int(body["revoked_at"], field="revoked_at"),
        )
    if body["kind"] not in DEVICE_KINDS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown device kind")
    return DeviceEntry(
        label=label,
        prev=prev,
        device=device,
        kind=body["kind"],
        identity_key=unb64u(body["identity_key"], length=KEY_BYTES, field="identity_key"),
        sign_key=sign_key,
        cross_sig=unb64u(body["cross_sig"], length=SIGNATURE_BYTES, field="cross_sig"),
        self_sig=unb64u(body["self_sig"], length=SIGNATURE_BYTES, field="self_sig"),
        issued_at=expect_int(body["issued_at"], field="issued_at"),
    )


def check_identity_binding(entry: IdentityEntry, national_id: str) -> None:
    body = identity_binding_body(national_id=national_id, identity_key=entry.identity_key)
    verify(entry.identity_key, entry.binding, labels.IDENTITY_BINDING, body)


def check_device_signatures(entry: DeviceEntry, national_id: str) -> None:
    """Both halves: the identity key named in the entry cross-signed this device, and
    the device holds its signing key."""
    common = {
        "national_id": national_id,
        "device": entry.device,
        "kind": entry.kind,
        "sign_key": entry.sign_key,
        "identity_key": entry.identity_key,
    }
    verify(
        entry.identity_key,
        entry.cross_sig,
        labels.DEVICE_CERTIFICATE,
        device_body("device_certificate", **common),  # type: ignore[arg-type]
    )
    verify(
        entry.sign_key,
        entry.self_sig,
        labels.DEVICE_REGISTRATION,
        device_body("device_registration", **common),  # type: ignore[arg-type]
    )


# A label's chain ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertifiedDevice:
    device: int
    kind: DeviceKind
    sign_key: bytes
    index: int
    cross_sig: bytes  # the identity key's signature, as a room state carries it


@dataclass(slots=True)
class LabelChain:
    """What one label's chain says, every signature checked for ``national_id``.

    ``identity_key`` is the newest identity key (None before any); ``devices`` are the
    devices cross-signed by that key and not revoked; ``history`` every entry, for a
    monitor that compares full keys; ``rejected`` the indexes of entries whose binding
    or device signatures do not verify (ignored: only the log could have made them)."""

    national_id: str
    label: bytes
    identity_key: bytes | None = None
    identity_kind: IdentityKind | None = None
    identity_index: int = -1
    devices: dict[int, CertifiedDevice] = field(default_factory=dict)
    identity_keys: list[bytes] = field(default_factory=list)
    history: list[tuple[int, LogRecord]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    revoked: set[tuple[int, bytes]] = field(default_factory=set)  # (device, signing key)


def verify_chain(
    *, national_id: str, label: bytes, entries: list[tuple[int, LogRecord]]
) -> LabelChain:
    """Check that ``entries`` (index, record), in index order, are one unbroken chain of
    ``label`` from its first entry (``prev`` = -1) — raise BAD_CHAIN otherwise — verify
    every binding and device signature for ``national_id``, and say which identity key
    and devices are valid."""
    chain = LabelChain(national_id=national_id, label=label)
    previous = -1
    device_entries: list[tuple[int, DeviceEntry]] = []
    revoked: set[tuple[int, bytes]] = set()
    for index, record in entries:
        if record.label != label:
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, f"entry {index} has another label")
        if record.prev != previous or index <= previous:
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, f"entry {index} breaks the chain")
        previous = index
        chain.history.append((index, record))
        try:
            if isinstance(record, IdentityEntry):
                check_identity_binding(record, national_id)
            elif isinstance(record, DeviceEntry):
                check_device_signatures(record, national_id)
        except CryptoError:
            chain.rejected.append(index)
            continue
        if isinstance(record, IdentityEntry):
            chain.identity_key, chain.identity_kind = record.identity_key, record.kind
            chain.identity_index = index
            chain.identity_keys.append(record.identity_key)
        elif isinstance(record, DeviceEntry):
            device_entries.append((index, record))
        else:
            revoked.add((record.device, record.sign_key))
    for index, entry in device_entries:
        if (
            entry.identity_key != chain.identity_key
            or (entry.device, entry.sign_key) in revoked
            or chain.identity_kind is None
            or entry.kind != device_kind_for(chain.identity_kind)
        ):
            continue
        chain.devices[entry.device] = CertifiedDevice(
            device=entry.device,
            kind=entry.kind,
            sign_key=entry.sign_key,
            index=index,
            cross_sig=entry.cross_sig,
        )
    chain.revoked = revoked
    return chain
