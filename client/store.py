"""The device's local key store, encrypted at rest.

Everything secret a device holds — its private keys, its token, its sender-key
ratchets — lives in one file, sealed with AES-256-GCM under a key derived from a
passphrase with scrypt (``cryptography``'s Scrypt; n=2**15, r=8, p=1 by default). The
file is rewritten atomically (write, fsync, rename) and readable by its owner only.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from e2ee import labels
from e2ee.encoding import b64u, unb64u

SCRYPT_N = 2**15


class StoreError(Exception):
    """The store cannot be opened (wrong passphrase, or the file is damaged)."""


class KeyStore:
    """A JSON document kept encrypted on disk. ``data`` is the live document; call
    ``save()`` after changing it."""

    def __init__(self, path: Path, key: bytes, salt: bytes, n: int, data: dict[str, Any]) -> None:
        self.path = path
        self._key = key
        self._salt = salt
        self._n = n
        self.data = data

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))

    @classmethod
    def open(cls, path: Path, passphrase: str, *, n: int = SCRYPT_N) -> KeyStore:
        """Open the store at ``path``, or create an empty one."""
        if not passphrase:
            raise StoreError("a passphrase is required to protect the device keys")
        if not path.exists():
            salt = secrets.token_bytes(16)
            store = cls(path, cls._derive(passphrase, salt, n), salt, n, {})
            store.save()
            return store
        sealed = json.loads(path.read_text())
        salt, n = unb64u(sealed["salt"]), int(sealed["n"])
        key = cls._derive(passphrase, salt, n)
        try:
            plaintext = AESGCM(key).decrypt(
                unb64u(sealed["nonce"]), unb64u(sealed["ct"]), labels.CLIENT_STORE
            )
        except InvalidTag:
            raise StoreError("wrong passphrase, or the key store is damaged") from None
        return cls(path, key, salt, n, json.loads(plaintext))

    def save(self) -> None:
        nonce = secrets.token_bytes(12)
        ciphertext = AESGCM(self._key).encrypt(
            nonce, json.dumps(self.data).encode("utf-8"), labels.CLIENT_STORE
        )
        sealed = {
            "v": 1,
            "kdf": "scrypt",
            "salt": b64u(self._salt),
            "n": self._n,
            "nonce": b64u(nonce),
            "ct": b64u(ciphertext),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(sealed))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
