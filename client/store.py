"""The device's local key store, encrypted at rest, used by one process at a time.

Everything secret a device holds — its private keys, its identity key, its token, its
sender-key ratchets — lives in one file, sealed with AES-256-GCM under a key derived
from a passphrase with scrypt (``cryptography``'s Scrypt; n=2**17, r=8, p=1 by default:
128 MiB and a fraction of a second per opening, so each guess of a stolen file's
passphrase costs as much). Each save draws a fresh random 96-bit nonce. The file is
rewritten atomically (write, fsync, rename) and readable by its owner only.

A store is *locked* while open (an exclusive ``flock`` on ``<file>.lock``): a second
process opening the same store is refused, because two writers of one ratchet would
reuse message keys (the same AES-GCM key and nonce for two messages) and overwrite each
other's state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from e2ee import labels
from e2ee.encoding import b64u, unb64u

SCRYPT_N = 2**17


class StoreError(Exception):
    """The store cannot be opened (wrong passphrase, damaged, or in use elsewhere)."""


def _lock(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(descriptor, "r+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(
            "this key store is open in another program; close it first "
            "/ ce coffre de clés est ouvert dans un autre programme ; fermez-le d'abord"
        ) from None
    return handle


class KeyStore:
    """A JSON document kept encrypted on disk. ``data`` is the live document; call
    ``save()`` after changing it and ``close()`` when done (the lock is released)."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        salt: bytes,
        n: int,
        data: dict[str, Any],
        lock: IO[bytes] | None = None,
    ) -> None:
        self.path = path
        self._key = key
        self._salt = salt
        self._n = n
        self._lock = lock
        self.data = data

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))

    @classmethod
    def open(cls, path: Path, passphrase: str, *, n: int = SCRYPT_N) -> KeyStore:
        """Open the store at ``path``, or create an empty one, and lock it. ``n`` is the
        scrypt cost of a new store (an existing one keeps its own)."""
        if not passphrase:
            raise StoreError("a passphrase is required to protect the device keys")
        lock = _lock(path)
        try:
            if not path.exists():
                salt = secrets.token_bytes(16)
                store = cls(path, cls._derive(passphrase, salt, n), salt, n, {}, lock)
                store.save()
                return store
            try:
                sealed = json.loads(path.read_text())
                salt, stored_n = unb64u(sealed["salt"]), int(sealed["n"])
                nonce, ciphertext = unb64u(sealed["nonce"]), unb64u(sealed["ct"])
            except (OSError, ValueError, KeyError, TypeError):
                raise StoreError("the key store file is damaged") from None
            key = cls._derive(passphrase, salt, stored_n)
            try:
                plaintext = AESGCM(key).decrypt(nonce, ciphertext, labels.CLIENT_STORE)
            except InvalidTag:
                raise StoreError("wrong passphrase, or the key store is damaged") from None
            return cls(path, key, salt, stored_n, json.loads(plaintext), lock)
        except BaseException:
            lock.close()
            raise

    def save(self) -> None:
        if self._lock is None:
            raise StoreError("the key store is closed")
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

    def close(self) -> None:
        """Release the lock; the store cannot be saved any more."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()
            self._lock = None

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
