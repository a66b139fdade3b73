"""Inputs shared by the téléexpertise client tests: an ANS test patient, the demo
professionals, a consent, and keys standing for the practitioner's account keys."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from client.teleexpertise.consent import Consent, ConsentDecision, ConsentMethod
from client.teleexpertise.contents import Professional, Request
from documents.ins import IdentityStatus, InsOid, PatientIdentity, Sex

NURSE = Professional("810003456786", "MARTIN", "Claire", "60", "Infirmier")
DOCTOR = Professional("810001987659", "DURAND", "Paul", "10", "Médecin", "SM26")
REQUESTED_AT = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def patient(**changes: Any) -> PatientIdentity:
    values: dict[str, Any] = {
        "status": IdentityStatus.QUAL,
        "birth_family_name": "PAT-TROIS",
        "birth_given_names": ("DOMINIQUE", "MARIE-LOUISE"),
        "birth_date": date(1979, 3, 28),
        "sex": Sex.F,
        "birthplace": "51215",
        "matricule": "279035121518989",
        "oid": InsOid.TEST,
    }
    values.update(changes)
    return PatientIdentity(**values)


def unqualified(**changes: Any) -> PatientIdentity:
    return patient(status=IdentityStatus.PROV, matricule=None, oid=None, **changes)


def consent(**changes: Any) -> Consent:
    values: dict[str, Any] = {
        "decision": ConsentDecision.GIVEN,
        "obtained_on": date(2026, 3, 14),
        "method": ConsentMethod.ORAL,
    }
    values.update(changes)
    return Consent(**values)


def account_keys(secret: str):
    """What ``ClientSession.account_key`` gives: 32 bytes per purpose, the same on every
    device of one practitioner (here derived from a test secret)."""

    def key(purpose: str) -> bytes:
        return hashlib.sha256(f"{secret}/{purpose}".encode()).digest()

    return key


def request(**changes: Any) -> Request:
    values: dict[str, Any] = {
        "requerant": NURSE,
        "requis": DOCTOR,
        "patient": patient(),
        "reason": "Plaie du talon qui s'aggrave",
        "question": "Faut-il changer de pansement ou adresser en consultation ?",
        "consent": consent(),
        "deadline": REQUESTED_AT + timedelta(hours=48),
        "requested_at": REQUESTED_AT,
        "clinical_data": "Plaie de 3 cm, exsudat, pas de fièvre.",
    }
    values.update(changes)
    return Request(**values)
