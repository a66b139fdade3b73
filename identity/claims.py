"""Reading a PSC userinfo document (docs/identity.md, "What PSC tells Relais").

The person is keyed by ``SubjectNameID`` (IdNat_PS: ``8``+RPPS or ``0``+ADELI). Names,
profession and specialty come from ``SubjectRefPro.exercices``; every activity (situation
d'exercice) of every exercice is offered to the user, who picks the one they act in.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from chat.errors import ErrorCode, RelaisError
from directory.identifiers import InvalidIdentifierError, NationalId

# EDIT test identities of the sandbox can be alphanumeric (e.g. ANS20231122132732).
_SANDBOX_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_ACTIVITY_TEXT_FIELDS = {
    "codeModeExercice": "mode_code",
    "codeSecteurDactivite": "sector_code",
    "identifiantTechniqueDeLaStructure": "structure_id",
    "raisonSocialeSite": "structure_name",
    "enseigneCommercialeSite": "brand",
    "codePostal": "postcode",
    "codeCommune": "town_code",
    "numeroFinessSite": "finess",
    "numeroSiretSite": "siret",
    "ancienIdentifiantDeLaStructure": "structure_national_id",
    "codeRole": "role_code",
    "codeGenreActivite": "activity_kind_code",
}


@dataclass(frozen=True)
class PscActivity:
    """One situation d'exercice the user may act in."""

    profession_code: str
    specialty_code: str
    mode_code: str = ""
    sector_code: str = ""
    structure_id: str = ""
    structure_name: str = ""
    brand: str = ""
    postcode: str = ""
    town_code: str = ""
    finess: str = ""
    siret: str = ""
    structure_national_id: str = ""
    role_code: str = ""
    activity_kind_code: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class PscIdentity:
    subject: str
    national_id: str
    check_digit_valid: bool
    civility: str
    first_name: str
    last_name: str
    profession_code: str
    specialty_code: str
    activities: tuple[PscActivity, ...]


def _text(value: Any, limit: int = 256) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def national_id_from_claims(claims: dict[str, Any], *, sandbox: bool) -> tuple[str, bool]:
    """``(national id, check digit valid)``; PSC_IDENTITY_REFUSED when unusable.

    Production accepts only ``8``+RPPS / ``0``+ADELI with a valid check digit; the
    sandbox also accepts alphanumeric test identities and wrong check digits.
    """
    raw = _text(claims.get("SubjectNameID")) or _text(claims.get("preferred_username"))
    try:
        NationalId.parse(raw, check_digit=not sandbox)
    except InvalidIdentifierError as error:
        if sandbox and _SANDBOX_ID.match(raw):
            return raw, False
        raise RelaisError(ErrorCode.PSC_IDENTITY_REFUSED, str(error)) from error
    try:
        NationalId.parse(raw)
    except InvalidIdentifierError:
        return raw, False
    return raw, True


def identity_from_userinfo(claims: dict[str, Any], *, sandbox: bool) -> PscIdentity:
    """The person described by a verified userinfo document."""
    national_id, check_ok = national_id_from_claims(claims, sandbox=sandbox)
    ref_pro = claims.get("SubjectRefPro")
    exercices = ref_pro.get("exercices") if isinstance(ref_pro, dict) else None
    exercices = [e for e in exercices if isinstance(e, dict)] if isinstance(exercices, list) else []
    first = exercices[0] if exercices else {}
    roles = claims.get("SubjectRole")
    role_profession = _text(roles[0]).split("^", 1)[0] if isinstance(roles, list) and roles else ""
    activities: list[PscActivity] = []
    for exercice in exercices:
        profession = _text(exercice.get("codeProfession"), 8)
        specialty = _text(exercice.get("codeSavoirFaire"), 16)
        for activity in exercice.get("activities") or []:
            if not isinstance(activity, dict):
                continue
            fields = {
                ours: _text(activity.get(theirs)) for theirs, ours in _ACTIVITY_TEXT_FIELDS.items()
            }
            activities.append(
                PscActivity(profession_code=profession, specialty_code=specialty, **fields)
            )
    civility = _text(first.get("codeCiviliteDexercice"), 8) or _text(
        (ref_pro or {}).get("codeCivilite") if isinstance(ref_pro, dict) else "", 8
    )
    return PscIdentity(
        subject=_text(claims.get("sub")),
        national_id=national_id,
        check_digit_valid=check_ok,
        civility=civility,
        first_name=_text(first.get("prenomDexercice"), 128) or _text(claims.get("given_name"), 128),
        last_name=_text(first.get("nomDexercice"), 128) or _text(claims.get("family_name"), 128),
        profession_code=_text(first.get("codeProfession"), 8) or role_profession[:8],
        specialty_code=_text(first.get("codeSavoirFaire"), 16),
        activities=tuple(activities[:50]),
    )
