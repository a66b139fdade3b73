"""Files of a téléexpertise: the photos and files of a request or an answer, and the
report's documents, encrypted and uploaded for the message that will carry them
(protocol §11: the same message id and room), withdrawn if that message is not sent.
And who keeps the documents (their CDA custodian)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from client.attachments.descriptor import AttachmentDescriptor, compact
from client.attachments.mime import SNIFF_BYTES, guess_type
from client.attachments.sending import send_attachment
from client.attachments.transfer import AttachmentApi
from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.report import CDA_MIME, Documents
from documents.cda import Organisation

if TYPE_CHECKING:
    from client.session import RelaisClient

FileSource = Path | tuple[bytes, str]  # a path, or (content, name)


def _head(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(SNIFF_BYTES)


async def _upload_one(
    api: AttachmentApi, room_id: int, message_id: str, source: FileSource
) -> AttachmentDescriptor:
    if isinstance(source, Path):
        head = await asyncio.to_thread(_head, source)
        content: Path | bytes = source
        name = source.name
    else:
        content, name = source
        head = content[:SNIFF_BYTES]
    return await send_attachment(
        api,
        room=room_id,
        message_id=message_id,
        source=content,
        mime=guess_type(head=head, name=name),
        name=name,
    )


async def upload(
    session: RelaisClient,
    room_id: int,
    message_id: str,
    files: Sequence[FileSource | Documents],
) -> list[AttachmentDescriptor]:
    """Encrypt and upload ``files`` for the message ``message_id`` of ``room_id``;
    photos go through the photo pipeline (upright, no metadata, GPS first). A
    ``Documents`` gives two files: its PDF and its CDA. If one upload fails, the ones
    done are withdrawn. The descriptors are compact (protocol §12.2)."""
    uploaded: list[AttachmentDescriptor] = []
    if not files:
        return uploaded  # no HTTP client to open (its TLS context alone costs ~50 ms)
    async with session.attachment_api() as api:
        try:
            for source in files:
                if not isinstance(source, Documents):
                    uploaded.append(await _upload_one(api, room_id, message_id, source))
                    continue
                for content, mime, name in (
                    (source.pdf, "application/pdf", source.pdf_name),
                    (source.cda, CDA_MIME, source.cda_name),
                ):
                    uploaded.append(
                        await send_attachment(
                            api,
                            room=room_id,
                            message_id=message_id,
                            source=content,
                            mime=mime,
                            name=name,
                        )
                    )
        except BaseException:
            await _abort(api, uploaded)
            raise
    return [compact(descriptor) for descriptor in uploaded]  # as the event carries them


async def _abort(api: AttachmentApi, descriptors: Sequence[AttachmentDescriptor]) -> None:
    for descriptor in descriptors:
        await api.abort_quietly(descriptor.blob)  # a thumbnail travels inside it


async def withdraw(session: RelaisClient, descriptors: Sequence[AttachmentDescriptor]) -> None:
    """Withdraw uploaded blobs whose message was not sent (the server keeps a blob once
    its message is stored, so this never removes a file a room holds)."""
    if descriptors:
        async with session.attachment_api() as api:
            await _abort(api, descriptors)


async def custodian_of(
    session: RelaisClient, room_id: int, *, configured: Organisation | None
) -> Organisation:
    """The structure that keeps a téléexpertise's documents: the organisation whose
    archiver the room's verified state names (proven in the key-transparency log),
    else ``configured``; ``no_custodian`` otherwise."""
    room = session.rooms.get(room_id)
    if room is not None and room.archiver is not None:
        named = await session.directory.archiver_of(room.archiver)
        return Organisation(national_id=named.structure_id, name=named.name)
    if configured is not None:
        return configured
    raise TeleexpertiseError(
        "no_custodian",
        "No structure keeps this document: the room has no archiver and no structure was "
        "configured (--structure ID:NAME).",
        "Aucune structure ne conserve ce document : le salon n'a pas d'archiveur et aucune "
        "structure n'est configurée (--structure ID:NOM).",
    )
