"""VAPID keys (RFC 8292): how they are made, read from the environment, and used.

The key is an ECDSA P-256 key pair. Browsers bind each push subscription to the public
key given as ``applicationServerKey``; push services then accept a push only with a
JWT signed by the matching private key. Changing the key therefore orphans every
subscription: generate it once, at set-up (``manage.py generate_vapid_keys``).

Format in ``RELAIS_VAPID_PRIVATE_KEY``: the 32-byte private scalar in base64url (what
``generate_vapid_keys`` prints), or a PEM private key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from server.environment import ConfigurationError

# Push services refuse tokens valid for more than 24 hours (RFC 8292 §2).
TOKEN_LIFETIME_SECONDS = 12 * 3600
# As strict as the signing library (py_vapid), so a subject it would refuse stops the start.
_SUBJECT = re.compile(
    r"mailto:[^@\s]+@(localhost|[\w-]+(\.[\w-]+)+)|https://(localhost|[\w-]+\.[\w.-]+)",
    re.IGNORECASE,
)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError when malformed."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


@dataclass(frozen=True)
class VapidKey:
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key_bytes(self) -> bytes:
        """The uncompressed P-256 point (65 bytes): the browsers' ``applicationServerKey``."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key(self) -> str:
        return b64url_encode(self.public_key_bytes)

    @property
    def private_key_text(self) -> str:
        """The value to put in ``RELAIS_VAPID_PRIVATE_KEY``."""
        return b64url_encode(self.private_key.private_numbers().private_value.to_bytes(32, "big"))

    def authorization(self, *, audience: str, subject: str, expires_at: int) -> str:
        """The ``Authorization: vapid t=…, k=…`` value for one push service origin.

        ``audience`` is the endpoint's origin (``https://host[:port]``), ``expires_at``
        a Unix time at most 24 hours ahead.
        """
        signer = Vapid02(self.private_key)
        headers = signer.sign({"aud": audience, "sub": subject, "exp": expires_at})
        value: str = headers["Authorization"]
        return value


def generate_key() -> VapidKey:
    return VapidKey(ec.generate_private_key(ec.SECP256R1()))


def load_private_key(text: str, *, variable: str) -> VapidKey:
    """Read a VAPID private key; ConfigurationError naming ``variable`` when unusable."""
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
                loaded.curve, ec.SECP256R1
            ):
                raise ValueError("not a P-256 key")
            return VapidKey(loaded)
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return VapidKey(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))
    except ValueError as error:
        raise ConfigurationError(
            f"{variable} must be a P-256 private key (base64url of 32 bytes, as printed by "
            f"'manage.py generate_vapid_keys', or PEM): {error}"
        ) from None


def check_subject(subject: str, *, variable: str) -> None:
    """RFC 8292 §2.1: a contact for the push service, ``mailto:`` or an ``https:`` origin."""
    if not _SUBJECT.fullmatch(subject):
        raise ConfigurationError(
            f"{variable} must be a mailto: address or an https:// origin, not {subject!r}"
        )
