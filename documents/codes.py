"""Coded values from the CI-SIS value sets (``documents/valuesets``, IHE SVS files).

A ``Code`` is a code with its code system and display name, as CDA and XDS metadata
carry it. ``value_set(name)`` reads one of the published sets; ``code_in(name, code)``
gives the code as the set defines it, or refuses a code the set does not hold, so no
document is built with a code a receiver's validator would reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from lxml import etree

from documents.errors import DocumentError

VALUE_SETS: Final = Path(__file__).resolve().parent / "valuesets"
_SVS = "{urn:ihe:iti:svs:2008}"

LOINC: Final = "2.16.840.1.113883.6.1"
AUTHOR_SPECIALTY_SYSTEM: Final = "1.2.250.1.213.1.1.4.5"  # TRE_G15 profession / savoir-faire
FACILITY_TYPE_SYSTEM: Final = "1.2.250.1.71.4.2.4"  # secteur d'activité (SAxx)
PRACTICE_SETTING_SYSTEM: Final = "1.2.250.1.213.1.1.4.9"
CONFIDENTIALITY_SYSTEM: Final = "2.16.840.1.113883.5.25"
GENDER_SYSTEM: Final = "2.16.840.1.113883.5.1"

# The sets Relais uses, by short name.
SETS: Final = {
    "J01": "JDV_J01_XdsAuthorSpecialty_CISIS.xml",
    "J02": "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
    "J04": "JDV_J04_XdsPracticeSettingCode_CISIS.xml",
    "J07": "JDV_J07_XdsTypeCode_CISIS.xml",
    "J08": "JDV_J08_XdsConfidentialityCode_CISIS.xml",
    "J143": "JDV_J143_AdministrativeGender_CISIS.xml",
}


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    system: str
    display: str
    system_name: str | None = None


@cache
def value_set(name: str) -> dict[str, Code]:
    """The concepts of value set ``name`` (a key of ``SETS``), by code."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    tree = etree.parse(str(VALUE_SETS / SETS[name]), parser)
    concepts: dict[str, Code] = {}
    for concept in tree.iter(f"{_SVS}Concept"):
        code, system = concept.get("code"), concept.get("codeSystem")
        if code and system:
            system_name = "LOINC" if system == LOINC else None
            concepts[code] = Code(
                code=code,
                system=system,
                display=concept.get("displayName") or code,
                system_name=system_name,
            )
    return concepts


def code_in(name: str, code: str) -> Code:
    """``code`` as value set ``name`` defines it; DocumentError ``unknown_code`` if the set
    does not hold it."""
    found = value_set(name).get(code)
    if found is None:
        raise DocumentError(
            "unknown_code",
            f"{code!r} is not in the CI-SIS value set {name}.",
            f"{code!r} n'est pas dans le jeu de valeurs CI-SIS {name}.",
        )
    return found


def document_type(code: str) -> Code:
    """A document type (typeCode) of J07, e.g. ``85208-7`` "CR de télémédecine"."""
    return code_in("J07", code)


def author_specialty(profession_code: str, specialty_code: str | None = None) -> Code:
    """The author's profession, with the savoir-faire when J01 knows the pair, as J01
    codes it: ``G15_10/SM26`` (médecin qualifié en médecine générale), ``G15_60``
    (infirmier). A specialty J01 does not list falls back to the profession alone."""
    if specialty_code:
        found = value_set("J01").get(f"G15_{profession_code}/{specialty_code}")
        if found is not None:
            return found
    return code_in("J01", f"G15_{profession_code}")


NORMAL_CONFIDENTIALITY: Final = Code(
    code="N", system=CONFIDENTIALITY_SYSTEM, display="Normal", system_name="Confidentiality"
)
