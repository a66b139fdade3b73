"""Linking a new device to a practitioner's identity (docs/protocol.md §10.4, "Linking").

The server alone can no longer give a practitioner a device that anyone will share
keys with: a device counts only when the practitioner's identity key signed it, and
only their existing devices hold that key. Linking carries it over, as WhatsApp
companion devices and Signal linked devices do:

1. The new device logs in, makes its keys and publishes a *link request* (its device
   number, signing key, key-agreement key and a random nonce). The server files it
   under a random ``link_id`` (5 bytes).
2. The new device shows a QR code ``relais-link:2:<link_id>:<b64u(commitment)>`` and,
   for typing, a 24-character short code: the link id then the first 10 bytes of the
   commitment, where ``commitment = SHA-256("relais/v2/link-approval" || 0x00 ||
   canonical(request))``. The code goes from screen to screen, never through the server.
3. An existing device of the same practitioner takes the code, fetches the request,
   recomputes the commitment (a request the server swapped does not match: it would
   take 2^80 work to forge one for the short code), shows which device asks, and on the
   user's approval seals a *link bundle* to the new device's key-agreement key with HPKE
   (info ``relais/v2/hpke/link-bundle``): the identity key, the account secret, the
   recovery public key, the signature certifying the new device, and what the old device
   knows (verified contacts, audited log position).
4. The new device opens the bundle, checks that the identity key is the one the log
   holds for its national id and that the certificate signature is for itself, then has
   itself certified in the log and joins its practitioner's rooms with ``add_device``
   events it signs itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from e2ee import labels
from e2ee.codes import from_code, to_code
from e2ee.encoding import (
    JsonObject,
    b64u,
    canonical_json,
    expect_int,
    expect_object,
    expect_str,
    parse_canonical,
    signing_input,
    unb64u,
)
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import KEY_BYTES

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
LINK_ID_BYTES = 5
SHORT_COMMITMENT_BYTES = 10
QR_PREFIX = "relais-link:2:"
MAX_BUNDLE_BYTES = 64 * 1024
_REQUEST_KEYS = {"v", "type", "national_id", "device", "sign_key", "kex_key", "nonce"}


def link_request(*, national_id: str, device: int, sign_key: bytes, kex_key: bytes) -> JsonObject:
    """What a new device publishes to be linked (a fresh nonce each time)."""
    return {
        "v": 2,
        "type": "link_request",
        "national_id": national_id,
        "device": device,
        "sign_key": b64u(sign_key),
        "kex_key": b64u(kex_key),
        "nonce": b64u(secrets.token_bytes(16)),
    }


def parse_request(raw: bytes) -> JsonObject:
    body = expect_object(parse_canonical(raw, max_bytes=2048), _REQUEST_KEYS, field="link request")
    if body["v"] != 2 or body["type"] != "link_request":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 link request")
    expect_str(body["national_id"], field="national_id", max_length=32)
    expect_int(body["device"], field="device", minimum=1)
    unb64u(body["sign_key"], length=KEY_BYTES, field="sign_key")
    unb64u(body["kex_key"], length=KEY_BYTES, field="kex_key")
    unb64u(body["nonce"], length=16, field="nonce")
    return body


def commitment(request: JsonObject) -> bytes:
    return hashlib.sha256(signing_input(labels.LINK_APPROVAL, request)).digest()


@dataclass(frozen=True, slots=True)
class LinkCode:
    """What the new device shows and the existing device takes."""

    link_id: bytes
    commitment: bytes  # 32 bytes from a QR code, 10 from a typed short code

    @property
    def qr_payload(self) -> str:
        return f"{QR_PREFIX}{b64u(self.link_id)}:{b64u(self.commitment)}"

    @property
    def short_code(self) -> str:
        return to_code(self.link_id + self.commitment[:SHORT_COMMITMENT_BYTES])

    @property
    def link_id_text(self) -> str:
        return b64u(self.link_id)

    @classmethod
    def parse(cls, text: str) -> LinkCode:
        """A scanned QR payload or a typed short code."""
        text = text.strip()
        if text.startswith(QR_PREFIX):
            parts = text.removeprefix(QR_PREFIX).split(":")
            if len(parts) != 2:
                raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a link code")
            return cls(
                link_id=unb64u(parts[0], length=LINK_ID_BYTES, field="link id"),
                commitment=unb64u(parts[1], length=32, field="commitment"),
            )
        data = from_code(text, length=LINK_ID_BYTES + SHORT_COMMITMENT_BYTES)
        return cls(link_id=data[:LINK_ID_BYTES], commitment=data[LINK_ID_BYTES:])

    def matches(self, request: JsonObject) -> bool:
        full = commitment(request)
        return secrets.compare_digest(full[: len(self.commitment)], self.commitment)


def seal_bundle(*, request: JsonObject, bundle: JsonObject) -> bytes:
    """The link bundle sealed to the requesting device's key-agreement key."""
    recipient = X25519PublicKey.from_public_bytes(unb64u(request["kex_key"], length=KEY_BYTES))
    return SUITE.encrypt(canonical_json(bundle), recipient, info=labels.HPKE_INFO_LINK)


def open_bundle(sealed: bytes, kex_private: X25519PrivateKey) -> JsonObject:
    if len(sealed) > MAX_BUNDLE_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "link bundle too large")
    try:
        plaintext = SUITE.decrypt(sealed, kex_private, info=labels.HPKE_INFO_LINK)
    except (InvalidTag, ValueError):
        raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "HPKE refused the link bundle") from None
    bundle = parse_canonical(plaintext, max_bytes=MAX_BUNDLE_BYTES)
    if bundle.get("v") != 2 or bundle.get("type") != "link_bundle":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 link bundle")
    return bundle
