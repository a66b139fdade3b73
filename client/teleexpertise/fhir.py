"""A téléexpertise request as a FHIR R4 transaction Bundle shaped like the ANS
"Confluences Téléexpertise" profiles, made on the device (docs/teleexpertise.md, "FHIR
export").

The ``ServiceRequest`` follows ``cfl-ServiceRequest-requerant``
(``ansforge/interop-ig-fhir-teleexpertise-confluence``, FSH of its 0.1.0 draft):
``intent`` proposal, ``authoredOn``, ``requester`` and ``performer`` referencing
PractitionerRoles, ``subject`` the Patient, no ``note``, ``patientInstruction`` or
``reasonReference``, the ``patient-consent`` extension (boolean) and, while active, the
``SplitActiveStatus`` extension (``ready``: not yet taken; ``in_progress``: accepted).
The extension URLs are the ones that draft declares. Status mapping: requested →
active/ready, accepted → active/in_progress, answered and closed → completed,
declined, cancelled and expired → revoked. The bundle carries the ServiceRequest, the
Patient (FR Core ``fr-core-patient-ins``: the INS identifier only for a qualified
identity), and a Practitioner and PractitionerRole for each professional (identified by
IdNat_PS), as the draft's request flow asks.

Not claimed: the draft's ``cfl-patient`` profile also requires the rang gémellaire and
an INS-NIR identifier, which a Relais identity does not always have; the Patient here
claims FR Core only.
"""

from __future__ import annotations

import uuid
from typing import Any

from client.teleexpertise.contents import Professional, Request
from documents.ins import InsOid, PatientIdentity
from teleexpertise.workflow import State

IG = "https://interop.esante.gouv.fr/ig/fhir/teleexpertise-confluence"
SERVICE_REQUEST_PROFILE = f"{IG}/StructureDefinition/cfl-ServiceRequest-requerant"
CONSENT_EXTENSION = (
    "http://example.org/fhir/fish/StructureDefinition/fr-coreServiceRequest-patientConsent"
)
SPLIT_STATUS_EXTENSION = (
    "http://example.org/fhir/fish/StructureDefinition/fr-coreServiceRequest-SplitActiveStatus"
)
ACTIVE_STATUS_SYSTEM = f"{IG}/CodeSystem/active-status-cs"
FR_CORE = "https://hl7.fr/ig/fhir/core"
PATIENT_INS_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-patient-ins"
PATIENT_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-patient"
IDENTITY_RELIABILITY = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
IDENTIFIER_TYPE_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
BIRTH_LIST_GIVEN_NAME = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
INSEE_CODE = f"{FR_CORE}/StructureDefinition/fr-core-address-insee-code"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
COMMUNE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
PROFESSION_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)
SPECIALTY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
)
IDNAT_PS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
_INS_TYPE = {
    InsOid.NIR: "INS-NIR",
    InsOid.NIA: "INS-NIA",
    InsOid.TEST: "INS-NIR-TEST",
    InsOid.DEMO: "INS-NIR-DEMO",
}
_GENDER = {"F": "female", "M": "male", "U": "unknown"}
_STATUS = {
    State.REQUESTED: ("active", "ready"),
    State.ACCEPTED: ("active", "in_progress"),
    State.ANSWERED: ("completed", None),
    State.CLOSED: ("completed", None),
    State.DECLINED: ("revoked", None),
    State.CANCELLED: ("revoked", None),
    State.EXPIRED: ("revoked", None),
}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def patient_resource(patient: PatientIdentity) -> dict[str, Any]:
    """An FR Core Patient: traits always; the INS only for a qualified identity."""
    official: dict[str, Any] = {
        "use": "official",
        "family": patient.birth_family_name,
        "given": [patient.first_birth_given_name],
        "extension": [
            {"url": BIRTH_LIST_GIVEN_NAME, "valueString": patient.birth_given_names_text}
        ],
    }
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": [PATIENT_INS_PROFILE if patient.is_qualified else PATIENT_PROFILE]},
        "extension": [
            {
                "url": IDENTITY_RELIABILITY,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {
                            "system": IDENTITY_STATUS_SYSTEM,
                            "code": patient.status.value,
                        },
                    }
                ],
            }
        ],
        "name": [official],
        "gender": _GENDER[patient.sex.value],
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.birthplace:
        resource["extension"].append(
            {
                "url": BIRTH_PLACE,
                "valueAddress": {
                    "extension": [
                        {
                            "url": INSEE_CODE,
                            "valueCoding": {"system": COMMUNE_SYSTEM, "code": patient.birthplace},
                        }
                    ]
                },
            }
        )
    if patient.used_family_name or patient.used_given_name:
        resource["name"].append(
            {
                "use": "usual",
                "family": patient.display_family_name,
                "given": [patient.display_given_name],
            }
        )
    if patient.is_qualified and patient.matricule and patient.oid:
        resource["identifier"] = [
            {
                "use": "official",
                "type": {
                    "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": _INS_TYPE[patient.oid]}]
                },
                "system": f"urn:oid:{patient.oid.value}",
                "value": patient.matricule,
            }
        ]
    return resource


def _practitioner(professional: Professional) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "IDNPS"}]},
                "system": IDNAT_PS_SYSTEM,
                "value": professional.national_id,
            }
        ],
        "name": [
            {
                "use": "usual",
                "family": professional.family_name,
                "given": [professional.given_name] if professional.given_name else [],
            }
        ],
    }


def _role(professional: Professional, practitioner_url: str) -> dict[str, Any]:
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": practitioner_url},
        "code": [
            {
                "coding": [
                    {
                        "system": PROFESSION_SYSTEM,
                        "code": professional.profession_code,
                        "display": professional.profession_label,
                    }
                ]
            }
        ],
    }
    if professional.specialty_code:
        role["specialty"] = [
            {"coding": [{"system": SPECIALTY_SYSTEM, "code": professional.specialty_code}]}
        ]
    return role


def service_request_bundle(*, request: Request, state: State, room_uid: str) -> dict[str, Any]:
    """The transaction Bundle for one request, in its current ``state``."""
    entries: list[tuple[str, dict[str, Any]]] = []

    def add(resource: dict[str, Any]) -> str:
        url = _urn()
        entries.append((url, resource))
        return url

    patient_url = add(patient_resource(request.patient))
    urls: dict[str, str] = {}
    for name, professional in (("requerant", request.requerant), ("requis", request.requis)):
        practitioner_url = add(_practitioner(professional))
        urls[name] = add(_role(professional, practitioner_url))
    status, split = _STATUS[state]
    extensions: list[dict[str, Any]] = [
        {"url": CONSENT_EXTENSION, "valueBoolean": request.consent.given}
    ]
    if split is not None:
        extensions.append(
            {
                "url": SPLIT_STATUS_EXTENSION,
                "valueCoding": {"system": ACTIVE_STATUS_SYSTEM, "code": split},
            }
        )
    service_request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [SERVICE_REQUEST_PROFILE]},
        "extension": extensions,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:relais:room:{room_uid}"}],
        "status": status,
        "intent": "proposal",
        "priority": "urgent" if request.urgency.value == "urgent" else "routine",
        "code": {"text": "Téléexpertise"},
        "subject": {"reference": patient_url},
        "authoredOn": request.requested_at.isoformat(timespec="seconds"),
        "occurrenceDateTime": request.deadline.isoformat(timespec="seconds"),
        "requester": {"reference": urls["requerant"]},
        "performer": [{"reference": urls["requis"]}],
        "reasonCode": [{"text": request.reason}, {"text": request.question}],
    }
    add(service_request)
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for url, resource in entries
        ],
    }
