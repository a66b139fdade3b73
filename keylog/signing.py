"""The log's Ed25519 signing key.

``RELAIS_KEYLOG_SIGNING_KEY`` (base64url of a 32-byte Ed25519 private key) when set;
otherwise derived from Django's secret key with HKDF-SHA256 under the label
``relais/v1/keylog/signing-key``, so a deployment works without new configuration and
keeps the same log key across restarts and processes. The key's secrecy is not what
protects users: clients trust a key only when its certificate is in the public log,
and each practitioner's devices watch the log for devices they do not know.
"""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from e2ee import labels
from e2ee.encoding import unb64u
from e2ee.transparency import log_public_key


@cache
def log_signing_key() -> Ed25519PrivateKey:
    configured: str = getattr(settings, "KEYLOG_SIGNING_KEY", "")
    if configured:
        return Ed25519PrivateKey.from_private_bytes(
            unb64u(configured, length=32, field="RELAIS_KEYLOG_SIGNING_KEY")
        )
    seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=labels.LOG_KEY_DERIVATION).derive(
        settings.SECRET_KEY.encode("utf-8")
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def log_public() -> bytes:
    return log_public_key(log_signing_key())
