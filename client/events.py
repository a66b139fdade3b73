"""What the SDK hands to its user: decrypted messages and security alerts."""

from __future__ import annotations

from dataclasses import dataclass

from e2ee.encoding import JsonObject

DeviceRef = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Message:
    room: int
    seq: int
    sender: DeviceRef
    content: JsonObject
    own: bool

    @property
    def text(self) -> str:
        return str(self.content.get("text", ""))


@dataclass(frozen=True, slots=True)
class SecurityAlert:
    """Something the client refused or must tell its user. ``kind`` is a CryptoErrorCode
    value, ``unknown_device``, ``key_changed`` or ``key_transparency``."""

    kind: str
    room: int | None
    detail: str


class SecurityError(Exception):
    """An operation was refused because verification failed (see ``alerts``)."""
