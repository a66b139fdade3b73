"""Shared inputs for the document tests: an ANS test patient, two professionals, a PDF."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from typing import Any

from PIL import Image

from documents import codes
from documents.cda import Author, CdaDocument, InstanceId, Organisation, Professional
from documents.ins import IdentityStatus, InsOid, PatientIdentity, Sex
from documents.pdf import Transcript, TranscriptEntry, transcript_pdf

PARIS_WINTER = timezone(timedelta(hours=1))
ORGANISATION = Organisation("1750000123", "Centre de santé des Pentes")
DOCTOR = Professional("810001987659", "DURAND", "Paul", "10", "SM26", ORGANISATION)
NURSE = Professional("810003456786", "MARTIN", "Claire", "60", None, ORGANISATION)


def patient(**changes: Any) -> PatientIdentity:
    values: dict[str, Any] = {
        "status": IdentityStatus.QUAL,
        "birth_family_name": "PAT-TROIS",
        "birth_given_names": ("DOMINIQUE", "MARIE-LOUISE"),
        "birth_date": date(1979, 3, 28),
        "sex": Sex.F,
        "birthplace": "51215",
        "used_family_name": "PAT-TROIS",
        "used_given_name": "DOMI",
        "matricule": "279035121518989",
        "oid": InsOid.TEST,
    }
    values.update(changes)
    return PatientIdentity(**values)


def photo(width: int = 1600, height: int = 1200, colour=(180, 60, 60)) -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(output, format="JPEG", quality=85)
    return output.getvalue()


def small_pdf() -> bytes:
    when = datetime(2026, 12, 2, 9, 30, tzinfo=PARIS_WINTER)
    return transcript_pdf(
        Transcript(
            title="Transcription",
            header=[("Patient", "Dominique PAT-TROIS")],
            entries=[TranscriptEntry(time=when, author="Claire MARTIN", text="Plaie propre.")],
        )
    )


def document(**changes) -> CdaDocument:
    start = datetime(2026, 12, 2, 9, 30, tzinfo=PARIS_WINTER)
    end = datetime(2026, 12, 2, 11, 5, tzinfo=PARIS_WINTER)
    values: dict[str, Any] = {
        "document_id": InstanceId("2.25.329800735698586629295641978511506172918"),
        "set_id": InstanceId("2.25.329800735698586629295641978511506172919"),
        "version": 1,
        "type_code": codes.document_type("11506-3"),
        "title": "Salon de soins : transcription",
        "effective_time": end,
        "patient": patient(),
        "authors": [Author(NURSE, start), Author(DOCTOR, end)],
        "custodian": ORGANISATION,
        "legal_authenticator": DOCTOR,
        "legal_authentication_time": end,
        "service_start": start,
        "service_end": end,
        "practice_setting": codes.code_in("J04", "AMBULATOIRE"),
        "facility_type": codes.code_in("J02", "SA05"),
        "pdf": small_pdf(),
    }
    values.update(changes)
    return CdaDocument(**values)
