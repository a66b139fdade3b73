"""The compte rendu of a téléexpertise, built on the requis' device: a PDF a person
reads and a CDA R2 niveau 1 document that embeds it (docs/teleexpertise.md, "Report").

The PDF (``documents.pdf``) names the patient (traits; the matricule INS only for a
qualified identity), both professionals with their RPPS, the reason, the question and
clinical data, the clarifications, the answer, the date and time of the request and of
the answer, the consent as attested, and lists the files the request carried (name,
type, size, SHA-256). The CDA (``documents.cda``) is type 85208-7 "CR de télémédecine"
with the CI-SIS templateIds, the INS in ``recordTarget``, the requis as author and legal
authenticator. ``request_documents`` makes the same pair for the request, type
75496-0 "Demande d'acte de télémédecine", on the requérant's device.

The custodian (the structure that keeps the document) is the organisation whose archiver
the room names, or the structure the SDK was configured with.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from client.attachments.descriptor import AttachmentDescriptor
from client.teleexpertise.cases import Case
from client.teleexpertise.contents import Professional, Request, Urgency
from documents import codes
from documents.cda import Author, CdaDocument, InstanceId, Organisation, build_cda
from documents.cda import Professional as CdaProfessional
from documents.ins import PatientIdentity
from documents.pdf import Transcript, TranscriptEntry, transcript_pdf

REPORT_TYPE = "85208-7"  # CR de télémédecine (J07)
REQUEST_TYPE = "75496-0"  # Demande d'acte de télémédecine (J07)
PRACTICE_SETTING = "AMBULATOIRE"  # J04
DEFAULT_FACILITY_TYPE = "SA07"  # J02: cabinet individuel
PDF_NAME = "compte-rendu-teleexpertise.pdf"
CDA_NAME = "compte-rendu-teleexpertise.xml"
REQUEST_PDF_NAME = "demande-teleexpertise.pdf"
REQUEST_CDA_NAME = "demande-teleexpertise.xml"
CDA_MIME = "application/xml"


@dataclass(frozen=True, slots=True)
class Documents:
    """A PDF and the CDA that embeds it; ``document_id`` is the CDA's id (an OID)."""

    pdf: bytes
    cda: bytes
    document_id: str
    pdf_name: str
    cda_name: str


def new_oid() -> str:
    """A fresh OID for a document id: ``2.25.`` + a random UUID as an integer (ITU-T X.667)."""
    return f"2.25.{uuid.uuid4().int}"


def id_label(national_id: str) -> str:
    """``RPPS 10001987659`` for an IdNat_PS ``8…``, ``ADELI …`` for ``0…``."""
    if national_id.startswith("8") and len(national_id) == 12:
        return f"RPPS {national_id[1:]}"
    if national_id.startswith("0") and len(national_id) == 10:
        return f"ADELI {national_id[1:]}"
    return f"IdNat {national_id}"


def professional_line(professional: Professional) -> str:
    return f"{professional.display} — {id_label(professional.national_id)}"


def patient_lines(patient: PatientIdentity) -> list[tuple[str, str]]:
    sex = {"F": "F", "M": "M", "U": "indéterminé"}[patient.sex.value]
    names = f"{patient.birth_family_name} {patient.birth_given_names_text}"
    if patient.used_family_name or patient.used_given_name:
        names += f" (nom utilisé : {patient.display_given_name} {patient.display_family_name})"
    lines = [
        ("Patient", names),
        ("Né(e) le", f"{patient.birth_date.strftime('%d/%m/%Y')}, sexe {sex}"),
    ]
    if patient.birthplace:
        lines.append(("Lieu de naissance (INSEE)", patient.birthplace))
    if patient.is_qualified and patient.matricule and patient.oid:
        lines.append(("INS", f"{patient.matricule} (OID {patient.oid.value}), identité qualifiée"))
    else:
        lines.append(
            (
                "INS",
                f"identité {patient.status.value}, non qualifiée : traits seuls, "
                "sans matricule INS",
            )
        )
    return lines


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%d/%m/%Y %H:%M")


def _file_note(descriptor: AttachmentDescriptor) -> str:
    name = descriptor.name or "(sans nom)"
    return (
        f"Pièce jointe : {name}, {descriptor.mime}, {descriptor.size} octets, "
        f"SHA-256 {descriptor.sha256}"
    )


def _request_entries(request: Request) -> list[TranscriptEntry]:
    text = f"Motif : {request.reason}\n\nQuestion : {request.question}"
    if request.clinical_data:
        text += f"\n\nDonnées cliniques : {request.clinical_data}"
    return [
        TranscriptEntry(
            time=request.requested_at,
            author=request.requerant.display,
            author_detail=id_label(request.requerant.national_id),
            text=text,
            notes=tuple(_file_note(a) for a in request.attachments),
        )
    ]


def _header(request: Request) -> list[tuple[str, str]]:
    consent = request.consent.describe()[1]
    urgency = "urgente" if request.urgency is Urgency.URGENT else "non urgente"
    return [
        *patient_lines(request.patient),
        ("Requérant", professional_line(request.requerant)),
        ("Requis", professional_line(request.requis)),
        ("Demande du", f"{_when(request.requested_at)} ({urgency})"),
        ("Réponse souhaitée avant", _when(request.deadline)),
        ("Consentement", consent),
    ]


def _cda_professional(professional: Professional, organisation: Organisation) -> CdaProfessional:
    return CdaProfessional(
        national_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code or None,
        organisation=organisation,
    )


def _cda(
    *,
    type_code: str,
    title: str,
    patient: PatientIdentity,
    author: Professional,
    at: datetime,
    start: datetime,
    custodian: Organisation,
    facility_type: str,
    pdf: bytes,
) -> tuple[bytes, str]:
    document_id = new_oid()
    professional = _cda_professional(author, custodian)
    document = CdaDocument(
        document_id=InstanceId(document_id),
        set_id=InstanceId(new_oid()),
        version=1,
        type_code=codes.document_type(type_code),
        title=title,
        effective_time=at,
        patient=patient,
        authors=[Author(professional, at)],
        custodian=custodian,
        legal_authenticator=professional,
        legal_authentication_time=at,
        service_start=start,
        service_end=at,
        practice_setting=codes.code_in("J04", PRACTICE_SETTING),
        facility_type=codes.code_in("J02", facility_type),
        pdf=pdf,
    )
    return build_cda(document), document_id


def report_documents(
    *,
    case: Case,
    answer: str,
    reported_at: datetime,
    custodian: Organisation,
    facility_type: str = DEFAULT_FACILITY_TYPE,
) -> Documents:
    """The compte rendu of ``case`` answered with ``answer`` at ``reported_at``."""
    request = case.request
    entries = _request_entries(request)
    for question, reply in case.clarifications:
        entries.append(
            TranscriptEntry(
                time=question.asked_at,
                author=request.requis.display,
                author_detail=id_label(request.requis.national_id),
                text=f"Demande de précision : {question.question}",
            )
        )
        if reply is not None:
            entries.append(
                TranscriptEntry(
                    time=reply.answered_at,
                    author=request.requerant.display,
                    author_detail=id_label(request.requerant.national_id),
                    text=f"Précision : {reply.answer}",
                    notes=tuple(_file_note(a) for a in reply.attachments),
                )
            )
    entries.append(
        TranscriptEntry(
            time=reported_at,
            author=request.requis.display,
            author_detail=id_label(request.requis.national_id),
            text=f"Réponse (compte rendu) : {answer}",
        )
    )
    pdf = transcript_pdf(
        Transcript(
            title="Compte rendu de téléexpertise",
            header=[
                *_header(request),
                ("Réponse du", _when(reported_at)),
                ("Motif", request.reason),
            ],
            entries=entries,
            footer=f"Téléexpertise — compte rendu établi par {request.requis.display}",
            author=request.requis.display,
            subject="CR de télémédecine (téléexpertise)",
            keywords=("téléexpertise", "compte rendu", REPORT_TYPE),
        )
    )
    cda, document_id = _cda(
        type_code=REPORT_TYPE,
        title="Compte rendu de téléexpertise",
        patient=request.patient,
        author=request.requis,
        at=reported_at,
        start=request.requested_at,
        custodian=custodian,
        facility_type=facility_type,
        pdf=pdf,
    )
    return Documents(
        pdf=pdf, cda=cda, document_id=document_id, pdf_name=PDF_NAME, cda_name=CDA_NAME
    )


def request_documents(
    *, request: Request, custodian: Organisation, facility_type: str = DEFAULT_FACILITY_TYPE
) -> Documents:
    """The request as a PDF and a CDA 75496-0, on the requérant's device. Its files are
    listed; they travel beside it."""
    pdf = transcript_pdf(
        Transcript(
            title="Demande de téléexpertise",
            header=[*_header(request), ("Motif", request.reason)],
            entries=_request_entries(request),
            footer=f"Téléexpertise — demande de {request.requerant.display}",
            author=request.requerant.display,
            subject="Demande d'acte de télémédecine (téléexpertise)",
            keywords=("téléexpertise", "demande", REQUEST_TYPE),
        )
    )
    cda, document_id = _cda(
        type_code=REQUEST_TYPE,
        title="Demande de téléexpertise",
        patient=request.patient,
        author=request.requerant,
        at=request.requested_at,
        start=request.requested_at,
        custodian=custodian,
        facility_type=facility_type,
        pdf=pdf,
    )
    return Documents(
        pdf=pdf,
        cda=cda,
        document_id=document_id,
        pdf_name=REQUEST_PDF_NAME,
        cda_name=REQUEST_CDA_NAME,
    )
