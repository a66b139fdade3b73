"""Device keys: an Ed25519 signing key and an X25519 key-agreement key per device."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from e2ee.encoding import b64u, signing_input, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode

KEY_BYTES = 32
SIGNATURE_BYTES = 64


def raw_public(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def raw_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@dataclass(frozen=True, slots=True)
class PublicDeviceKeys:
    """The public half of a device: what certificates and room states carry."""

    sign_key: bytes
    kex_key: bytes

    def __post_init__(self) -> None:
        if len(self.sign_key) != KEY_BYTES or len(self.kex_key) != KEY_BYTES:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "device keys are 32 bytes each")

    def to_json(self) -> dict[str, str]:
        return {"sign_key": b64u(self.sign_key), "kex_key": b64u(self.kex_key)}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> PublicDeviceKeys:
        return cls(
            sign_key=unb64u(value.get("sign_key"), length=KEY_BYTES, field="sign_key"),
            kex_key=unb64u(value.get("kex_key"), length=KEY_BYTES, field="kex_key"),
        )


class DeviceKeyPair:
    """The private keys of this device. Never leaves the device (the SDK stores it
    encrypted at rest)."""

    def __init__(self, *, sign: Ed25519PrivateKey, kex: X25519PrivateKey) -> None:
        self.sign_private = sign
        self.kex_private = kex
        self.public = PublicDeviceKeys(sign_key=raw_public(sign), kex_key=raw_public(kex))

    @classmethod
    def generate(cls) -> DeviceKeyPair:
        return cls(sign=Ed25519PrivateKey.generate(), kex=X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, *, sign: bytes, kex: bytes) -> DeviceKeyPair:
        return cls(
            sign=Ed25519PrivateKey.from_private_bytes(sign),
            kex=X25519PrivateKey.from_private_bytes(kex),
        )

    def private_bytes(self) -> tuple[bytes, bytes]:
        return raw_private(self.sign_private), raw_private(self.kex_private)

    def sign(self, label: str, value: object) -> bytes:
        return sign(self.sign_private, label, value)


def sign(key: Ed25519PrivateKey, label: str, value: object) -> bytes:
    """Ed25519 signature over ``label || 0x00 || canonical_json(value)``."""
    return key.sign(signing_input(label, value))


def verify(sign_key: bytes, signature: bytes, label: str, value: object) -> None:
    """Raise BAD_SIGNATURE unless ``signature`` is ``sign_key``'s over the value."""
    try:
        Ed25519PublicKey.from_public_bytes(sign_key).verify(signature, signing_input(label, value))
    except (InvalidSignature, ValueError):
        raise CryptoError(CryptoErrorCode.BAD_SIGNATURE, label) from None
