"""The compte rendu (PDF + CDA R2 niveau 1, type 85208-7), the request's documents
(75496-0) and the FHIR ServiceRequest, as the devices make them."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from client.teleexpertise.cases import Case, Recorded
from client.teleexpertise.contents import (
    Accept,
    ClarificationAnswer,
    ClarificationRequest,
    TeleexpertiseEvent,
)
from client.teleexpertise.fhir import (
    CONSENT_EXTENSION,
    SERVICE_REQUEST_PROFILE,
    SPLIT_STATUS_EXTENSION,
    service_request_bundle,
)
from client.teleexpertise.report import report_documents, request_documents
from documents.cda import NS, Organisation, check_cda
from teleexpertise.workflow import State
from tests.teleexpertise.samples import DOCTOR, NURSE, REQUESTED_AT, request, unqualified

CENTRE = Organisation("1750000123", "Centre de santé des Pentes")
ANSWER = "Plaie propre : poursuivre l'hydrocolloïde, revoir à J+7."


def answered_case(req=None) -> Case:
    req = req or request()
    case = Case(room_id=7, me=DOCTOR.national_id)
    case.events.append(Recorded(1, NURSE.national_id, req.to_content(), req))
    case.state = State.REQUESTED
    at = REQUESTED_AT + timedelta(hours=1)
    steps: list[tuple[str, TeleexpertiseEvent]] = [
        (DOCTOR.national_id, ClarificationRequest("q1", "La plaie sent-elle ?", at)),
        (NURSE.national_id, ClarificationAnswer("q1", "Non.", at + timedelta(minutes=5))),
        (DOCTOR.national_id, Accept()),
    ]
    for seq, (sender, event) in enumerate(steps, start=2):
        case.add(Recorded(seq, sender, event.to_content(), event))
    return case


def render_first_page(pdf: bytes, tmp_path: Path) -> bytes:
    source = tmp_path / "document.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(source), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    page: bytes = next(tmp_path.glob("page*.png")).read_bytes()
    assert page.startswith(b"\x89PNG")
    return page


def pdf_text(pdf: bytes, tmp_path) -> str:
    source = tmp_path / "text.pdf"
    source.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(source), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode()


def test_the_report_pdf_and_cda(tmp_path):
    reported_at = REQUESTED_AT + timedelta(hours=3)
    documents = report_documents(
        case=answered_case(), answer=ANSWER, reported_at=reported_at, custodian=CENTRE
    )
    checked = check_cda(documents.cda)  # schema, templateIds, INS, PDF body
    assert checked.type_code == "85208-7"
    assert checked.ins is not None
    assert (checked.ins.root, checked.ins.extension) == ("1.2.250.1.213.1.4.10", "279035121518989")
    assert checked.author_ids == (DOCTOR.national_id,)
    assert checked.pdf == documents.pdf
    assert checked.document_id.root == documents.document_id
    tree = etree.fromstring(documents.cda)
    templates = [e.get("root") for e in tree.findall("cda:templateId", NS)]
    assert templates == [
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    ]
    render_first_page(documents.pdf, tmp_path)
    text = pdf_text(documents.pdf, tmp_path)
    for expected in (
        "Compte rendu de téléexpertise",
        "PAT-TROIS",
        "279035121518989",
        "RPPS 10003456786",  # the requérant
        "RPPS 10001987659",  # the requis
        "Faut-il changer de pansement",  # the question
        "poursuivre l'hydrocolloïde",  # the answer
        "La plaie sent-elle",  # the clarification
        "14/03/2026",  # the date of the request
    ):
        assert expected in " ".join(text.split()), expected


def test_an_unqualified_identity_goes_without_matricule(tmp_path):
    documents = report_documents(
        case=answered_case(request(patient=unqualified())),
        answer=ANSWER,
        reported_at=datetime(2026, 3, 14, 12, 0, tzinfo=UTC),
        custodian=CENTRE,
    )
    checked = check_cda(documents.cda)
    assert checked.ins is None
    assert b"279035121518989" not in documents.cda
    assert "non qualifiée" in " ".join(pdf_text(documents.pdf, tmp_path).split())


def test_the_request_documents(tmp_path):
    documents = request_documents(request=request(), custodian=CENTRE)
    checked = check_cda(documents.cda)
    assert (checked.type_code, checked.author_ids) == ("75496-0", (NURSE.national_id,))
    render_first_page(documents.pdf, tmp_path)


@pytest.mark.parametrize(
    ("state", "status", "split"),
    [
        (State.REQUESTED, "active", "ready"),
        (State.ACCEPTED, "active", "in_progress"),
        (State.ANSWERED, "completed", None),
        (State.DECLINED, "revoked", None),
    ],
)
def test_the_fhir_service_request(state, status, split):
    bundle = service_request_bundle(request=request(), state=state, room_uid="abc")
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    by_type: dict[str, list[dict]] = {}
    urls = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
        by_type.setdefault(resource["resourceType"], []).append(resource)
        urls[entry["fullUrl"]] = resource
    assert sorted(by_type) == ["Patient", "Practitioner", "PractitionerRole", "ServiceRequest"]
    (service,) = by_type["ServiceRequest"]
    # The cfl-ServiceRequest-requerant constraints.
    assert service["meta"]["profile"] == [SERVICE_REQUEST_PROFILE]
    assert service["intent"] == "proposal"
    assert service["status"] == status
    assert service["authoredOn"] == "2026-03-14T09:30:00+00:00"
    assert not {"note", "patientInstruction", "reasonReference"} & set(service)
    assert urls[service["requester"]["reference"]]["resourceType"] == "PractitionerRole"
    assert [urls[p["reference"]]["resourceType"] for p in service["performer"]] == [
        "PractitionerRole"
    ]
    extensions = {e["url"]: e for e in service["extension"]}
    assert extensions[CONSENT_EXTENSION]["valueBoolean"] is True
    if split is None:
        assert SPLIT_STATUS_EXTENSION not in extensions
    else:
        assert extensions[SPLIT_STATUS_EXTENSION]["valueCoding"]["code"] == split
    requester = urls[service["requester"]["reference"]]
    practitioner = urls[requester["practitioner"]["reference"]]
    assert practitioner["identifier"][0]["value"] == NURSE.national_id
    patient = urls[service["subject"]["reference"]]
    assert patient["identifier"] == [
        {
            "use": "official",
            "type": {
                "coding": [
                    {
                        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                        "code": "INS-NIR-TEST",
                    }
                ]
            },
            "system": "urn:oid:1.2.250.1.213.1.4.10",
            "value": "279035121518989",
        }
    ]
    assert patient["gender"] == "female"


def test_the_fhir_patient_of_an_unqualified_identity_has_no_ins():
    bundle = service_request_bundle(
        request=request(patient=unqualified()), state=State.REQUESTED, room_uid="abc"
    )
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    assert "identifier" not in patient
    assert patient["meta"]["profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
    ]
