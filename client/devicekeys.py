"""This device's own keys: its Ed25519 signing key, which never changes, and its X25519
key-agreement keys, which rotate (``e2ee.kex``).

Every ``ROTATE_AFTER_MS`` the device makes a new key-agreement key, publishes it signed
by its signing key, and keeps the previous private keys only ``KEEP_OLD_PRIVATE_MS``
longer (for shares already on their way). After that, a copy of the key store taken
earlier opens no share sealed to the device: post-compromise security for key shares.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from client.api import RestApi
from e2ee import kex
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair, raw_private


class DeviceKeys:
    """The part of the key store under ``data["keys"]``::

    {"sign": b64u, "kex": {"<serial>": {"private": b64u, "created_at": ms}}, "serial": n}
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def generate(cls) -> DeviceKeys:
        pair = DeviceKeyPair.generate()
        sign_private, kex_private = pair.private_bytes()
        return cls(
            {
                "sign": b64u(sign_private),
                "kex": {"1": {"private": b64u(kex_private), "created_at": 0}},
                "serial": 1,
            }
        )

    @property
    def serial(self) -> int:
        return int(self.data["serial"])

    @property
    def sign_private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(unb64u(self.data["sign"]))

    def kex_private(self, serial: int | None = None) -> X25519PrivateKey | None:
        """The private key-agreement key ``serial`` (the current one by default), or None
        once deleted."""
        entry = self.data["kex"].get(str(self.serial if serial is None else serial))
        return X25519PrivateKey.from_private_bytes(unb64u(entry["private"])) if entry else None

    @property
    def pair(self) -> DeviceKeyPair:
        """The signing key with the current key-agreement key."""
        current = self.kex_private()
        assert current is not None, "the current key-agreement key is never deleted"
        return DeviceKeyPair(sign=self.sign_private, kex=current)

    def published(self, *, national_id: str, device: int) -> bytes:
        """The signed document of the current key-agreement key."""
        entry = self.data["kex"][str(self.serial)]
        current = self.kex_private()
        assert current is not None
        return kex.publish(
            key_pair=self.pair,
            national_id=national_id,
            device=device,
            kex_private=current,
            serial=self.serial,
            now_ms=int(entry["created_at"]),
        )

    def due(self, now_ms: int) -> bool:
        created = int(self.data["kex"][str(self.serial)]["created_at"])
        return now_ms - created >= kex.ROTATE_AFTER_MS

    def rotate(self, now_ms: int) -> None:
        """Make a new current key-agreement key; forget private keys past their grace."""
        serial = self.serial + 1
        self.data["kex"][str(serial)] = {
            "private": b64u(raw_private(X25519PrivateKey.generate())),
            "created_at": now_ms,
        }
        self.data["serial"] = serial
        self.forget_old(now_ms)

    def forget_old(self, now_ms: int) -> None:
        """Delete every private key-agreement key replaced more than the grace ago."""
        entries = self.data["kex"]
        for serial in sorted(int(s) for s in entries):
            newer = entries.get(str(serial + 1))
            if newer is not None and now_ms - int(newer["created_at"]) >= kex.KEEP_OLD_PRIVATE_MS:
                del entries[str(serial)]

    def stamp(self, now_ms: int) -> None:
        """Date the first key-agreement key (made before the clock was known)."""
        entry = self.data["kex"][str(self.serial)]
        if not entry["created_at"]:
            entry["created_at"] = now_ms


async def publish_kex(api: RestApi, keys: DeviceKeys, *, national_id: str, device: int) -> None:
    await api.call(
        "PUT",
        "devices/kex",
        json={"kex": keys.published(national_id=national_id, device=device).decode("utf-8")},
    )
