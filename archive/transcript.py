"""The transcript of an archive: a PDF a person reads (``documents.pdf``) and, when the
room has a patient and a type was chosen, the CDA R2 niveau 1 that embeds it
(``documents.cda``).

The PDF names the organisation, the room, the range of sequence numbers, the period, why
the archive was cut, the patient (traits; the matricule INS only for a qualified
identity), then every message: when (Paris time), who (name, profession, RPPS), the
text, photos inline, and a line per file (name, type, size, SHA-256, its name in the
zip). The CDA has the transcript's type (``archive.policy``), the INS in
``recordTarget`` only for a qualified identity, every author of the range as ``author``,
the organisation as custodian; ids are derived from the archive (``archive.identifiers``)
so a rebuilt archive has the same documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from archive import identifiers
from archive.content import ArchiveContent, ArchivedAuthor, ArchivedMessage
from archive.policy import TypeChoice
from archive.xdm import attachment_names, report_name
from documents import codes
from documents.cda import Author, CdaDocument, InstanceId, Organisation, Professional, build_cda
from documents.codes import Code
from documents.ins import PatientIdentity
from documents.pdf import Transcript, TranscriptEntry, transcript_pdf

PARIS: Final = ZoneInfo("Europe/Paris")
REASON_LABELS: Final = {
    "teleexpertise_closed": "téléexpertise clôturée",
    "idle": "conversation inactive",
    "daily": "archivage quotidien",
    "on_demand": "archivage demandé",
    "archiver_removed": "archiveur retiré du salon",
}
KIND_LABELS: Final = {
    "direct": "conversation à deux",
    "care_team": "équipe de soins",
    "teleexpertise": "téléexpertise",
}


@dataclass(frozen=True, slots=True)
class TranscriptDocuments:
    """The transcript as PDF, and as CDA when the archive has one."""

    pdf: bytes
    cda: bytes | None
    type_code: Code | None
    title: str


def _paris(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def profession_label(author: ArchivedAuthor) -> str:
    """The J01 label of the author's profession (``Médecin``), or the code."""
    found = codes.value_set("J01").get(f"G15_{author.profession}")
    return found.display if found is not None else f"profession {author.profession}"


def patient_rows(patient: PatientIdentity) -> list[tuple[str, str]]:
    sex = {"F": "F", "M": "M", "U": "indéterminé"}[patient.sex.value]
    rows = [
        ("Patient", f"{patient.birth_family_name} {patient.birth_given_names_text}"),
        ("Né(e) le", f"{patient.birth_date.strftime('%d/%m/%Y')}, sexe {sex}"),
    ]
    if patient.used_family_name or patient.used_given_name:
        rows.append(("Nom utilisé", f"{patient.display_given_name} {patient.display_family_name}"))
    if patient.birthplace:
        rows.append(("Lieu de naissance (INSEE)", patient.birthplace))
    if patient.is_qualified and patient.matricule and patient.oid:
        rows.append(("INS", f"{patient.matricule} (OID {patient.oid.value}), identité qualifiée"))
    else:
        rows.append(
            ("INS", f"identité {patient.status.value}, non qualifiée : traits seuls, sans INS")
        )
    return rows


def title_of(content: ArchiveContent) -> str:
    return f"Échanges Relais : {content.room_title}"[:200]


def _header(content: ArchiveContent, choice: TypeChoice) -> list[tuple[str, str]]:
    start, end = content.period
    rows = [
        ("Organisation", f"{content.organisation.name} ({content.organisation.structure_id})"),
        ("Salon", f"{content.room_title} — {KIND_LABELS[content.room_kind]}, n° {content.room_id}"),
        ("Messages", f"numéros {content.first_seq} à {content.last_seq} ({len(content.messages)})"),
        ("Période", f"du {_paris(start)} au {_paris(end)} (heure de Paris)"),
        ("Archivé le", f"{_paris(content.cut_at)} : {REASON_LABELS[content.reason]}"),
    ]
    if choice.code is not None:
        rows.append(("Type de document", f"{choice.code.code} {choice.code.display}"))
    if content.patient is not None:
        rows.extend(patient_rows(content.patient))
    for index, report in enumerate(content.reports, start=1):
        name = report_name(index, has_cda=report.cda is not None)
        rows.append(("Compte rendu joint", f"{report.title} ({name})"))
    return rows


def _entries(content: ArchiveContent) -> list[TranscriptEntry]:
    names = iter(attachment_names(content))
    entries: list[TranscriptEntry] = []
    for message in content.messages:
        entries.extend(_message_entries(message, names))
    return entries


def _message_entries(message: ArchivedMessage, names: Iterator[str]) -> list[TranscriptEntry]:
    author = message.author
    detail = f"{profession_label(author)}, {author.id_label} — n° {message.seq}"
    photos = [f for f in message.files if f.is_image]
    notes = tuple(
        f"Pièce jointe : {f.name}, {f.media_type}, {f.size} octets, SHA-256 {f.sha256} "
        f"(archive : {next(names)})"
        for f in message.files
    )
    first = TranscriptEntry(
        time=message.sent_at.astimezone(PARIS),
        author=author.name,
        author_detail=detail,
        text=message.text,
        photo=photos[0].data if photos else None,
        notes=notes,
    )
    more = [
        TranscriptEntry(
            time=message.sent_at.astimezone(PARIS),
            author=author.name,
            author_detail=detail,
            photo=photo.data,
        )
        for photo in photos[1:]
    ]
    return [first, *more]


def build_transcript_pdf(content: ArchiveContent, choice: TypeChoice) -> bytes:
    """The transcript PDF (reproducible bytes)."""
    return transcript_pdf(
        Transcript(
            title=title_of(content),
            header=_header(content, choice),
            entries=_entries(content),
            footer=(
                f"Relais — {content.organisation.name} — salon {content.room_id}, "
                f"messages {content.first_seq}-{content.last_seq}"
            ),
            author=content.organisation.name,
            subject=title_of(content),
        )
    )


def _professional(author: ArchivedAuthor, organisation: Organisation) -> Professional:
    return Professional(
        national_id=author.national_id,
        family_name=author.family_name or author.name,
        given_name=author.given_name or "",
        profession_code=author.profession,
        organisation=organisation,
    )


def build_transcript_cda(content: ArchiveContent, type_code: Code, pdf: bytes) -> bytes:
    """The CDA R2 niveau 1 of the transcript. Requires a patient and a message."""
    assert content.patient is not None
    assert content.messages
    organisation = Organisation(content.organisation.structure_id, content.organisation.name)
    last_time: dict[str, datetime] = {}
    for message in content.messages:
        last_time[message.author.national_id] = message.sent_at
    authors = [
        Author(_professional(a, organisation), last_time[a.national_id]) for a in content.authors
    ]
    start, end = content.period
    # CI-SIS asks for a legal authenticator; the transcript is made by the organisation's
    # archiver, so the professional named is the author of the range's last message.
    legal = _professional(content.messages[-1].author, organisation)
    document = CdaDocument(
        document_id=InstanceId(identifiers.archive_oid(content, "transcript-document")),
        set_id=InstanceId(identifiers.archive_oid(content, "transcript-set")),
        version=1,
        type_code=type_code,
        title=title_of(content),
        effective_time=content.cut_at,
        patient=content.patient,
        authors=authors,
        custodian=organisation,
        legal_authenticator=legal,
        legal_authentication_time=content.cut_at,
        service_start=start,
        service_end=end,
        practice_setting=codes.code_in("J04", content.organisation.practice_setting),
        facility_type=codes.code_in("J02", content.organisation.facility_type),
        pdf=pdf,
    )
    return build_cda(document)


def build_transcript(content: ArchiveContent, choice: TypeChoice) -> TranscriptDocuments:
    pdf = build_transcript_pdf(content, choice)
    cda = build_transcript_cda(content, choice.code, pdf) if choice.code is not None else None
    return TranscriptDocuments(pdf=pdf, cda=cda, type_code=choice.code, title=title_of(content))
