"""The ``IHE_XDM.ZIP`` of an archive (IHE ITI XDM, "Distribute Document Set on Media",
as MSSanté uses it).

Layout, in this order::

    README.TXT                    who sends, with what software, what is inside
    INDEX.HTM                     a minimal XHTML index linking README.TXT and each document
    IHE_XDM/
    IHE_XDM/SUBSET01/
    IHE_XDM/SUBSET01/METADATA.XML the XDS submission set and one entry per document
    IHE_XDM/SUBSET01/DOC0001.XML  the transcript: CDA R2 niveau 1 embedding its PDF
    IHE_XDM/SUBSET01/DOC0002.XML  each téléexpertise report's CDA (85208-7), or DOC000n.PDF
    IHE_XDM/SUBSET01/PJ000001.JPG each file sent in the room, as it was sent

Names are ISO 9660 level 1 (8.3, upper case), as XDM requires; the original file names
are in the metadata (``title``), the index and the transcript. Every document of the
subset has its entry in ``METADATA.XML`` — hash (SHA-1) and size of its bytes, uniqueId,
patient, authors, codes — read from its CDA header when it has one, from the archive
otherwise. The zip is byte-stable: fixed order, fixed timestamps (the cut time), so the
same archive gives the same bytes. docs/archive.md says where each field comes from.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from xml.sax.saxutils import escape

from lxml import etree

from archive import identifiers
from archive.content import ArchiveContent, ArchivedAuthor
from archive.errors import ArchiveError
from archive.metadata import DocumentEntry, SubmissionSet, XdsAuthor, build_metadata
from archive.policy import class_code
from documents import codes
from documents.cda import IDNAT_PS_OID, IDNAT_STRUCT_OID, NS, check_cda, parse_xml
from documents.codes import Code
from documents.ins import PatientIdentity

SUBSET: Final = "IHE_XDM/SUBSET01/"
README: Final = "README.TXT"
INDEX: Final = "INDEX.HTM"
METADATA: Final = SUBSET + "METADATA.XML"
TRANSCRIPT_NAME: Final = "DOC0001.XML"
PRODUCT: Final = "Relais"
EDITOR: Final = "Projet Relais (logiciel libre, AGPL-3.0)"

PDF_FORMAT: Final = Code("urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3", "PDF/IHE XDS-SD")
# A file that is not a CDA: its media type says all (IHE ITI TF-3 §4.2.3.2.9).
MIME_SUFFICIENT_FORMAT: Final = Code(
    "urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "Format from mimeType"
)
_EXTENSIONS: Final = {
    "image/jpeg": "JPG",
    "image/png": "PNG",
    "image/webp": "WBP",
    "image/heic": "HEI",
    "application/pdf": "PDF",
    "text/plain": "TXT",
    "application/xml": "XML",
    "text/xml": "XML",
}


def attachment_name(index: int, media_type: str) -> str:
    """The 8.3 name of the ``index``-th file (from 1): ``PJ000001.JPG``."""
    return f"PJ{index:06d}.{_EXTENSIONS.get(media_type, 'BIN')}"


def report_name(index: int, *, has_cda: bool) -> str:
    """The name of the ``index``-th report (from 1): ``DOC0002.XML`` after the transcript."""
    return f"DOC{index + 1:04d}.{'XML' if has_cda else 'PDF'}"


def attachment_names(content: ArchiveContent) -> tuple[str, ...]:
    """The subset names of ``content.files``, in the same order."""
    return tuple(attachment_name(i, f.media_type) for i, f in enumerate(content.files, start=1))


# Values of the archive ----------------------------------------------------------------


def xcn(author: ArchivedAuthor) -> str:
    """HL7 v2 XCN of a professional: ``8<RPPS>^NOM^Prénom^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS``
    (``IDNPS`` for an IdNat_PS)."""
    family = _hl7(author.family_name or author.name)
    given = _hl7(author.given_name or "")
    return f"{author.national_id}^{family}^{given}^^^^^^&{IDNAT_PS_OID}&ISO^D^^^IDNPS"


def xon(content: ArchiveContent) -> str:
    """HL7 v2 XON of the organisation:
    ``Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^<IdNat_Struct>``."""
    organisation = content.organisation
    return (
        f"{_hl7(organisation.name)}^^^^^&{IDNAT_STRUCT_OID}&ISO^IDNST^^^{organisation.structure_id}"
    )


def _hl7(text: str) -> str:
    """Text without HL7 v2 separators (``|^~\\&``), which would break a field."""
    return "".join(" " if c in "|^~\\&\r\n" else c for c in text)


def patient_id(content: ArchiveContent, patient: PatientIdentity) -> str:
    """The XDS patientId: the INS with its OID for a qualified identity
    (``<matricule>^^^&<oid>&ISO^NH``), else a room-local id under the organisation's
    archiver OID (``R<room>^^^&<oid>&ISO^PI``), since XDS requires one."""
    ins = patient.xds_patient_id()
    if ins is not None:
        return ins
    root = identifiers.organisation_oid(content.organisation.structure_id, "room-patient")
    return f"R{content.room_id}^^^&{root}&ISO^PI"


def patient_info(patient: PatientIdentity) -> tuple[str, ...]:
    """``sourcePatientInfo``: PID-5 (birth name, first birth given name), PID-7, PID-8."""
    name = f"{_hl7(patient.birth_family_name)}^{_hl7(patient.first_birth_given_name)}^^^^^L"
    return (
        f"PID-5|{name}",
        f"PID-7|{patient.birth_date.strftime('%Y%m%d')}",
        f"PID-8|{patient.sex.value}",
    )


def _organisation_author(content: ArchiveContent, authors: Sequence[ArchivedAuthor]) -> XdsAuthor:
    first = authors[0]
    return XdsAuthor(
        person=xcn(first),
        institution=xon(content),
        specialty=codes.author_specialty(first.profession),
    )


# Reading a CDA header ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CdaHeader:
    unique_id: str
    type_code: Code
    title: str
    creation_time: datetime
    service_start: datetime
    service_stop: datetime
    authors: tuple[XdsAuthor, ...]
    legal_authenticator: str | None
    ins: str | None


def _parse_time(value: str | None, fallback: datetime) -> datetime:
    if not value:
        return fallback
    for pattern in ("%Y%m%d%H%M%S%z", "%Y%m%d%H%M%S", "%Y%m%d"):
        try:
            parsed = datetime.strptime(value, pattern)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _elements(node: etree._Element | etree._ElementTree, path: str) -> list[etree._Element]:
    found = node.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def _text(node: etree._Element, path: str) -> str:
    found = _elements(node, path)
    return (found[0].text or "") if found else ""


def _attribute(node: etree._Element, path: str, name: str) -> str:
    found = _elements(node, path)
    return found[0].get(name, "") if found else ""


def _person_xcn(node: etree._Element) -> str:
    """XCN of an ``assignedAuthor``/``assignedEntity``: its IdNat_PS and names."""
    national_id = _attribute(node, "cda:id", "extension")
    family = _hl7(_text(node, "cda:assignedPerson/cda:name/cda:family"))
    given = _hl7(_text(node, "cda:assignedPerson/cda:name/cda:given"))
    return f"{national_id}^{family}^{given}^^^^^^&{IDNAT_PS_OID}&ISO^D^^^IDNPS"


def _cda_author(node: etree._Element) -> XdsAuthor:
    organisation = "cda:representedOrganization"
    institution = (
        f"{_hl7(_text(node, f'{organisation}/cda:name'))}^^^^^&{IDNAT_STRUCT_OID}&ISO^IDNST^^^"
        f"{_attribute(node, f'{organisation}/cda:id', 'extension')}"
    )
    code = _elements(node, "cda:code")
    specialty = (
        Code(code[0].get("code", ""), code[0].get("codeSystem", ""), code[0].get("displayName", ""))
        if code
        else codes.author_specialty("10")
    )
    return XdsAuthor(person=_person_xcn(node), institution=institution, specialty=specialty)


def read_cda_header(data: bytes, fallback: datetime) -> _CdaHeader:
    """Check a CDA (``documents.cda.check_cda``) and read the header fields XDS needs:
    ids, type, title, times, authors (IdNat_PS, names, J01 code, organisation), the
    legal authenticator and the INS."""
    checked = check_cda(data)
    root = parse_xml(data).getroot()
    created = _parse_time(_attribute(root, "cda:effectiveTime", "value"), fallback)
    period = "cda:documentationOf/cda:serviceEvent/cda:effectiveTime"
    seen: dict[str, XdsAuthor] = {}
    for node in _elements(root, "cda:author/cda:assignedAuthor"):
        seen.setdefault(_attribute(node, "cda:id", "extension"), _cda_author(node))
    legal = _elements(root, "cda:legalAuthenticator/cda:assignedEntity")
    unique = checked.document_id.root
    if checked.document_id.extension:
        unique += f"^{checked.document_id.extension}"
    return _CdaHeader(
        unique_id=unique,
        type_code=codes.document_type(checked.type_code),
        title=checked.title,
        creation_time=created,
        service_start=_parse_time(_attribute(root, f"{period}/cda:low", "value"), created),
        service_stop=_parse_time(_attribute(root, f"{period}/cda:high", "value"), created),
        authors=tuple(seen.values()),
        legal_authenticator=_person_xcn(legal[0]) if legal else None,
        ins=checked.ins.extension if checked.ins is not None else None,
    )


# The zip ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XdmFile:
    """A document of the subset: its 8.3 name, its bytes and its entry."""

    name: str
    data: bytes
    entry: DocumentEntry


def _entry_for_cda(
    content: ArchiveContent,
    patient: PatientIdentity,
    *,
    name: str,
    data: bytes,
    purpose: str,
) -> DocumentEntry:
    header = read_cda_header(data, content.cut_at)
    if header.ins is not None and header.ins != patient.matricule:
        raise ArchiveError(
            "patient_mismatch",
            "A document of the archive names another patient than the room's.",
            "Un document de l'archive désigne un autre patient que celui du salon.",
        )
    return DocumentEntry(
        entry_uuid=identifiers.archive_urn(content, purpose),
        uri=name,
        mime_type="text/xml",
        hash_sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        size=len(data),
        title=header.title,
        unique_id=header.unique_id,
        patient_id=patient_id(content, patient),
        source_patient_id=patient_id(content, patient),
        source_patient_info=patient_info(patient),
        creation_time=header.creation_time,
        service_start=header.service_start,
        service_stop=header.service_stop,
        authors=header.authors,
        legal_authenticator=header.legal_authenticator,
        class_code=class_code(header.type_code.code),
        type_code=header.type_code,
        format_code=PDF_FORMAT,
        confidentiality=codes.NORMAL_CONFIDENTIALITY,
        facility_type=codes.code_in("J02", content.organisation.facility_type),
        practice_setting=codes.code_in("J04", content.organisation.practice_setting),
    )


def _entry_for_file(
    content: ArchiveContent,
    patient: PatientIdentity,
    *,
    name: str,
    title: str,
    media_type: str,
    data: bytes,
    type_code: Code,
    authors: Sequence[ArchivedAuthor],
    when: datetime,
    purpose: str,
    comments: str | None = None,
) -> DocumentEntry:
    xds_authors = tuple(
        XdsAuthor(
            person=xcn(a),
            institution=xon(content),
            specialty=codes.author_specialty(a.profession),
        )
        for a in authors
    ) or (_organisation_author(content, content.authors),)
    return DocumentEntry(
        entry_uuid=identifiers.archive_urn(content, purpose),
        uri=name,
        mime_type=media_type,
        hash_sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        size=len(data),
        title=title,
        unique_id=identifiers.archive_oid(content, purpose),
        patient_id=patient_id(content, patient),
        source_patient_id=patient_id(content, patient),
        source_patient_info=patient_info(patient),
        creation_time=when,
        service_start=when,
        service_stop=when,
        authors=xds_authors,
        legal_authenticator=None,
        class_code=class_code(type_code.code),
        type_code=type_code,
        format_code=MIME_SUFFICIENT_FORMAT,
        confidentiality=codes.NORMAL_CONFIDENTIALITY,
        facility_type=codes.code_in("J02", content.organisation.facility_type),
        practice_setting=codes.code_in("J04", content.organisation.practice_setting),
        comments=comments,
    )


def xdm_files(content: ArchiveContent, *, transcript_cda: bytes) -> tuple[XdmFile, ...]:
    """Every document of ``IHE_XDM/SUBSET01`` with its metadata entry, in order."""
    patient = content.patient
    if patient is None:
        raise ArchiveError(
            "no_patient",
            "An IHE XDM archive is about one patient; this room has none.",
            "Une archive IHE XDM concerne un patient ; ce salon n'en a pas.",
        )
    transcript_entry = _entry_for_cda(
        content, patient, name=TRANSCRIPT_NAME, data=transcript_cda, purpose="transcript"
    )
    files = [XdmFile(TRANSCRIPT_NAME, transcript_cda, transcript_entry)]
    report_type = codes.document_type("85208-7")
    for index, report in enumerate(content.reports, start=1):
        name = report_name(index, has_cda=report.cda is not None)
        purpose = f"report-{index}"
        if report.cda is not None:
            entry = _entry_for_cda(content, patient, name=name, data=report.cda, purpose=purpose)
            if entry.type_code.code != "85208-7":
                raise ArchiveError(
                    "bad_report",
                    "A téléexpertise report's CDA has type 85208-7.",
                    "Le CDA d'un compte rendu de téléexpertise est de type 85208-7.",
                )
            files.append(XdmFile(name, report.cda, entry))
        else:
            entry = _entry_for_file(
                content,
                patient,
                name=name,
                title=report.title,
                media_type="application/pdf",
                data=report.pdf,
                type_code=report_type,
                authors=(),
                when=content.cut_at,
                purpose=purpose,
            )
            files.append(XdmFile(name, report.pdf, entry))
    names = attachment_names(content)
    index = 0
    for message in content.messages:
        for file in message.files:
            name = names[index]
            index += 1
            files.append(
                XdmFile(
                    name,
                    file.data,
                    _entry_for_file(
                        content,
                        patient,
                        name=name,
                        title=file.name,
                        media_type=file.media_type,
                        data=file.data,
                        type_code=transcript_entry.type_code,
                        authors=(message.author,),
                        when=message.sent_at,
                        purpose=f"file-{index}",
                        comments=f"Message {message.seq}, SHA-256 {file.sha256}",
                    ),
                )
            )
    return tuple(files)


def submission_set(
    content: ArchiveContent, *, transcript: DocumentEntry, now: datetime
) -> SubmissionSet:
    return SubmissionSet(
        entry_uuid=identifiers.archive_urn(content, "submission-set"),
        unique_id=identifiers.archive_oid(content, "submission-set"),
        source_id=identifiers.organisation_oid(content.organisation.structure_id, "archiver"),
        patient_id=transcript.patient_id,
        submission_time=now,
        title=(
            f"{PRODUCT} : {content.room_title} (messages {content.first_seq} à {content.last_seq})"
        ),
        author=_organisation_author(content, content.authors),
        content_type=transcript.type_code,
        intended_recipients=content.recipients,
    )


def readme_text(content: ArchiveContent, files: Sequence[XdmFile]) -> str:
    organisation = content.organisation
    lines = [
        "Emetteur :",
        "========",
        f"\t. Organisme : {organisation.name} (IdNat_Struct {organisation.structure_id})",
        f"\t. Messagerie : {organisation.mailbox}",
        "",
        "Application de l'emetteur :",
        "=========================",
        f"\t. Nom : {PRODUCT} (archiveur de l'organisation)",
        f"\t. Editeur : {EDITOR}",
        "",
        "Instructions :",
        "============",
        "\t. Consultez les documents recus par messagerie securisee de sante dans votre",
        "\t  logiciel de professionnel de sante. DOC0001.XML est la transcription des",
        f'\t  echanges du salon "{content.room_title}", messages {content.first_seq} a '
        f"{content.last_seq}.",
        "",
        "Arborescence :",
        "============",
        f"\t{README}",
        f"\t{INDEX}",
        "\t+ IHE_XDM",
        "\t\t+ SUBSET01",
        "\t\t\tMETADATA.XML",
        *(f"\t\t\t{f.name}\t{f.entry.title}" for f in files),
        "",
    ]
    return "\r\n".join(lines)


def index_html(content: ArchiveContent, files: Sequence[XdmFile]) -> str:
    rows = "\n".join(
        f'<li><a href="IHE_XDM/SUBSET01/{f.name}">{escape(f.entry.title)}</a> '
        f"({escape(f.entry.mime_type)}, {f.entry.size} octets)</li>"
        for f in files
    )
    organisation = content.organisation
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr" lang="fr">\n'
        f"<head><title>{escape(PRODUCT)} : {escape(content.room_title)}</title></head>\n"
        "<body>\n"
        f"<p>Emetteur : {escape(organisation.name)} ({escape(organisation.mailbox)})</p>\n"
        f'<p>Voir le fichier <a href="{README}">README.TXT</a>.</p>\n'
        f"<ul>\n{rows}\n</ul>\n"
        "</body>\n</html>\n"
    )


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    utc = moment.astimezone(UTC)
    return (max(utc.year, 1980), utc.month, utc.day, utc.hour, utc.minute, utc.second)


def build_xdm_zip(
    content: ArchiveContent,
    *,
    transcript_pdf: bytes,
    transcript_cda: bytes,
    now: datetime | None = None,
) -> bytes:
    """``IHE_XDM.ZIP`` for ``content``: the transcript's CDA (which must embed
    ``transcript_pdf``), the reports and the files, with their metadata. ``now`` is the
    submission time (default: the cut time, so the bytes are stable)."""
    checked = check_cda(transcript_cda)
    if checked.pdf != transcript_pdf:
        raise ArchiveError(
            "cda_pdf_mismatch",
            "The transcript's CDA does not embed the transcript's PDF.",
            "Le CDA de la transcription n'embarque pas le PDF de la transcription.",
        )
    files = xdm_files(content, transcript_cda=transcript_cda)
    metadata = build_metadata(
        submission_set(content, transcript=files[0].entry, now=now or content.cut_at),
        [f.entry for f in files],
    )
    stamp = _zip_time(content.cut_at)
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:

        def put(name: str, data: bytes, *, compress: bool = True) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            archive.writestr(info, data)

        put(README, readme_text(content, files).encode("utf-8"))
        put(INDEX, index_html(content, files).encode("utf-8"))
        put("IHE_XDM/", b"", compress=False)
        put(SUBSET, b"", compress=False)
        put(METADATA, metadata)
        for file in files:
            already_compressed = file.entry.mime_type in ("image/jpeg", "image/webp", "image/png")
            put(SUBSET + file.name, file.data, compress=not already_compressed)
    return output.getvalue()
