"""The real ``Packager``: turns a cut's decrypted messages into an ``ArchiveContent``
(``archive.content``) and its mail (``archive.mail``). Attachments (photos, files, the
téléexpertise report's PDF and CDA) are downloaded and decrypted in memory through the
SDK's attachment path: nothing decrypted is written to disk. Authors' names and
professions come from the directory, the patient from the room's encrypted profile
(docs/protocol.md §12.6)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from archive.content import (
    ArchiveContent,
    ArchivedAuthor,
    ArchivedFile,
    ArchivedMessage,
    ArchivedReport,
    ArchiveOrganisation,
)
from archive.cuts import Cut, CutReason
from archive.errors import ArchiveError
from archive.mail import build_archive_mail
from archive.outbox import NewArchive
from archive.ports import PackagingError
from archive.recipients import resolve
from archive.records import ReceivedRecord
from client.api import ApiError
from client.archiver import ArchiverClient
from client.attachments.descriptor import AttachmentDescriptor, decode_key
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.padding import Unpadder
from client.attachments.stream import StreamDecryptor
from client.directory import KeyTransparencyError
from client.files import attachment_in
from client.teleexpertise.contents import (
    Accept,
    Cancel,
    ClarificationAnswer,
    ClarificationRequest,
    Close,
    Decline,
    Report,
    Request,
    is_event,
    parse_event,
)
from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.profile import RoomProfileContent
from documents.ins import PatientIdentity

REASON_NAMES = {
    CutReason.TELEEXPERTISE_FINAL: "teleexpertise_closed",
    CutReason.IDLE: "idle",
    CutReason.DAILY: "daily",
    CutReason.ON_DEMAND: "on_demand",
    CutReason.ARCHIVER_REMOVED: "archiver_removed",
}
UNKNOWN_PROFESSION = "00"


async def fetch_bytes(client: ArchiverClient, descriptor: AttachmentDescriptor) -> bytes:
    """Download, verify and decrypt an attachment into memory (the checks of
    ``client.attachments.receiving``: size, SHA-256, every chunk, the padding)."""
    decryptor = StreamDecryptor(file_key=decode_key(descriptor.key))
    unpadder = Unpadder(descriptor.size)
    chunks: list[bytes] = []

    def write(plain: bytes) -> None:
        chunks.append(unpadder.update(plain))

    async with client.attachment_api() as api:
        result = await api.download_blob(
            descriptor.blob, size=descriptor.ciphertext_size, sink=decryptor, write=write
        )
    if result.size != descriptor.ciphertext_size or not hmac.compare_digest(
        result.sha256, descriptor.sha256
    ):
        raise AttachmentError(ClientCode.HASH_MISMATCH)
    write(decryptor.finalize())
    unpadder.finish()
    return b"".join(chunks)


@dataclass
class Packaging:
    client: ArchiverClient
    sender: str
    recipients: tuple[str, ...]
    authors: dict[str, ArchivedAuthor] = field(default_factory=dict)
    organisation: ArchiveOrganisation | None = None

    async def package(self, cut: Cut, records: Sequence[ReceivedRecord]) -> NewArchive:
        try:
            recipients = await resolve(self.client, cut.room_id, self.recipients)
            content = await self._content(cut, records, recipients.addresses)
            mail = build_archive_mail(content)
        except ArchiveError as error:
            raise PackagingError(error.code, error.message, error.message_fr) from None
        except (ApiError, OSError) as error:
            raise PackagingError(
                "relais_unreachable",
                f"The Relais server could not be read ({type(error).__name__}).",
                "Le serveur Relais n'a pas pu être lu.",
            ) from None
        return NewArchive(
            cut=cut,
            message_id=mail.message_id,
            attachment_name=mail.attachment_name,
            recipients=content.recipients,
            mail=wire_bytes(mail.message),
            members=recipients.members,
            skipped=tuple((s.national_id, s.reason) for s in recipients.skipped),
        )

    async def _content(
        self, cut: Cut, records: Sequence[ReceivedRecord], recipients: tuple[str, ...]
    ) -> ArchiveContent:
        room = self.client.rooms.get(cut.room_id)
        kind = room.state.kind if room is not None else "care_team"
        profile = self._profile(cut.room_id)
        patient = profile.patient if profile is not None else None
        messages: list[ArchivedMessage] = []
        reports: list[ArchivedReport] = []
        for record in records:
            text, files, report, request_patient = await self._read(record)
            patient = patient or request_patient
            if report is not None:
                reports.append(report)
            messages.append(
                ArchivedMessage(
                    seq=record.seq,
                    sent_at=record.sent_at,
                    author=await self._author(record.national_id),
                    text=text,
                    files=tuple(files),
                )
            )
        return ArchiveContent(
            organisation=await self._organisation(cut.room_id),
            room_id=cut.room_id,
            room_kind=kind,
            room_title=profile.title if profile is not None else f"Salon {cut.room_id}",
            first_seq=cut.first_seq,
            last_seq=cut.last_seq,
            reason=REASON_NAMES[cut.reason],
            cut_at=cut.cut_at,
            messages=tuple(messages),
            patient=patient,
            recipients=recipients,
            reports=tuple(reports),
        )

    def _profile(self, room_id: int) -> RoomProfileContent | None:
        found = self.client.room_profile(room_id)
        if found is None:
            return None
        try:
            return RoomProfileContent.from_dict(found.content)
        except TeleexpertiseError:
            return None

    async def _organisation(self, room_id: int) -> ArchiveOrganisation:
        if self.organisation is None:
            structure = self.client.national_id.removeprefix("org:")
            name = structure
            room = self.client.rooms.get(room_id)
            if room is not None and room.archiver is not None:
                with contextlib.suppress(KeyTransparencyError):
                    name = (await self.client.directory.archiver_of(room.archiver)).name
            self.organisation = ArchiveOrganisation(
                name=name, structure_id=structure, mailbox=self.sender
            )
        return self.organisation

    async def _author(self, national_id: str) -> ArchivedAuthor:
        if national_id not in self.authors:
            try:
                entry: dict[str, Any] = await self.client.api.call(
                    "GET", f"directory/practitioners/{national_id}"
                )
            except ApiError:
                entry = {}
            family = str(entry.get("last_name") or "").strip() or None
            given = str(entry.get("first_name") or "").strip() or None
            profession = str(entry.get("profession_code") or "")
            self.authors[national_id] = ArchivedAuthor(
                national_id=national_id,
                name=" ".join(p for p in (given, family) if p) or national_id,
                profession=profession if len(profession) == 2 else UNKNOWN_PROFESSION,
                family_name=family,
                given_name=given,
            )
        return self.authors[national_id]

    async def _read(
        self, record: ReceivedRecord
    ) -> tuple[str, list[ArchivedFile], ArchivedReport | None, PatientIdentity | None]:
        content = record.content
        if is_event(content):
            return await self._event(content)
        text = str(content.get("text", ""))
        try:
            descriptor = attachment_in(content)
        except AttachmentError:
            return text + "\n[pièce jointe illisible / unreadable attachment]", [], None, None
        if descriptor is None:
            return text, [], None, None
        return text, [await self._file(descriptor)], None, None

    async def _file(self, descriptor: AttachmentDescriptor) -> ArchivedFile:
        try:
            data = await fetch_bytes(self.client, descriptor)
        except httpx.HTTPError as error:
            raise PackagingError(
                "relais_unreachable",
                f"An attachment could not be downloaded ({type(error).__name__}).",
                "Une pièce jointe n'a pas pu être téléchargée.",
            ) from None
        name = descriptor.name or f"fichier-{hashlib.sha256(data).hexdigest()[:8]}"
        return ArchivedFile(
            name=name.replace("/", "_").replace("\\", "_"), media_type=descriptor.mime, data=data
        )

    async def _event(
        self, content: dict[str, Any]
    ) -> tuple[str, list[ArchivedFile], ArchivedReport | None, PatientIdentity | None]:
        try:
            event = parse_event(content)
        except TeleexpertiseError:
            return (
                "[événement de téléexpertise mal formé / malformed téléexpertise event]",
                [],
                None,
                None,
            )
        if isinstance(event, Request):
            files = [await self._file(d) for d in (*event.attachments, *event.documents)]
            text = (
                f"Demande de téléexpertise : {event.reason}\n"
                f"Question : {event.question}\n"
                + (f"Données cliniques : {event.clinical_data}\n" if event.clinical_data else "")
                + f"Urgence : {event.urgency.value} ; réponse souhaitée avant "
                f"{event.deadline.isoformat()}"
            )
            return text, files, None, event.patient
        if isinstance(event, Report):
            pdf = cda = b""
            for descriptor in event.documents:
                data = await fetch_bytes(self.client, descriptor)
                if descriptor.mime == "application/pdf":
                    pdf = data
                else:
                    cda = data
            report = ArchivedReport(pdf=pdf, cda=cda or None, title="Compte rendu de téléexpertise")
            return f"Compte rendu : {event.answer}", [], report, None
        if isinstance(event, ClarificationAnswer):
            files = [await self._file(d) for d in event.attachments]
            return f"Réponse à la demande de précision : {event.answer}", files, None, None
        texts = {
            Accept: lambda e: f"Téléexpertise acceptée. {e.note}".strip(),
            Decline: lambda e: f"Téléexpertise refusée : {e.reason}",
            ClarificationRequest: lambda e: f"Demande de précision : {e.question}",
            Close: lambda e: f"Téléexpertise clôturée. {e.note}".strip(),
            Cancel: lambda e: f"Téléexpertise annulée. {e.reason}".strip(),
        }
        return texts[type(event)](event), [], None, None


def wire_bytes(message: EmailMessage) -> bytes:
    """The mail as it goes on the wire (CRLF line ends), exactly what is stored."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
