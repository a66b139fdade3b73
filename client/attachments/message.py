"""The end-to-end encrypted message that carries an attachment, and its size bound.

Its content is ``{"type": "attachment", "attachment": DESCRIPTOR, "text": CAPTION}``
(docs/protocol.md, "Attachments"). The descriptor is always ``DESCRIPTOR_BYTES`` long and
the caption at most ``MAX_CAPTION_BYTES``, so every such message fits in an envelope
with room to spare, whatever the photo (tests/attachments/test_message_size.py); the
caption is checked before anything is uploaded.
"""

from __future__ import annotations

from typing import Final

from client.attachments.errors import AttachmentError, ClientCode
from e2ee.encoding import canonical_json

MAX_CAPTION_BYTES: Final = 4096


def caption_bytes(text: str) -> int:
    """The bytes ``text`` takes in the message: its canonical JSON string, quotes
    excluded (UTF-8, control characters escaped)."""
    return len(canonical_json(text)) - 2


def check_caption(text: str | None) -> None:
    """AttachmentError(caption_too_long) when ``text`` cannot go with an attachment."""
    if text and (length := caption_bytes(text)) > MAX_CAPTION_BYTES:
        raise AttachmentError(
            ClientCode.CAPTION_TOO_LONG,
            f"{length} bytes; at most {MAX_CAPTION_BYTES}.",
            f"{length} octets ; au plus {MAX_CAPTION_BYTES}.",
        )
