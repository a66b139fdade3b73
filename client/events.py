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
    or a file's caption.

    ``seq`` is the server's number in the room; ``sender_seq`` and ``sent_at`` the
    sender's own number and clock, from inside the encryption: show a sender's messages
    in ``sender_seq`` order. ``late``: it arrived after a later message of the same
    sender (the server reordered them). ``stale_state``: its sender's device had not
    been shown a removal made well before it was sent (a removed person may read it)."""

    room: int
    seq: int
    sender: DeviceRef
    content: JsonObject
    own: bool
    attachment: AttachmentDescriptor | None = None
    sender_seq: int = 0
    sent_at: int = 0
    late: bool = False
    stale_state: bool = False

    @property
    def text(self) -> str:
        return str(self.content.get("text", ""))


@dataclass(frozen=True, slots=True)
class SecurityAlert:
    """Something the client refused or must tell its user. ``kind`` is a CryptoErrorCode
    value, or one of the SDK's own: ``unknown_device``, ``unknown_identity_key``,
    ``identity_changed``, ``key_changed`` (a verified contact), ``key_transparency``,
    ``log_fork``, ``withheld_state``, ``stale_state``, ``reordered``,
    ``missing_message``, ``device_revoked``, ``device_unreachable``, ``removed``,
    ``log_head_refused`` (docs/protocol.md §10.10)."""

    kind: str
    room: int | None
    detail: str


class SecurityError(Exception):
    """An operation was refused because verification failed (see ``alerts``)."""


@dataclass(frozen=True, slots=True)
class RoomProfile:
    """A room's decrypted profile (``e2ee.profile``): its version and its content."""

    version: int
    content: JsonObject
