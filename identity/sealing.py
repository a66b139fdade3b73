"""Sealing the PSC tokens Relais must keep (refresh token, ID token) at rest.

AES-256-GCM (``cryptography``'s AEAD) with a key derived by HKDF-SHA256 from Django's
``SECRET_KEY``; a fresh 96-bit nonce per seal; the purpose is bound as associated data,
so a sealed value cannot be replayed in another column. A database leak alone does not
reveal the tokens.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_NONCE_BYTES = 12


class UnsealError(ValueError):
    """The sealed value was altered or sealed under another key or purpose."""


def _key() -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"relais-psc-token-sealing-v1",
        info=b"relais psc tokens",
    ).derive(settings.SECRET_KEY.encode("utf-8"))


def seal(values: dict[str, str], *, purpose: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(values, separators=(",", ":")).encode("utf-8")
    return nonce + AESGCM(_key()).encrypt(nonce, plaintext, purpose.encode("utf-8"))


def unseal(sealed: bytes, *, purpose: str) -> dict[str, str]:
    data = bytes(sealed)
    try:
        plaintext = AESGCM(_key()).decrypt(
            data[:_NONCE_BYTES], data[_NONCE_BYTES:], purpose.encode("utf-8")
        )
    except InvalidTag as error:
        raise UnsealError("sealed PSC tokens cannot be opened") from error
    values: dict[str, str] = json.loads(plaintext)
    return values
