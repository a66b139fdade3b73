"""Inputs for the archive tests: an organisation, two professionals, the ANS test
patient, photos, a téléexpertise report, and ``content(...)`` to make an archive."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from archive.content import (
    ArchiveContent,
    ArchivedAuthor,
    ArchivedFile,
    ArchivedMessage,
    ArchivedReport,
    ArchiveOrganisation,
)
from documents import codes
from documents.cda import Author, CdaDocument, InstanceId, Organisation, Professional, build_cda
from documents.ins import IdentityStatus, PatientIdentity
from documents.pdf import Transcript, TranscriptEntry, transcript_pdf
from tests.documents.samples import patient as patient  # the ANS test patient, shared

ORGANISATION = ArchiveOrganisation(
    name="Centre de santé des Pentes",
    structure_id="1750000123",
    mailbox="archives@pentes.mssante.fr",
    facility_type="SA05",
)
NURSE = ArchivedAuthor("810003456786", "Claire MARTIN", "60", "MARTIN", "Claire")
DOCTOR = ArchivedAuthor("810001987659", "Dr Paul DURAND", "10", "DURAND", "Paul")
START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
RECIPIENT = "dpi@chb.mssante.fr"


def unqualified_patient() -> PatientIdentity:
    return patient(status=IdentityStatus.VALI, matricule=None, oid=None)


def photo(seed: int = 1, width: int = 640, height: int = 480) -> bytes:
    """A small JPEG whose bytes differ with ``seed``."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), 80, 80))
    for _ in range(40):
        x, y = rng.randrange(width - 20), rng.randrange(height - 20)
        image.paste(
            (rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 20, y + 20)
        )
    output = io.BytesIO()
    image.save(output, format="JPEG", quality=85)
    return output.getvalue()


def photo_file(seed: int = 1, name: str = "IMG_2041.jpg") -> ArchivedFile:
    return ArchivedFile(name, "image/jpeg", photo(seed))


def messages() -> tuple[ArchivedMessage, ...]:
    return (
        ArchivedMessage(3, START, NURSE, "Pansement refait, plaie propre.\nL\u2019œdème diminue."),
        ArchivedMessage(
            5,
            START + timedelta(minutes=4),
            NURSE,
            "Plaie talon gauche J+3",
            (photo_file(1), ArchivedFile("ordonnance été.pdf", "application/pdf", b"%PDF-1.4 x")),
        ),
        ArchivedMessage(
            8, START + timedelta(minutes=50), DOCTOR, "Vu, je passe jeudi. <b>pas du HTML</b>"
        ),
    )


def report_pdf() -> bytes:
    return transcript_pdf(
        Transcript(
            title="Compte rendu de téléexpertise",
            header=[("Patient", "PAT-TROIS DOMINIQUE")],
            entries=[
                TranscriptEntry(time=START, author="Dr Paul DURAND", text="Avis : antibiothérapie.")
            ],
        )
    )


def report_cda(pdf: bytes, **changes: Any) -> bytes:
    organisation = Organisation(ORGANISATION.structure_id, ORGANISATION.name)
    doctor = Professional("810001987659", "DURAND", "Paul", "10", "SM26", organisation)
    at = START + timedelta(hours=2)
    values: dict[str, Any] = {
        "document_id": InstanceId("2.25.111111111111111111111111111111"),
        "set_id": InstanceId("2.25.111111111111111111111111111112"),
        "version": 1,
        "type_code": codes.document_type("85208-7"),
        "title": "Compte rendu de téléexpertise",
        "effective_time": at,
        "patient": patient(),
        "authors": [Author(doctor, at)],
        "custodian": organisation,
        "legal_authenticator": doctor,
        "legal_authentication_time": at,
        "service_start": START,
        "service_end": at,
        "practice_setting": codes.code_in("J04", "AMBULATOIRE"),
        "facility_type": codes.code_in("J02", "SA07"),
        "pdf": pdf,
    }
    values.update(changes)
    return build_cda(CdaDocument(**values))


def report(with_cda: bool = True) -> ArchivedReport:
    pdf = report_pdf()
    return ArchivedReport(
        pdf=pdf, cda=report_cda(pdf) if with_cda else None, title="Compte rendu de téléexpertise"
    )


def content(**changes: Any) -> ArchiveContent:
    values: dict[str, Any] = {
        "organisation": ORGANISATION,
        "room_id": 42,
        "room_kind": "care_team",
        "room_title": "Mme PAT-TROIS — plaie talon",
        "first_seq": 1,
        "last_seq": 9,
        "reason": "idle",
        "cut_at": START + timedelta(hours=6),
        "messages": messages(),
        "patient": patient(),
        "recipients": (RECIPIENT,),
    }
    values.update(changes)
    return ArchiveContent(**values)
