"""The MSSanté mail of an archive (standard library ``email``).

``build_archive_mail`` builds the transcript (PDF, and its CDA when the room has a
patient and a type), the ``IHE_XDM.zip`` (when there is a CDA), and the mail:

* ``From``: the organisation's MSSanté mailbox; ``To``: the recipients;
* ``Subject``: ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`` for an
  archive with structured documents (the MSSanté convention), a plain subject otherwise;
* ``Message-ID``: derived only from the structure id, the room and the range
  (``archive.identifiers.message_id``), the same on every rebuild;
* ``Date``: the cut time unless ``now`` is given, so the same archive gives the same bytes;
* ``Disposition-Notification-To``: the organisation's mailbox, asking for an MDN;
* ``X-MSS-NIL`` on every mail; ``X-MSS-CODECDA`` (the type codes of the CDA documents,
  comma-separated) and ``X-MSS-INS`` (``O`` when the CDA carries a qualified INS, ``N``
  otherwise) only when the zip carries CDA documents; ``X-MSS-MES: FIN`` when a recipient
  is a patient's mailbox (``@patient.mssante.fr``);
* a text part, ``IHE_XDM.zip`` and the transcript PDF (the ANS examples' attachments);
  without a CDA, the PDF and each file as sent.

docs/archive.md says why each header has its value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

from archive import identifiers
from archive.content import ArchiveContent
from archive.errors import ArchiveError
from archive.policy import DEFAULT_POLICY, TypeCodePolicy
from archive.transcript import REASON_LABELS, TranscriptDocuments, build_transcript
from archive.xdm import build_xdm_zip

XDM_ATTACHMENT: Final = "IHE_XDM.zip"
# The product's number in the ANS "convergence" referencing (X-MSS-NIL). Relais has none
# yet: an operator that has one passes it to build_archive_mail.
DEFAULT_NIL: Final = "NON-REFERENCE"
PATIENT_DOMAIN: Final = "@patient.mssante.fr"
SUBJECT_PREFIX: Final = "XDM/1.0/DDM+"


@dataclass(frozen=True, slots=True)
class ArchiveMail:
    """The mail of one archive. ``message_id`` is the ``Message-ID`` header's value
    (with its angle brackets); ``attachment_name`` the name of the main attachment
    (``IHE_XDM.zip``, or the PDF's when there is no CDA)."""

    message: EmailMessage
    message_id: str
    attachment_name: str
    transcript: TranscriptDocuments
    xdm_zip: bytes | None

    def as_bytes(self) -> bytes:
        """The mail as sent over SMTP (CRLF line ends)."""
        return self.message.as_bytes(policy=policy.SMTP)


def pdf_name(content: ArchiveContent) -> str:
    return f"transcription-salon-{content.room_id}-{content.first_seq}-{content.last_seq}.pdf"


def subject_of(content: ArchiveContent, *, structured: bool) -> str:
    label = f"Échanges Relais {content.room_title}"
    patient = content.patient
    if structured and patient is not None:
        born = patient.birth_date.strftime("%d/%m/%Y")
        return (
            f"{SUBJECT_PREFIX}{label} {patient.birth_family_name.upper()} "
            f"{patient.first_birth_given_name} {born}"
        )
    return f"{label} (messages {content.first_seq} à {content.last_seq})"


def _body(content: ArchiveContent, documents: TranscriptDocuments, attachments: list[str]) -> str:
    lines = [
        "Bonjour,",
        "",
        f"Voici l'archive des échanges du salon « {content.room_title} » "
        f"({content.organisation.name}), messages {content.first_seq} à {content.last_seq} "
        f"({len(content.messages)} messages), archivée pour : "
        f"{REASON_LABELS[content.reason]}.",
        "",
        "Pièces jointes :",
        *(f"- {name}" for name in attachments),
        "",
    ]
    if documents.cda is not None:
        lines += [
            f"{XDM_ATTACHMENT} contient la transcription en document CDA R2 niveau 1 "
            f"(type {documents.type_code.code if documents.type_code else ''}), les comptes "
            "rendus et les fichiers échangés, à intégrer dans le dossier du patient.",
            "",
        ]
    lines += ["Message envoyé automatiquement par l'archiveur Relais de l'organisation.", ""]
    return "\n".join(lines)


def build_archive_mail(
    content: ArchiveContent,
    *,
    now: datetime | None = None,
    type_policy: TypeCodePolicy = DEFAULT_POLICY,
    nil: str = DEFAULT_NIL,
) -> ArchiveMail:
    """The mail of ``content``. ``now`` sets the ``Date`` header and the XDS submission
    time; left out, both are the cut time and the mail's bytes are the same on every
    build. ``nil`` is the ``X-MSS-NIL`` value."""
    if not nil or not nil.isascii() or not nil.isprintable() or len(nil) > 64:
        raise ArchiveError(
            "bad_nil",
            "X-MSS-NIL: printable ASCII, 1 to 64 characters.",
            "X-MSS-NIL : ASCII imprimable, 1 à 64 caractères.",
        )
    if now is not None and now.tzinfo is None:
        raise ArchiveError(
            "naive_time", "now: an aware datetime.", "now : un datetime avec fuseau."
        )
    moment = now or content.cut_at
    choice = type_policy.choose(content)
    documents = build_transcript(content, choice)
    xdm = (
        build_xdm_zip(content, transcript_pdf=documents.pdf, transcript_cda=documents.cda, now=now)
        if documents.cda is not None
        else None
    )
    message_id = identifiers.message_id(content)

    message = EmailMessage(policy=policy.SMTP)
    organisation = content.organisation
    message["From"] = Address(display_name=organisation.name, addr_spec=organisation.mailbox)
    message["To"] = ", ".join(content.recipients)
    message["Subject"] = subject_of(content, structured=xdm is not None)
    message["Date"] = format_datetime(moment)
    message["Message-ID"] = message_id
    message["Disposition-Notification-To"] = organisation.mailbox
    message["X-MSS-NIL"] = nil
    if xdm is not None:
        cda_codes = [documents.type_code.code] if documents.type_code else []
        cda_codes += ["85208-7" for report in content.reports if report.cda is not None]
        message["X-MSS-CODECDA"] = ",".join(cda_codes)
        qualified = content.patient is not None and content.patient.is_qualified
        message["X-MSS-INS"] = "O" if qualified else "N"
    if any(r.lower().endswith(PATIENT_DOMAIN) for r in content.recipients):
        message["X-MSS-MES"] = "FIN"

    transcript_name = pdf_name(content)
    if xdm is not None:
        names = [XDM_ATTACHMENT, transcript_name]
    else:
        names = [transcript_name, *(f.name for f in content.files)]
    message.set_content(_body(content, documents, names), subtype="plain", charset="utf-8")
    if xdm is not None:
        message.add_attachment(xdm, maintype="application", subtype="zip", filename=XDM_ATTACHMENT)
    message.add_attachment(
        documents.pdf, maintype="application", subtype="pdf", filename=transcript_name
    )
    if xdm is None:
        for file in content.files:
            maintype, subtype = file.media_type.split("/", 1)
            message.add_attachment(
                file.data, maintype=maintype, subtype=subtype, filename=file.name
            )
    # A boundary derived from the archive, so the bytes do not change between builds.
    message.set_boundary("relais-" + hashlib.sha256(message_id.encode()).hexdigest()[:40])
    return ArchiveMail(
        message=message,
        message_id=message_id,
        attachment_name=XDM_ATTACHMENT if xdm is not None else transcript_name,
        transcript=documents,
        xdm_zip=xdm,
    )
