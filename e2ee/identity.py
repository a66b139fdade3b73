"""Practitioner identity keys and the devices they sign (docs/protocol.md §10.4).

Each practitioner (and each organisation, for its archivers) has one Ed25519 *identity
key*, made on their first device and carried to every later device by linking (a QR or
short code, ``e2ee.linking``) or restored from the recovery code (``e2ee.recovery``).
The identity key signs:

* a *binding* of itself to its owner's national id, so nobody can present the key as
  someone else's;
* a *device certificate* for each of the owner's devices: the device number, its kind
  (``device`` for a practitioner's device, ``archiver`` for an organisation's) and its
  Ed25519 signing key.

A room state lists each member's identity key and, for each of their devices, that
certificate's signature (``cross_sig``). So a device the server invents can never enter
a room: only a holder of the member's identity key can sign one, and the key-transparency
log shows the identity key every contact uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import labels
from e2ee.encoding import JsonObject, b64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import KEY_BYTES, raw_private, raw_public, sign, verify

DeviceKind = Literal["device", "archiver"]
DEVICE_KINDS: tuple[DeviceKind, ...] = ("device", "archiver")


def binding_body(*, national_id: str, identity_key: bytes) -> JsonObject:
    return {
        "v": 2,
        "type": "identity_binding",
        "national_id": national_id,
        "identity_key": b64u(identity_key),
    }


def certificate_body(
    *, national_id: str, device: int, kind: DeviceKind, sign_key: bytes, identity_key: bytes
) -> JsonObject:
    """What an identity key signs to vouch for one device."""
    return {
        "v": 2,
        "type": "device_certificate",
        "national_id": national_id,
        "device": device,
        "kind": kind,
        "sign_key": b64u(sign_key),
        "identity_key": b64u(identity_key),
    }


class IdentityKeyPair:
    """The private identity key of a practitioner, held by each of their devices."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.public = raw_public(private)

    @classmethod
    def generate(cls) -> IdentityKeyPair:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> IdentityKeyPair:
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    def private_bytes(self) -> bytes:
        return raw_private(self.private)

    def bind(self, national_id: str) -> bytes:
        return sign(
            self.private,
            labels.IDENTITY_BINDING,
            binding_body(national_id=national_id, identity_key=self.public),
        )

    def certify(self, *, national_id: str, device: int, kind: DeviceKind, sign_key: bytes) -> bytes:
        """The cross-signature that lets ``device`` into rooms as ``national_id``'s."""
        body = certificate_body(
            national_id=national_id,
            device=device,
            kind=kind,
            sign_key=sign_key,
            identity_key=self.public,
        )
        return sign(self.private, labels.DEVICE_CERTIFICATE, body)


def verify_binding(*, national_id: str, identity_key: bytes, signature: bytes) -> None:
    body = binding_body(national_id=national_id, identity_key=identity_key)
    verify(identity_key, signature, labels.IDENTITY_BINDING, body)


def verify_certificate(
    *,
    national_id: str,
    device: int,
    kind: DeviceKind,
    sign_key: bytes,
    identity_key: bytes,
    signature: bytes,
) -> None:
    """Raise CryptoError(bad_signature) unless ``identity_key`` vouched for the device."""
    if len(identity_key) != KEY_BYTES or len(sign_key) != KEY_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "keys are 32 bytes")
    body = certificate_body(
        national_id=national_id,
        device=device,
        kind=kind,
        sign_key=sign_key,
        identity_key=identity_key,
    )
    verify(identity_key, signature, labels.DEVICE_CERTIFICATE, body)


@dataclass(frozen=True, slots=True)
class CertifiedDevice:
    """A device as a room state carries it: number, signing key and the identity key's
    signature over its certificate."""

    device: int
    sign_key: bytes
    cross_sig: bytes
