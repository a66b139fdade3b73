"""The log's keys: an Ed25519 signing key and an ECVRF key, both derived from one
32-byte seed kept in a file (``RELAIS_KEYLOG_KEY_FILE``).

The seed file is required in production (the settings refuse to start without it);
``manage.py keylog_generate_key PATH`` writes one with mode 0600. The two keys are
HKDF-SHA256 outputs of the seed under distinct labels, so neither reveals the other.
With DEBUG on and no file configured, a seed is generated under ``var/`` on first use
(development and tests), shared by every process of the checkout. The public keys are
what the apps ship with (``RELAIS_LOG_PUBLIC_KEY`` for the SDK and CLI).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from e2ee import labels, vrf
from e2ee.keys import raw_public

SEED_BYTES = 32


@dataclass(frozen=True, slots=True)
class LogKeys:
    signing: Ed25519PrivateKey
    vrf_secret: bytes

    @property
    def log_public(self) -> bytes:
        return raw_public(self.signing)

    @property
    def vrf_public(self) -> bytes:
        return vrf.public_key(self.vrf_secret)


def derive_keys(seed: bytes) -> LogKeys:
    if len(seed) != SEED_BYTES:
        raise ValueError("the log seed is 32 bytes")

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(seed)

    return LogKeys(
        signing=Ed25519PrivateKey.from_private_bytes(derive(labels.LOG_SIGNING_KEY)),
        vrf_secret=derive(labels.LOG_VRF_KEY),
    )


def write_seed_file(path: Path) -> None:
    """Create ``path`` (mode 0600) holding a fresh seed; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(SEED_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # atomic, and fails if another process made one first
    finally:
        temporary.unlink()


def read_seed_file(path: Path) -> bytes:
    seed = path.read_bytes()
    if len(seed) != SEED_BYTES:
        raise ImproperlyConfigured(f"RELAIS_KEYLOG_KEY_FILE must hold {SEED_BYTES} bytes")
    return seed


def key_file() -> Path:
    """The configured seed file; in DEBUG without one, the development file (made on
    first use)."""
    configured: str = settings.KEYLOG_KEY_FILE
    if configured:
        return Path(configured)
    development: str = settings.KEYLOG_DEVELOPMENT_KEY_FILE  # set only with DEBUG on
    if not development:
        raise ImproperlyConfigured("RELAIS_KEYLOG_KEY_FILE must be set when DEBUG is off")
    path = Path(development)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_seed_file(path)
    return path


@cache
def log_keys() -> LogKeys:
    return derive_keys(read_seed_file(key_file()))


def log_signing_key() -> Ed25519PrivateKey:
    return log_keys().signing


def log_public() -> bytes:
    return log_keys().log_public
