"""The attachment descriptor: what an encrypted message carries so that its recipients
can fetch, verify and decrypt an attachment.

It travels only *inside* an end-to-end encrypted envelope (it holds the file key), never
in clear. Its canonical JSON encoding (keys sorted, no spaces, absent optional fields
omitted, UTF-8) is specified in docs/protocol.md, "Attachments", with test vectors, so
that every client produces the same bytes for the same descriptor.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Final, Literal

import msgspec

from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.stream import KEY_BYTES, SCHEME

VERSION: Final = 1

BlobId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
KeyText = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Dimension = Annotated[int, msgspec.Meta(ge=1, le=65535)]
MimeType = Annotated[
    str,
    msgspec.Meta(
        max_length=127, pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$"
    ),
]
FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


def encode_key(key: bytes) -> str:
    """base64url without padding, as every binary value of the protocol."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def decode_key(text: str) -> bytes:
    key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(key) != KEY_BYTES:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "The key is not 32 bytes.")
    return key


class ThumbnailDescriptor(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The thumbnail of an image: its own blob, encrypted with its own key."""

    blob: BlobId
    key: KeyText
    sha256: Sha256Hex
    ciphertext_size: Size
    size: Size
    mime: MimeType
    width: Dimension
    height: Dimension


class AttachmentDescriptor(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One attachment of a message.

    ``blob`` is the server's id of the encrypted file; ``key`` its file key (base64url);
    ``sha256`` the SHA-256 of the whole blob (lowercase hex); ``ciphertext_size`` the
    blob's size and ``size`` the plaintext's; ``mime`` the plaintext's type (checked
    against its content before sending); ``name`` the file name shown to the user;
    ``width``/``height`` and ``thumbnail`` for images only. ``v`` and ``scheme`` are
    always written (``v=VERSION, scheme=SCHEME``) so a later format is recognised.
    """

    v: Literal[1]
    scheme: Literal["aes256gcm-hkdf-sha256-stream64k"]
    blob: BlobId
    key: KeyText
    sha256: Sha256Hex
    ciphertext_size: Size
    size: Size
    mime: MimeType
    name: FileName | None = None
    width: Dimension | None = None
    height: Dimension | None = None
    thumbnail: ThumbnailDescriptor | None = None

    def to_json(self) -> bytes:
        """The canonical encoding."""
        return msgspec.json.encode(self, order="sorted")

    def to_dict(self) -> dict[str, Any]:
        """The same value as plain JSON types, to embed in a larger message object."""
        value: dict[str, Any] = msgspec.json.decode(self.to_json())
        return value

    @property
    def file_key(self) -> bytes:
        return decode_key(self.key)


def descriptor_from_json(data: bytes | str) -> AttachmentDescriptor:
    """Parse and validate a descriptor; AttachmentError(bad_descriptor) on any defect."""
    try:
        descriptor = msgspec.json.decode(data, type=AttachmentDescriptor)
    except msgspec.ValidationError as error:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, str(error)) from None
    except msgspec.DecodeError:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "Not JSON.") from None
    if descriptor.scheme != SCHEME:  # pragma: no cover - the Literal type refuses others
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "Unknown scheme.")
    decode_key(descriptor.key)
    if descriptor.thumbnail is not None:
        decode_key(descriptor.thumbnail.key)
    return descriptor


def descriptor_from_dict(value: dict[str, Any]) -> AttachmentDescriptor:
    """Parse a descriptor embedded as an object inside a decrypted message."""
    return descriptor_from_json(msgspec.json.encode(value))
