"""The patient's consent to the téléexpertise, as the requérant attests it.

The act needs the prior, free and informed consent of the patient or of their legal
representative; the patient need not be present; a refusal must be respected and
recorded (domain facts §6). The requérant attests it with the date and how it was
obtained; ``Consent`` carries that attestation inside the encrypted request. A refusal
never leaves the device: the SDK records it there (``refusals``) and refuses to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from client.teleexpertise.errors import invalid

MAX_REPRESENTATIVE_LENGTH = 200


class ConsentDecision(StrEnum):
    GIVEN = "given"
    REFUSED = "refused"


class ConsentMethod(StrEnum):
    """How the consent (or refusal) was obtained."""

    ORAL = "oral"  # told in person or by phone, noted in the record
    WRITTEN = "written"  # a signed form
    ELECTRONIC = "electronic"  # through a patient portal or application


class ConsentGivenBy(StrEnum):
    PATIENT = "patient"
    LEGAL_REPRESENTATIVE = "legal_representative"


_METHOD_LABELS = {
    ConsentMethod.ORAL: ("orally", "oralement"),
    ConsentMethod.WRITTEN: ("in writing", "par écrit"),
    ConsentMethod.ELECTRONIC: ("electronically", "électroniquement"),
}


@dataclass(frozen=True, slots=True)
class Consent:
    """The attestation. ``representative``: the legal representative's name, required
    when they decided for the patient."""

    decision: ConsentDecision
    obtained_on: date
    method: ConsentMethod
    given_by: ConsentGivenBy = ConsentGivenBy.PATIENT
    representative: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.decision, ConsentDecision):
            raise invalid("consent.decision", "given or refused.", "given ou refused.")
        if not isinstance(self.method, ConsentMethod):
            raise invalid(
                "consent.method", "oral, written or electronic.", "oral, written ou electronic."
            )
        if not isinstance(self.given_by, ConsentGivenBy):
            raise invalid(
                "consent.given_by",
                "patient or legal_representative.",
                "patient ou legal_representative.",
            )
        if not isinstance(self.obtained_on, date) or self.obtained_on > date.today():
            raise invalid(
                "consent.obtained_on",
                "the date it was obtained, today or before.",
                "la date où il a été recueilli, aujourd'hui ou avant.",
            )
        needs_name = self.given_by is ConsentGivenBy.LEGAL_REPRESENTATIVE
        if self.representative is not None and not isinstance(self.representative, str):
            raise invalid("consent.representative", "a name.", "un nom.")
        name = (self.representative or "").strip()
        if needs_name and not name:
            raise invalid(
                "consent.representative",
                "the legal representative's name.",
                "le nom du représentant légal.",
            )
        if not needs_name and self.representative is not None:
            raise invalid(
                "consent.representative",
                "only when a legal representative decided.",
                "seulement quand un représentant légal a décidé.",
            )
        if len(name) > MAX_REPRESENTATIVE_LENGTH:
            raise invalid(
                "consent.representative",
                f"at most {MAX_REPRESENTATIVE_LENGTH} characters.",
                f"au plus {MAX_REPRESENTATIVE_LENGTH} caractères.",
            )

    @property
    def given(self) -> bool:
        return self.decision is ConsentDecision.GIVEN

    def describe(self) -> tuple[str, str]:
        """One line in English and in French, for the report and the terminal."""
        how, how_fr = _METHOD_LABELS[self.method]
        day = self.obtained_on.strftime("%d/%m/%Y")
        by, by_fr = (
            ("the patient", "le patient")
            if self.given_by is ConsentGivenBy.PATIENT
            else (
                f"legal representative {self.representative}",
                f"représentant légal {self.representative}",
            )
        )
        if self.given:
            return (
                f"Consent given {how} by {by} on {day}",
                f"Consentement donné {how_fr} par {by_fr} le {day}",
            )
        return (
            f"Refused {how} by {by} on {day}",
            f"Refus exprimé {how_fr} par {by_fr} le {day}",
        )

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "decision": self.decision.value,
            "obtained_on": self.obtained_on.isoformat(),
            "method": self.method.value,
            "given_by": self.given_by.value,
        }
        if self.representative is not None:
            value["representative"] = self.representative
        return value

    @classmethod
    def from_dict(cls, value: object) -> Consent:
        if not isinstance(value, dict):
            raise invalid("consent", "an object.", "un objet.")
        known = {"decision", "obtained_on", "method", "given_by", "representative"}
        if set(value) - known or not {"decision", "obtained_on", "method", "given_by"} <= set(
            value
        ):
            raise invalid("consent", "unknown or missing fields.", "champs inconnus ou manquants.")
        try:
            return cls(
                decision=ConsentDecision(value["decision"]),
                obtained_on=date.fromisoformat(str(value["obtained_on"])),
                method=ConsentMethod(value["method"]),
                given_by=ConsentGivenBy(value["given_by"]),
                representative=value.get("representative"),
            )
        except ValueError:
            raise invalid("consent", "malformed values.", "valeurs mal formées.") from None
