"""Checking a file's declared MIME type against its content, before it is encrypted.

Rules (docs/attachments.md says why):

* images go through the photo pipeline, so their declared type must be the image format
  Pillow reads (checked in ``images.py``);
* any other file is sniffed with ``puremagic``: when the content is recognised, the
  declared type must be one of the recognised types — ``application/octet-stream`` is
  accepted for any recognised type except an image (an image sent as "just bytes" would
  skip the metadata stripping, GPS included);
* unrecognised content may only be sent as ``text/plain`` (when it is UTF-8 text) or
  ``application/octet-stream``.
"""

from __future__ import annotations

import codecs
import mimetypes

import puremagic

from client.attachments.errors import AttachmentError, ClientCode

OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain"
SNIFF_BYTES = 64 * 1024

# The image formats the pipeline opens, by MIME type (Pillow's format names).
IMAGE_FORMATS: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}

# Sniffers report some types under another name.
_ALIASES: dict[str, set[str]] = {
    "application/pdf": {"application/pdf", "application/x-pdf"},
    "application/zip": {"application/zip", "application/x-zip-compressed"},
}


def is_image_type(mime: str) -> bool:
    return mime in IMAGE_FORMATS


def sniffed_types(head: bytes) -> set[str]:
    """The MIME types puremagic recognises in the first bytes of a file (maybe none)."""
    if not head:
        return set()
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return set()
    return {match.mime_type for match in matches if match.mime_type}


def _is_utf8_text(head: bytes, *, complete: bool) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def check_document_type(*, declared_mime: str, head: bytes, complete: bool) -> None:
    """Refuse a non-image file whose content contradicts ``declared_mime``.

    ``head`` is the file's first bytes (up to SNIFF_BYTES); ``complete`` says whether it
    is the whole file. Raises AttachmentError(mime_mismatch or mime_unsupported).
    """
    declared = declared_mime.strip().lower()
    if is_image_type(declared):
        raise ValueError("images are checked by the photo pipeline")
    found = sniffed_types(head)
    images = sorted(kind for kind in found if kind.startswith("image/"))
    if images:
        raise AttachmentError(
            ClientCode.MIME_MISMATCH,
            f"The content is an image ({images[0]}); send it as a photo so its metadata "
            "is removed.",
        )
    if declared == OCTET_STREAM:
        return
    if found:
        accepted = _ALIASES.get(declared, {declared})
        if accepted & found:
            return
        raise AttachmentError(
            ClientCode.MIME_MISMATCH,
            f"Declared {declared}, content looks like {', '.join(sorted(found)[:3])}.",
        )
    if declared == TEXT_PLAIN:
        if _is_utf8_text(head, complete=complete):
            return
        raise AttachmentError(ClientCode.MIME_MISMATCH, "Declared text/plain, content is not text.")
    raise AttachmentError(
        ClientCode.MIME_UNSUPPORTED, f"The content of this {declared} file is not recognised."
    )


def guess_type(*, head: bytes, name: str | None) -> str:
    """The type to declare for a file a user picked, from its first bytes (``head``, up
    to SNIFF_BYTES) and its name. The sending checks still apply to the result.

    Content wins over the name: an image the photo pipeline reads is declared as such
    whatever its name says, so that its metadata is removed. A name's type is kept when
    the content confirms it (or, for ``text/plain``, cannot contradict it), and when it
    names an image (the pipeline then refuses a file that is not one). Anything else is
    ``application/octet-stream``.
    """
    found = {_IMAGE_ALIASES.get(kind, kind) for kind in sniffed_types(head)}
    by_name = mimetypes.guess_type(name, strict=False)[0] if name else None
    by_name = _IMAGE_ALIASES.get(by_name.lower(), by_name.lower()) if by_name else None
    readable = [kind for kind in found if kind in IMAGE_FORMATS]
    if by_name in IMAGE_FORMATS and (not found or IMAGE_FORMATS[by_name] in _formats(found)):
        return by_name
    if readable:
        return sorted(readable)[0]
    images = sorted(kind for kind in found if kind.startswith("image/"))
    if images:
        return images[0]  # an image the pipeline cannot clean: refused with a clear error
    if by_name is None:
        return OCTET_STREAM
    if by_name == TEXT_PLAIN and not found:
        return TEXT_PLAIN
    if _ALIASES.get(by_name, {by_name}) & found:
        return by_name
    return OCTET_STREAM


# Other names of the image types the pipeline reads.
_IMAGE_ALIASES = {
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
    "image/jpg": "image/jpeg",
}


def _formats(found: set[str]) -> set[str]:
    return {IMAGE_FORMATS[kind] for kind in found if kind in IMAGE_FORMATS}
