"""The attachment descriptor: what an encrypted message carries so that its recipients
can fetch, verify and decrypt an attachment, and show a photo's preview at once.

It travels only *inside* an end-to-end encrypted envelope (it holds the file key and
the thumbnail), never in clear. Its canonical JSON encoding (keys sorted, no spaces,
absent optional fields omitted, UTF-8) is specified in docs/protocol.md, "Attachments",
with test vectors, so that every client produces the same bytes for the same descriptor.

Version 2 hides from the server what version 1 let it see: the blob is padded
(``padding.py``: its size no longer gives the file's), a photo's thumbnail is carried
here instead of in a second blob (nothing pairs two blobs, nothing says "photo"), and
every descriptor is exactly ``DESCRIPTOR_BYTES`` long (``pad``), so a message carrying a
photo is as long as one carrying a document with the same caption.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Final, Literal

import msgspec
from PIL import Image, UnidentifiedImageError

from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.padding import padded_size
from client.attachments.stream import KEY_BYTES, SCHEME, ciphertext_size
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError

VERSION: Final = 2
DESCRIPTOR_BYTES: Final = 18_432
"""The length of every descriptor's canonical JSON: the longest one the field limits
allow, without its ``pad``, fits (tests/attachments/test_descriptor.py checks it)."""
MAX_THUMBNAIL_BYTES: Final = 12_000  # 16,000 characters of base64url
MAX_THUMBNAIL_EDGE: Final = 1024
THUMBNAIL_FORMATS: Final = {"image/jpeg": "JPEG", "image/webp": "WEBP"}

BlobId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
KeyText = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
Dimension = Annotated[int, msgspec.Meta(ge=1, le=65535)]
ThumbnailDimension = Annotated[int, msgspec.Meta(ge=1, le=MAX_THUMBNAIL_EDGE)]
ThumbnailData = Annotated[
    str,
    msgspec.Meta(
        min_length=2, max_length=MAX_THUMBNAIL_BYTES * 4 // 3, pattern=r"^[A-Za-z0-9_-]+$"
    ),
]
MimeType = Annotated[
    str,
    msgspec.Meta(
        max_length=127, pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$"
    ),
]
FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Pad = Annotated[str, msgspec.Meta(pattern=r"^0*$")]


def encode_key(key: bytes) -> str:
    """base64url without padding, as every binary value of the protocol."""
    return b64u(key)


def _unb64u(text: str, *, length: int | None, field: str) -> bytes:
    try:
        return unb64u(text, length=length, field=field)
    except CryptoError as error:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, f"{error.detail}.") from None


def decode_key(text: str) -> bytes:
    return _unb64u(text, length=KEY_BYTES, field="key")


class ThumbnailDescriptor(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A photo's preview, carried whole: ``data`` is the re-encoded thumbnail (base64url,
    at most ``MAX_THUMBNAIL_BYTES``), ``width`` x ``height`` its pixels."""

    data: ThumbnailData
    mime: Literal["image/jpeg", "image/webp"]
    width: ThumbnailDimension
    height: ThumbnailDimension

    @property
    def image(self) -> bytes:
        """The thumbnail's bytes (a JPEG or WebP file)."""
        return _unb64u(self.data, length=None, field="thumbnail.data")


class AttachmentDescriptor(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One attachment of a message.

    ``blob`` is the server's id of the encrypted file; ``key`` its file key (base64url);
    ``sha256`` the SHA-256 of the whole blob (lowercase hex); ``ciphertext_size`` the
    blob's size and ``size`` the file's (the blob holds it padded to
    ``padded_size(size)``); ``mime`` the file's type (checked against its content before
    sending); ``name`` the file name shown to the user; ``width``/``height`` and
    ``thumbnail`` for images only; ``pad`` zeros that make the encoding
    ``DESCRIPTOR_BYTES`` long. Build one with ``build_descriptor``, which sets ``v``,
    ``scheme`` and ``pad``.
    """

    v: Literal[2]
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
    pad: Pad

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

    @property
    def padded_size(self) -> int:
        """How many bytes of plaintext the blob holds: the file, then zero bytes."""
        return padded_size(self.size)


def build_descriptor(
    *,
    blob: str,
    key: bytes,
    sha256: str,
    size: int,
    mime: str,
    name: str | None = None,
    width: int | None = None,
    height: int | None = None,
    thumbnail: ThumbnailDescriptor | None = None,
) -> AttachmentDescriptor:
    """The descriptor of a file of ``size`` bytes uploaded, padded, as ``blob``; ``pad``
    brings its encoding to exactly ``DESCRIPTOR_BYTES``."""
    unpadded = AttachmentDescriptor(
        v=VERSION,
        scheme=SCHEME,
        blob=blob,
        key=encode_key(key),
        sha256=sha256,
        ciphertext_size=ciphertext_size(padded_size(size)),
        size=size,
        mime=mime,
        name=name,
        width=width,
        height=height,
        thumbnail=thumbnail,
        pad="",
    )
    missing = DESCRIPTOR_BYTES - len(unpadded.to_json())
    if missing < 0:  # the field limits make this impossible; never send a longer one
        raise ValueError(f"descriptor longer than {DESCRIPTOR_BYTES} bytes")
    descriptor = msgspec.structs.replace(unpadded, pad="0" * missing)
    return descriptor_from_json(descriptor.to_json())  # the checks a receiver makes


def thumbnail_of(image: bytes, *, mime: str, width: int, height: int) -> ThumbnailDescriptor:
    """The descriptor's ``thumbnail`` for an encoded thumbnail image."""
    if len(image) > MAX_THUMBNAIL_BYTES:
        raise ValueError(f"a thumbnail is at most {MAX_THUMBNAIL_BYTES} bytes")
    thumbnail = msgspec.convert(
        {"data": b64u(image), "mime": mime, "width": width, "height": height},
        type=ThumbnailDescriptor,
    )
    _check_thumbnail(thumbnail)
    return thumbnail


def _check_thumbnail(thumbnail: ThumbnailDescriptor) -> None:
    """The thumbnail is an image of its declared type and size, read from its header
    only: a preview that would decode to something else is refused before any viewer
    decodes it."""
    try:
        with Image.open(
            io.BytesIO(thumbnail.image), formats=[THUMBNAIL_FORMATS[thumbnail.mime]]
        ) as image:
            found = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AttachmentError(
            ClientCode.BAD_DESCRIPTOR, f"The thumbnail is not an image of type {thumbnail.mime}."
        ) from None
    if found != (thumbnail.width, thumbnail.height):
        raise AttachmentError(
            ClientCode.BAD_DESCRIPTOR,
            f"The thumbnail is {found[0]}x{found[1]}, "
            f"not {thumbnail.width}x{thumbnail.height} as declared.",
        )


def compact(descriptor: AttachmentDescriptor) -> AttachmentDescriptor:
    """The descriptor without its thumbnail and with an empty ``pad``: the form a
    téléexpertise event carries (protocol §12.2), where up to twelve files must fit one
    envelope that is padded as a whole."""
    return msgspec.structs.replace(descriptor, thumbnail=None, pad="")


def _check(descriptor: AttachmentDescriptor, *, compact_form: bool = False) -> None:
    decode_key(descriptor.key)
    if descriptor.thumbnail is not None:
        _check_thumbnail(descriptor.thumbnail)
    if descriptor.ciphertext_size != ciphertext_size(padded_size(descriptor.size)):
        raise AttachmentError(
            ClientCode.BAD_DESCRIPTOR,
            f"A file of {descriptor.size} bytes, padded, is a blob of "
            f"{ciphertext_size(padded_size(descriptor.size))} bytes, "
            f"not {descriptor.ciphertext_size}.",
        )
    if compact_form:
        if descriptor.pad or descriptor.thumbnail is not None:
            raise AttachmentError(
                ClientCode.BAD_DESCRIPTOR,
                "A compact descriptor has an empty pad and no thumbnail.",
            )
        return
    length = len(descriptor.to_json())
    if length != DESCRIPTOR_BYTES:
        raise AttachmentError(
            ClientCode.BAD_DESCRIPTOR,
            f"The descriptor is {length} bytes long, not {DESCRIPTOR_BYTES}.",
        )


def descriptor_from_json(data: bytes | str, *, compact_form: bool = False) -> AttachmentDescriptor:
    """Parse and validate a descriptor (``compact_form``: as ``compact`` makes it);
    AttachmentError(bad_descriptor) on any defect."""
    try:
        descriptor = msgspec.json.decode(data, type=AttachmentDescriptor)
    except msgspec.ValidationError as error:
        version = _version_of(data)
        if version is not None and version != VERSION:
            raise AttachmentError(
                ClientCode.BAD_DESCRIPTOR,
                f"Descriptor version {version} is not supported (this client reads "
                f"version {VERSION}).",
            ) from None
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, str(error)) from None
    except msgspec.DecodeError:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "Not JSON.") from None
    _check(descriptor, compact_form=compact_form)
    return descriptor


def _version_of(data: bytes | str) -> object:
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:  # pragma: no cover - decoded once already
        return None
    return value.get("v") if isinstance(value, dict) else None


def descriptor_from_dict(
    value: dict[str, Any], *, compact_form: bool = False
) -> AttachmentDescriptor:
    """Parse a descriptor embedded as an object inside a decrypted message."""
    return descriptor_from_json(msgspec.json.encode(value), compact_form=compact_form)
