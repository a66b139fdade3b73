"""Key-transparency records: device key registrations, certificates, revocations and
signed tree heads (docs/protocol.md, "Key transparency").

* A device proves it holds its keys with a *registration* it signs itself.
* The server's log key signs a *certificate* binding those keys to the practitioner's
  national id and device number, and appends it to the Merkle log. The certificate
  repeats the device's self-signature, so anyone can check both halves.
* A *revocation* (lost phone, logout) is signed by the log and appended the same way.
* A *tree head* is the log's signed statement "the log has ``size`` entries with this
  root at this time". Clients check every key they use against a tree head (inclusion
  proof) and every tree head against the previous one they saw (consistency proof).

A log entry (a Merkle leaf) is the canonical JSON ``{"entry": body, "sig": b64u}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import labels
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
from e2ee.keys import (
    KEY_BYTES,
    SIGNATURE_BYTES,
    DeviceKeyPair,
    PublicDeviceKeys,
    raw_public,
    sign,
    verify,
)
from e2ee.merkle import HASH_BYTES, leaf_hash, verify_consistency, verify_inclusion

DeviceKind = Literal["device", "archiver"]
DEVICE_KINDS = ("device", "archiver")
REVOCATION_REASONS = ("lost", "logout", "replaced", "administrative")


def log_key_id(log_public_key: bytes) -> str:
    """The log's name: base64url of SHA-256 of its Ed25519 public key."""
    return b64u(hashlib.sha256(log_public_key).digest())


def log_public_key(log_key: Ed25519PrivateKey) -> bytes:
    return raw_public(log_key)


# Registration (signed by the device) ---------------------------------------------


def registration_body(*, national_id: str, device: int, keys: PublicDeviceKeys) -> JsonObject:
    return {
        "v": 1,
        "type": "device_keys",
        "national_id": national_id,
        "device": device,
        **keys.to_json(),
    }


def sign_registration(*, key_pair: DeviceKeyPair, national_id: str, device: int) -> bytes:
    body = registration_body(national_id=national_id, device=device, keys=key_pair.public)
    return key_pair.sign(labels.DEVICE_KEYS, body)


def verify_registration(
    *, national_id: str, device: int, keys: PublicDeviceKeys, signature: bytes
) -> None:
    """The device holds the private half of ``keys.sign_key`` and chose ``keys.kex_key``."""
    body = registration_body(national_id=national_id, device=device, keys=keys)
    verify(keys.sign_key, signature, labels.DEVICE_KEYS, body)


# Log entries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    national_id: str
    device: int
    kind: DeviceKind
    keys: PublicDeviceKeys
    issued_at: int


@dataclass(frozen=True, slots=True)
class Revocation:
    national_id: str
    device: int
    sign_key: bytes
    reason: str
    revoked_at: int


LogRecord = Certificate | Revocation


def issue_certificate(
    *,
    log_key: Ed25519PrivateKey,
    national_id: str,
    device: int,
    kind: DeviceKind,
    keys: PublicDeviceKeys,
    self_signature: bytes,
    issued_at: int,
) -> bytes:
    """The log entry (leaf bytes) certifying a device. Verifies the self-signature."""
    verify_registration(national_id=national_id, device=device, keys=keys, signature=self_signature)
    body: JsonObject = {
        "v": 1,
        "type": "certificate",
        "log": log_key_id(log_public_key(log_key)),
        "national_id": national_id,
        "device": device,
        "kind": kind,
        **keys.to_json(),
        "self_sig": b64u(self_signature),
        "issued_at": issued_at,
    }
    return canonical_json({"entry": body, "sig": b64u(sign(log_key, labels.CERTIFICATE, body))})


def issue_revocation(
    *,
    log_key: Ed25519PrivateKey,
    national_id: str,
    device: int,
    sign_key: bytes,
    reason: str,
    revoked_at: int,
) -> bytes:
    if reason not in REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {reason!r}")
    body: JsonObject = {
        "v": 1,
        "type": "revocation",
        "log": log_key_id(log_public_key(log_key)),
        "national_id": national_id,
        "device": device,
        "sign_key": b64u(sign_key),
        "reason": reason,
        "revoked_at": revoked_at,
    }
    return canonical_json({"entry": body, "sig": b64u(sign(log_key, labels.REVOCATION, body))})


_CERTIFICATE_KEYS = {
    "v",
    "type",
    "log",
    "national_id",
    "device",
    "kind",
    "sign_key",
    "kex_key",
    "self_sig",
    "issued_at",
}
_REVOCATION_KEYS = {
    "v",
    "type",
    "log",
    "national_id",
    "device",
    "sign_key",
    "reason",
    "revoked_at",
}


def parse_log_entry(leaf: bytes, *, log_public: bytes) -> LogRecord:
    """Check a log entry completely (encoding, log signature, and for a certificate the
    device's own signature) and return what it says. Raises CryptoError."""
    outer = expect_object(parse_canonical(leaf), {"entry", "sig"}, field="log entry")
    body = outer["entry"]
    signature = unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig")
    if not isinstance(body, dict):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "log entry body")
    kind = body.get("type")
    if kind == "certificate":
        expect_object(body, _CERTIFICATE_KEYS, field="certificate")
        label = labels.CERTIFICATE
    elif kind == "revocation":
        expect_object(body, _REVOCATION_KEYS, field="revocation")
        label = labels.REVOCATION
    else:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown log entry type")
    if body["v"] != 1 or body["log"] != log_key_id(log_public):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "log entry from another log or version")
    verify(log_public, signature, label, body)
    national_id = expect_str(body["national_id"], field="national_id", max_length=32)
    device = expect_int(body["device"], field="device", minimum=1)
    if kind == "revocation":
        reason = expect_str(body["reason"], field="reason", max_length=32)
        if reason not in REVOCATION_REASONS:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown revocation reason")
        return Revocation(
            national_id=national_id,
            device=device,
            sign_key=unb64u(body["sign_key"], length=KEY_BYTES, field="sign_key"),
            reason=reason,
            revoked_at=expect_int(body["revoked_at"], field="revoked_at"),
        )
    if body["kind"] not in DEVICE_KINDS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown device kind")
    keys = PublicDeviceKeys.from_json(body)
    verify_registration(
        national_id=national_id,
        device=device,
        keys=keys,
        signature=unb64u(body["self_sig"], length=SIGNATURE_BYTES, field="self_sig"),
    )
    return Certificate(
        national_id=national_id,
        device=device,
        kind=body["kind"],
        keys=keys,
        issued_at=expect_int(body["issued_at"], field="issued_at"),
    )


# Tree heads -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root: bytes
    timestamp: int
    signature: bytes

    def to_json(self, *, log_public: bytes) -> JsonObject:
        return {
            "head": _head_body(log_public, self.size, self.root, self.timestamp),
            "sig": b64u(self.signature),
        }


def _head_body(log_public: bytes, size: int, root: bytes, timestamp: int) -> JsonObject:
    return {
        "v": 1,
        "type": "tree_head",
        "log": log_key_id(log_public),
        "size": size,
        "root": b64u(root),
        "timestamp": timestamp,
    }


def sign_tree_head(
    *, log_key: Ed25519PrivateKey, size: int, root: bytes, timestamp: int
) -> TreeHead:
    body = _head_body(log_public_key(log_key), size, root, timestamp)
    return TreeHead(
        size=size, root=root, timestamp=timestamp, signature=sign(log_key, labels.TREE_HEAD, body)
    )


def parse_tree_head(value: object, *, log_public: bytes) -> TreeHead:
    """Check a signed tree head (``{"head": ..., "sig": ...}``) from the given log."""
    outer = expect_object(value, {"head", "sig"}, field="tree head")
    body = expect_object(
        outer["head"], {"v", "type", "log", "size", "root", "timestamp"}, field="tree head"
    )
    if body["v"] != 1 or body["type"] != "tree_head" or body["log"] != log_key_id(log_public):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "tree head from another log or version")
    signature = unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig")
    verify(log_public, signature, labels.TREE_HEAD, body)
    return TreeHead(
        size=expect_int(body["size"], field="size"),
        root=unb64u(body["root"], length=HASH_BYTES, field="root"),
        timestamp=expect_int(body["timestamp"], field="timestamp"),
        signature=signature,
    )


def check_inclusion(*, leaf: bytes, index: int, proof: list[str], head: TreeHead) -> None:
    """The log entry ``leaf`` is entry ``index`` of the tree ``head`` signs."""
    verify_inclusion(
        leaf=leaf_hash(leaf),
        index=index,
        size=head.size,
        proof=[unb64u(node, length=HASH_BYTES, field="proof") for node in proof],
        expected_root=head.root,
    )


def check_consistency(*, old: TreeHead, new: TreeHead, proof: list[str]) -> None:
    """The tree ``new`` signs extends the tree ``old`` signs (nothing rewritten)."""
    verify_consistency(
        old_size=old.size,
        new_size=new.size,
        old_root=old.root,
        new_root=new.root,
        proof=[unb64u(node, length=HASH_BYTES, field="proof") for node in proof],
    )
