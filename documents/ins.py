"""The patient's identity as French rules define it: the INS (Identité Nationale de Santé).

An identity is the patient's *strict traits* (birth family name, birth given names and
the first of them, birth date, sex, INSEE code of the birth place), the names used day
to day, its *status* in the identity vigilance rules (RNIV), and — only when the status
is ``QUAL`` (qualified: obtained from the INSi service *and* checked against an identity
document) — the *matricule INS* with its OID.

The matricule is the patient's NIR (or NIA, a temporary number) — 15 characters: a
13-character body (sex, year, month, place of birth with ``2A``/``2B`` for Corsica,
order) and a 2-digit key = 97 - (body mod 97), computed after replacing ``2A`` by ``19``
and ``2B`` by ``18``. Its OID says which register issued it:

=====================  =========================  ===================================
OID                    name                       use
=====================  =========================  ===================================
1.2.250.1.213.1.4.8    INS-NIR                    real patients (NIR)
1.2.250.1.213.1.4.9    INS-NIA                    temporary number from INSi
1.2.250.1.213.1.4.10   INS-NIR-TEST               fictitious test patients
1.2.250.1.213.1.4.11   INS-NIR-DEMO               demonstrations
=====================  =========================  ===================================

``PatientIdentity`` is frozen and validated when made; ``to_json``/``from_json`` give
its canonical JSON form (keys sorted, no spaces, UTF-8), the one that travels inside
end-to-end encrypted payloads. Every error is a ``DocumentError`` with a stable code and
one line in English and French. Sources and reasons: docs/documents.md.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from documents.errors import DocumentError

MATRICULE_LENGTH: Final = 15
MAX_NAME_LENGTH: Final = 100
MAX_GIVEN_NAMES: Final = 20
MAX_JSON_BYTES: Final = 4096
EARLIEST_BIRTH_DATE: Final = date(1870, 1, 1)
JSON_TYPE: Final = "patient_identity"
JSON_VERSION: Final = 1

_MATRICULE = re.compile(r"^[1234578][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{8}$")
_BIRTHPLACE = re.compile(r"^(?:[0-9]{5}|2[AB][0-9]{3})$")
_NAME_PUNCTUATION = frozenset(" -'")


class IdentityStatus(StrEnum):
    """The identity's status in the RNIV (référentiel national d'identitovigilance)."""

    PROV = "PROV"  # provisional: not from INSi, not checked against an identity document
    RECUP = "RECUP"  # retrieved from INSi, not yet checked against an identity document
    VALI = "VALI"  # checked against an identity document, not from INSi
    QUAL = "QUAL"  # qualified: from INSi and checked against an identity document


class Sex(StrEnum):
    F = "F"
    M = "M"
    U = "U"  # unknown or undetermined


class InsOid(StrEnum):
    """The OID naming which register issued a matricule INS."""

    NIR = "1.2.250.1.213.1.4.8"
    NIA = "1.2.250.1.213.1.4.9"
    TEST = "1.2.250.1.213.1.4.10"
    DEMO = "1.2.250.1.213.1.4.11"

    @property
    def is_real(self) -> bool:
        """False for test and demonstration identities, which are never real patients."""
        return self in (InsOid.NIR, InsOid.NIA)


def _error(code: str, english: str, french: str) -> DocumentError:
    return DocumentError(code, english, french)


def nir_key(body: str) -> int:
    """The key of a 13-character NIR/NIA body: 97 - (body mod 97), Corsica's ``2A`` and
    ``2B`` counted as 19 and 18."""
    digits = body.upper().replace("2A", "19").replace("2B", "18")
    if len(body) != MATRICULE_LENGTH - 2 or not digits.isdigit():
        raise _error(
            "bad_matricule",
            "A matricule INS body is 13 characters: digits, and 2A or 2B for Corsica.",
            "Le corps d'un matricule INS fait 13 caractères : des chiffres, et 2A ou 2B "
            "pour la Corse.",
        )
    return 97 - int(digits) % 97


def check_matricule(matricule: str) -> str:
    """``matricule`` if it is a well-formed NIR/NIA with the right key; DocumentError
    (``bad_matricule`` or ``bad_matricule_key``) otherwise."""
    if len(matricule) != MATRICULE_LENGTH or not _MATRICULE.match(matricule):
        raise _error(
            "bad_matricule",
            "A matricule INS is 15 characters: 13 (digits, 2A or 2B for Corsica) and a "
            "2-digit key.",
            "Un matricule INS fait 15 caractères : 13 (chiffres, 2A ou 2B pour la Corse) "
            "et une clé de 2 chiffres.",
        )
    if nir_key(matricule[:13]) != int(matricule[13:]):
        raise _error(
            "bad_matricule_key",
            "The key of the matricule INS is wrong (a digit was mistyped?).",
            "La clé du matricule INS est fausse (un chiffre mal saisi ?).",
        )
    return matricule


def _check_name(value: object, *, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _error(
            "bad_name",
            f"{field}: a name is required.",
            f"{field} : un nom est obligatoire.",
        )
    if len(value) > MAX_NAME_LENGTH:
        raise _error(
            "bad_name",
            f"{field}: at most {MAX_NAME_LENGTH} characters.",
            f"{field} : au plus {MAX_NAME_LENGTH} caractères.",
        )
    if (
        value != value.strip()
        or "  " in value
        or value[0] in _NAME_PUNCTUATION
        or value[-1] in _NAME_PUNCTUATION
        or any(
            not (c in _NAME_PUNCTUATION or unicodedata.category(c).startswith("L")) for c in value
        )
    ):
        raise _error(
            "bad_name",
            f"{field}: letters, single spaces, hyphens and apostrophes only.",
            f"{field} : lettres, espaces simples, traits d'union et apostrophes uniquement.",
        )
    return value


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """A patient's identity. Build it with keyword arguments; it validates itself.

    ``birth_given_names`` lists every birth given name in order (the first is the
    *premier prénom de naissance*). ``matricule`` and ``oid`` are given together and only
    for a ``QUAL`` identity: an unqualified identity never carries a matricule, so a
    receiver cannot take traits that were not checked for an INS. ``birthplace`` (the
    INSEE code of the birth commune, ``99xxx`` for a country abroad) is required for a
    qualified identity.
    """

    status: IdentityStatus
    birth_family_name: str
    birth_given_names: tuple[str, ...]
    birth_date: date
    sex: Sex
    birthplace: str | None = None
    used_family_name: str | None = None
    used_given_name: str | None = None
    matricule: str | None = None
    oid: InsOid | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, IdentityStatus):
            raise _error(
                "bad_status",
                "The identity status is one of PROV, RECUP, VALI, QUAL.",
                "Le statut de l'identité est PROV, RECUP, VALI ou QUAL.",
            )
        _check_name(self.birth_family_name, field="birth_family_name")
        if (
            not isinstance(self.birth_given_names, tuple)
            or not self.birth_given_names
            or len(self.birth_given_names) > MAX_GIVEN_NAMES
        ):
            raise _error(
                "bad_given_names",
                f"birth_given_names: 1 to {MAX_GIVEN_NAMES} birth given names, in order.",
                f"birth_given_names : 1 à {MAX_GIVEN_NAMES} prénoms de naissance, dans l'ordre.",
            )
        for given in self.birth_given_names:
            _check_name(given, field="birth_given_names")
        if not isinstance(self.birth_date, date) or not (
            EARLIEST_BIRTH_DATE <= self.birth_date <= date.today()
        ):
            raise _error(
                "bad_birth_date",
                f"birth_date: a date between {EARLIEST_BIRTH_DATE.isoformat()} and today.",
                f"birth_date : une date entre le {EARLIEST_BIRTH_DATE.isoformat()} et aujourd'hui.",
            )
        if not isinstance(self.sex, Sex):
            raise _error("bad_sex", "sex: F, M or U.", "sex : F, M ou U.")
        if self.birthplace is not None and not (
            isinstance(self.birthplace, str) and _BIRTHPLACE.match(self.birthplace)
        ):
            raise _error(
                "bad_birthplace",
                "birthplace: the 5-character INSEE code of the birth commune (99xxx abroad).",
                "birthplace : le code INSEE à 5 caractères de la commune de naissance "
                "(99xxx à l'étranger).",
            )
        if self.used_family_name is not None:
            _check_name(self.used_family_name, field="used_family_name")
        if self.used_given_name is not None:
            _check_name(self.used_given_name, field="used_given_name")
        self._check_ins()

    def _check_ins(self) -> None:
        carried = self.matricule is not None or self.oid is not None
        if self.status != IdentityStatus.QUAL:
            if carried:
                raise _error(
                    "matricule_not_qualified",
                    f"A {self.status} identity does not carry a matricule INS: only a "
                    "qualified (QUAL) one does.",
                    f"Une identité {self.status} ne porte pas de matricule INS : seule une "
                    "identité qualifiée (QUAL) le porte.",
                )
            return
        if self.matricule is None or self.oid is None:
            raise _error(
                "matricule_missing",
                "A qualified (QUAL) identity carries its matricule INS and its OID.",
                "Une identité qualifiée (QUAL) porte son matricule INS et son OID.",
            )
        if not isinstance(self.oid, InsOid):
            raise _error(
                "bad_oid",
                "oid: 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) or .4.11 (demo).",
                "oid : 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) ou .4.11 (démo).",
            )
        check_matricule(self.matricule)
        if self.birthplace is None:
            raise _error(
                "bad_birthplace",
                "A qualified (QUAL) identity has the INSEE code of its birth place.",
                "Une identité qualifiée (QUAL) a le code INSEE de son lieu de naissance.",
            )

    # Derived values -------------------------------------------------------------------

    @property
    def first_birth_given_name(self) -> str:
        """The *premier prénom de naissance*: the first of the birth given names."""
        return self.birth_given_names[0]

    @property
    def birth_given_names_text(self) -> str:
        """Every birth given name, separated by single spaces, as INSi gives them."""
        return " ".join(self.birth_given_names)

    @property
    def is_qualified(self) -> bool:
        """True when the identity is qualified and so carries its matricule INS."""
        return self.status == IdentityStatus.QUAL

    @property
    def display_family_name(self) -> str:
        return self.used_family_name or self.birth_family_name

    @property
    def display_given_name(self) -> str:
        return self.used_given_name or self.first_birth_given_name

    def xds_patient_id(self) -> str | None:
        """The XDS ``patientId`` (HL7 v2 CX) of a qualified identity:
        ``<matricule>^^^&<oid>&ISO^NH``; None for an unqualified one."""
        if self.matricule is None or self.oid is None:
            return None
        return f"{self.matricule}^^^&{self.oid.value}&ISO^NH"

    # Canonical JSON ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "v": JSON_VERSION,
            "type": JSON_TYPE,
            "status": self.status.value,
            "birth_family_name": self.birth_family_name,
            "birth_given_names": list(self.birth_given_names),
            "birth_date": self.birth_date.isoformat(),
            "sex": self.sex.value,
        }
        optional = {
            "birthplace": self.birthplace,
            "used_family_name": self.used_family_name,
            "used_given_name": self.used_given_name,
            "matricule": self.matricule,
            "oid": self.oid.value if self.oid is not None else None,
        }
        value.update({key: item for key, item in optional.items() if item is not None})
        return value

    def to_json(self) -> str:
        """Canonical JSON: keys sorted, no whitespace, UTF-8 characters as they are."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, value: object) -> PatientIdentity:
        """Read the form ``to_dict`` gives, refusing unknown or missing fields."""
        if not isinstance(value, dict):
            raise _bad_json("an object is expected")
        required = {"v", "type", "status", "birth_family_name", "birth_given_names"}
        required |= {"birth_date", "sex"}
        optional = {"birthplace", "used_family_name", "used_given_name", "matricule", "oid"}
        keys = set(value)
        if keys - required - optional:
            raise _bad_json(f"unknown fields: {', '.join(sorted(keys - required - optional))}")
        if required - keys:
            raise _bad_json(f"missing fields: {', '.join(sorted(required - keys))}")
        if value["v"] != JSON_VERSION or value["type"] != JSON_TYPE:
            raise _bad_json(f'"v" is {JSON_VERSION} and "type" is "{JSON_TYPE}"')
        for key in keys - {"v", "birth_given_names"}:
            if not isinstance(value[key], str):
                raise _bad_json(f"{key} is a string")
        given = value["birth_given_names"]
        if not isinstance(given, list) or not all(isinstance(g, str) for g in given):
            raise _bad_json("birth_given_names is a list of strings")
        try:
            status = IdentityStatus(value["status"])
        except ValueError:
            raise _error(
                "bad_status",
                "The identity status is one of PROV, RECUP, VALI, QUAL.",
                "Le statut de l'identité est PROV, RECUP, VALI ou QUAL.",
            ) from None
        try:
            sex = Sex(value["sex"])
        except ValueError:
            raise _error("bad_sex", "sex: F, M or U.", "sex : F, M ou U.") from None
        try:
            born = date.fromisoformat(value["birth_date"])
        except ValueError:
            raise _error(
                "bad_birth_date", "birth_date: YYYY-MM-DD.", "birth_date : AAAA-MM-JJ."
            ) from None
        oid: InsOid | None = None
        if "oid" in value:
            try:
                oid = InsOid(value["oid"])
            except ValueError:
                raise _error(
                    "bad_oid",
                    "oid: 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) or .4.11 (demo).",
                    "oid : 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) ou .4.11 (démo).",
                ) from None
        return cls(
            status=status,
            birth_family_name=value["birth_family_name"],
            birth_given_names=tuple(given),
            birth_date=born,
            sex=sex,
            birthplace=value.get("birthplace"),
            used_family_name=value.get("used_family_name"),
            used_given_name=value.get("used_given_name"),
            matricule=value.get("matricule"),
            oid=oid,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PatientIdentity:
        """Read canonical JSON (at most 4 KiB); any other encoding of the same identity
        is refused, so one identity has exactly one form."""
        raw = text.encode("utf-8") if isinstance(text, str) else text
        if len(raw) > MAX_JSON_BYTES:
            raise _bad_json(f"at most {MAX_JSON_BYTES} bytes")
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _bad_json("not JSON") from None
        identity = cls.from_dict(value)
        if identity.to_json().encode("utf-8") != raw:
            raise _bad_json("not in canonical form (sorted keys, no spaces)")
        return identity


def _bad_json(detail: str) -> DocumentError:
    return _error(
        "bad_identity_json",
        f"Not a patient identity: {detail}.",
        f"Ce n'est pas une identité de patient : {detail}.",
    )
