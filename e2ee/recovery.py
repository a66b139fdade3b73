"""The recovery code and what it opens (docs/protocol.md §10.9, "Recovery").

When a practitioner's first device makes their identity key, it also makes a recovery
code — 20 random bytes shown once as 32 characters for them to keep on paper — and an
*account secret* (32 random bytes) that every device of theirs holds and the server
never sees (``account_key`` derives per-purpose keys from it, e.g. for billing).

From the code, HKDF-SHA256 (info ``relais/v2/recovery-key``) derives an X25519 *recovery
key*. Devices keep only its public half, so a stolen device store cannot open what is
sealed to it. Sealed to it with HPKE (info ``relais/v2/hpke/recovery``) and kept by the
server as opaque blobs:

* the *identity backup*: the identity key and the account secret. A practitioner who
  lost every device logs in again, types the code, and gets the same identity key back:
  contacts' safety numbers do not change;
* *history keys*: for every sender key a device made or received, its chain key at the
  first index the device could read. After a recovery they let the new device read the
  rooms' history again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee import labels
from e2ee.codes import from_code, to_code
from e2ee.encoding import JsonObject, b64u, canonical_json, parse_canonical, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import raw_public

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
CODE_BYTES = 20
ACCOUNT_SECRET_BYTES = 32
MAX_SEALED_BYTES = 8192


@dataclass(frozen=True, slots=True)
class RecoveryCode:
    secret: bytes

    @classmethod
    def generate(cls) -> RecoveryCode:
        return cls(secrets.token_bytes(CODE_BYTES))

    @classmethod
    def parse(cls, code: str) -> RecoveryCode:
        return cls(from_code(code, length=CODE_BYTES))

    def __str__(self) -> str:
        return to_code(self.secret)

    def private_key(self) -> X25519PrivateKey:
        seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=labels.RECOVERY_KEY).derive(
            self.secret
        )
        return X25519PrivateKey.from_private_bytes(seed)

    def public_key(self) -> bytes:
        return raw_public(self.private_key())


def seal(recovery_public: bytes, value: JsonObject) -> bytes:
    """``value`` sealed so that only the recovery code opens it."""
    return SUITE.encrypt(
        canonical_json(value),
        X25519PublicKey.from_public_bytes(recovery_public),
        info=labels.HPKE_INFO_RECOVERY,
    )


def open_sealed(code: RecoveryCode, sealed: bytes) -> JsonObject:
    if len(sealed) > MAX_SEALED_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "sealed backup too large")
    try:
        plaintext = SUITE.decrypt(sealed, code.private_key(), info=labels.HPKE_INFO_RECOVERY)
    except (InvalidTag, ValueError):
        raise CryptoError(
            CryptoErrorCode.DECRYPT_FAILED, "wrong recovery code, or a damaged backup"
        ) from None
    return parse_canonical(plaintext, max_bytes=MAX_SEALED_BYTES)


def identity_backup(
    *, national_id: str, identity_private: bytes, account_secret: bytes
) -> JsonObject:
    return {
        "v": 2,
        "type": "identity_backup",
        "national_id": national_id,
        "identity_key": b64u(identity_private),
        "account_secret": b64u(account_secret),
    }


@dataclass(frozen=True, slots=True)
class RestoredIdentity:
    identity_private: bytes
    account_secret: bytes


def restore_identity(value: JsonObject, *, national_id: str) -> RestoredIdentity:
    if value.get("type") != "identity_backup" or value.get("national_id") != national_id:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not this practitioner's identity backup")
    return RestoredIdentity(
        identity_private=unb64u(value.get("identity_key"), length=32, field="identity_key"),
        account_secret=unb64u(
            value.get("account_secret"), length=ACCOUNT_SECRET_BYTES, field="account_secret"
        ),
    )


def account_key(account_secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` that every device of the practitioner derives alike."""
    if not purpose or not purpose.isascii():
        raise ValueError("a purpose is a non-empty ASCII name")
    return HKDF(
        algorithm=SHA256(), length=32, salt=None, info=labels.ACCOUNT_KEY + purpose.encode()
    ).derive(account_secret)
