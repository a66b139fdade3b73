"""Photos and files in end-to-end encrypted rooms: the SDK side of docs/attachments.md.

``FileMethods`` gives ``RelaisClient`` ``send_file``, ``send_photo``, ``fetch_thumbnail``,
``download_attachment`` and ``save_attachment``.

Sending follows "How a message carries an attachment": choose the message id, clean
(photos), encrypt and upload the file naming that id and the room, then send the
end-to-end encrypted message that carries the descriptor (and so the file key) with the
**same** id into the **same** room. The server ties the blob to that message; it never
sees the descriptor, nor a photo's thumbnail, which travels inside it. If the message
cannot be sent, the blob is withdrawn (the server refuses to withdraw a blob whose
message it stored, so a message that did get through keeps its file).

Receiving: a decrypted message of type ``attachment`` carries a descriptor, parsed and
validated into ``Message.attachment``. Downloads check size, SHA-256 and every chunk
before a file appears; ``save_attachment`` never uses the sender's file name as a path.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, cast

from client.attachments.descriptor import AttachmentDescriptor, descriptor_from_dict
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.images import OUTPUT_MIME, ImageOptions
from client.attachments.message import check_caption
from client.attachments.mime import OCTET_STREAM, SNIFF_BYTES, guess_type, is_image_type
from client.attachments.receiving import open_thumbnail, receive_attachment
from client.attachments.sending import send_attachment
from client.attachments.transfer import AttachmentApi, Progress
from e2ee.encoding import JsonObject

if TYPE_CHECKING:
    from client.session import RelaisClient

ATTACHMENT_TYPE = "attachment"
MAX_NAME_CHARACTERS = 255  # the descriptor's limit
MAX_SAVED_NAME_BYTES = 200  # room for " (12)" and the temporary file's affixes under 255
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


@dataclass(frozen=True, slots=True)
class SentFile:
    """A file that reached the room: the message's sequence number and id, and the
    descriptor it carries."""

    seq: int
    message_id: str
    descriptor: AttachmentDescriptor


def attachment_content(descriptor: AttachmentDescriptor, text: str | None) -> JsonObject:
    """The message content carrying ``descriptor`` (with an optional caption)."""
    content: JsonObject = {"type": ATTACHMENT_TYPE, "attachment": descriptor.to_dict()}
    if text:
        content["text"] = text
    return content


def attachment_in(content: JsonObject) -> AttachmentDescriptor | None:
    """The descriptor a decrypted message carries, or None for other messages.
    Raises AttachmentError(bad_descriptor) when an attachment message is malformed."""
    if content.get("type") != ATTACHMENT_TYPE:
        return None
    value = content.get("attachment")
    if not isinstance(value, dict):
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "The message has no attachment.")
    return descriptor_from_dict(value)


def new_message_id() -> str:
    return str(uuid.uuid4())


# Sending ------------------------------------------------------------------------------


def _read_head(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(SNIFF_BYTES)


def _shown_name(name: str | None, mime: str) -> str | None:
    """The name to put in the descriptor: a bare file name of at most 255 characters
    whose extension matches what is sent (a cleaned HEIC photo is a JPEG)."""
    if not name:
        return None
    bare = PurePath(name.replace("\\", "/")).name.strip()
    if not bare:
        return None
    if mime in OUTPUT_MIME.values():
        extension = mimetypes.guess_extension(mime) or ""
        bare = PurePath(bare).stem + extension if PurePath(bare).stem else bare
    if len(bare) > MAX_NAME_CHARACTERS:
        suffix = PurePath(bare).suffix[:16]
        bare = bare[: MAX_NAME_CHARACTERS - len(suffix)] + suffix
    return bare


# Receiving ----------------------------------------------------------------------------


def safe_file_name(descriptor: AttachmentDescriptor) -> str:
    """A file name to save ``descriptor`` under, made from the sender's ``name`` but
    never a path: the last component only, no control, invisible or reserved characters, no
    leading dot (hidden files, ``..``), no Windows device name, bounded in length, and
    an extension that matches the type (a "PDF" named ``x.exe`` is saved ``x.exe.pdf``)."""
    raw = unicodedata.normalize("NFC", descriptor.name or "")
    bare = re.split(r"[\\/]", raw)[-1]
    bare = "".join("_" if _invisible(c) else c for c in _UNSAFE_CHARACTERS.sub("_", bare))
    bare = bare.strip().lstrip(".").rstrip(". ")
    if _WINDOWS_RESERVED.match(bare):
        bare = "_" + bare
    base = bare or ("photo" if descriptor.mime.startswith("image/") else "attachment")
    root, suffix = os.path.splitext(base)
    extensions = mimetypes.guess_all_extensions(descriptor.mime, strict=False)
    if descriptor.mime != OCTET_STREAM and extensions and suffix.lower() not in extensions:
        root = base
        suffix = mimetypes.guess_extension(descriptor.mime, strict=False) or extensions[0]
    if len(suffix) > 16:  # not an extension anyone relies on
        root, suffix = root + suffix, ""
    while len((root + suffix).encode("utf-8")) > MAX_SAVED_NAME_BYTES:
        root = root[:-1]
    return root + suffix


def _invisible(character: str) -> bool:
    """Controls, and format characters such as right-to-left overrides that make
    ``fdp.exe`` display as ``exe.pdf``."""
    return unicodedata.category(character) in {"Cc", "Cf", "Zl", "Zp"}


def reserve_path(directory: Path, name: str) -> Path:
    """Create an empty file named ``name`` (or ``name (2)``, ...) in ``directory``,
    never replacing anything, and return it."""
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    for number in range(1, 1000):
        candidate = directory / (name if number == 1 else f"{stem} ({number}){suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"too many files named {name}")


class FileMethods:
    """The photo and file methods of ``RelaisClient``, mixed in: they need its
    connection, rooms and token, so a method that uses them names ``self`` as the
    client it is part of."""

    def attachment_api(self) -> AttachmentApi:
        """The attachment endpoints with this device's token (an async context manager)."""
        client = cast("RelaisClient", self)
        if not client.api.token:
            raise RuntimeError("register or log in first")
        return AttachmentApi(base_url=client.server, token=client.api.token)

    async def send_file(
        self,
        room_id: int,
        source: Path | bytes,
        *,
        name: str | None = None,
        mime: str | None = None,
        text: str | None = None,
        progress: Progress | None = None,
        image_options: ImageOptions | None = None,
        photo_only: bool = False,
    ) -> SentFile:
        """Send a photo or any file into ``room_id``; return once the message is stored.

        Preconditions: the client is connected and this device may send to the room;
        ``text`` is at most 4 KiB (caption_too_long); both are checked before anything is
        uploaded. ``mime`` defaults to the type found in the content (see ``guess_type``);
        images go through the photo pipeline (upright, no metadata, resized, thumbnail),
        other files are sent as they are. ``name`` (the name shown to the recipients)
        defaults to the file's name. ``progress`` gets (bytes uploaded, bytes in all).
        ``photo_only`` refuses anything but an image (mime_mismatch).
        Raises AttachmentError (client-side refusals), AttachmentServerError (size limit,
        quota...), SecurityError or ApiError (the message was refused); in every case the
        uploaded blob is withdrawn.
        """
        client = cast("RelaisClient", self)
        if isinstance(source, Path):
            head = await asyncio.to_thread(_read_head, source)
            name = name if name is not None else source.name
        else:
            head = source[:SNIFF_BYTES]
        declared = (mime or guess_type(head=head, name=name)).strip().lower()
        if photo_only and not is_image_type(declared):
            raise AttachmentError(
                ClientCode.MIME_MISMATCH,
                f"It is not a photo ({declared}); send it as a file.",
                f"Ce n'est pas une photo ({declared}) ; envoyez-la comme fichier.",
            )
        output_mime = OUTPUT_MIME[(image_options or ImageOptions()).output_format]
        shown = _shown_name(name, output_mime if is_image_type(declared) else declared)
        check_caption(text)
        await client.room_for_sending(room_id)
        message_id = new_message_id()
        async with self.attachment_api() as api:
            descriptor = await send_attachment(
                api,
                room=room_id,
                message_id=message_id,
                source=source,
                mime=declared,
                name=shown,
                image_options=image_options,
                progress=progress,
            )
            try:
                seq = await client.send(
                    room_id, attachment_content(descriptor, text), message_id=message_id
                )
            except BaseException:
                await api.abort_quietly(descriptor.blob)
                raise
        return SentFile(seq=seq, message_id=message_id, descriptor=descriptor)

    async def send_photo(
        self,
        room_id: int,
        source: Path | bytes,
        *,
        name: str | None = None,
        text: str | None = None,
        progress: Progress | None = None,
        image_options: ImageOptions | None = None,
    ) -> SentFile:
        """``send_file`` for images only: anything else is refused (mime_mismatch)."""
        return await self.send_file(
            room_id,
            source,
            name=name,
            text=text,
            progress=progress,
            image_options=image_options,
            photo_only=True,
        )

    async def download_attachment(
        self,
        descriptor: AttachmentDescriptor,
        destination: Path,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Download, verify and decrypt into ``destination`` (replaced if it exists, and
        only once everything checked). ``progress`` gets (bytes received, bytes in all).
        Raises AttachmentServerError(attachment_not_found) for anyone the server refuses,
        AttachmentError (size_mismatch, hash_mismatch, decrypt_failed) for a bad blob."""
        async with self.attachment_api() as api:
            return await receive_attachment(api, descriptor, destination, progress=progress)

    async def save_attachment(
        self,
        descriptor: AttachmentDescriptor,
        directory: Path,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Download into ``directory`` (created, owner-only, if missing) under a safe name
        that replaces no existing file; the path written. Nothing is left on failure."""
        await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        destination = await asyncio.to_thread(reserve_path, directory, safe_file_name(descriptor))
        try:
            return await self.download_attachment(descriptor, destination, progress=progress)
        except BaseException:
            destination.unlink(missing_ok=True)
            raise

    async def fetch_thumbnail(self, descriptor: AttachmentDescriptor) -> bytes:
        """The thumbnail of a photo (a small JPEG or WebP), checked when the message was
        received. It travels in the message itself: no request to the server."""
        return open_thumbnail(descriptor)
