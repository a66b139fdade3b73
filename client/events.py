"""What the SDK hands to its user: decrypted messages and security alerts."""

from __future__ import annotations

from dataclasses import dataclass

from client.attachments.descriptor import AttachmentDescriptor
from e2ee.encoding import JsonObject

DeviceRef = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Message:
    """A decrypted message. ``attachment`` is the validated descriptor of a photo or
    file message (content type ``attachment``), None otherwise; ``text`` is the text,
    or a file's caption."""

    room: int
    seq: int
    sender: DeviceRef
    content: JsonObject
    own: bool
    attachment: AttachmentDescriptor | None = None

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
