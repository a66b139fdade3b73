"""CDA R2 niveau 1 documents: a PDF in the CI-SIS "structuration minimale" header.

``build_cda`` writes the header the CI-SIS requires (the ANS example
``DOC_NON_STRUCTURE_CDA-R2-N1.xml`` of ``ansforge/TestContenuCDA-3-0`` is the model,
element for element) and embeds the PDF as ``nonXMLBody/text`` in base64:

* ``realmCode FR``, ``typeId`` POCD_HD000040, the three templateIds (HL7 France, CI-SIS,
  IHE XDS-SD), ``id``, ``code`` (document type from J07), ``title``, ``effectiveTime``,
  ``confidentialityCode``, ``languageCode fr-FR``, ``setId`` and ``versionNumber``;
* ``recordTarget``: the INS (``id`` rooted at its OID) only for a qualified identity,
  the strict traits always (birth family name and given names qualified ``BR``, used
  names ``CL``), sex, birth date, INSEE code of the birth place;
* ``author`` for each professional (IdNat_PS under 1.2.250.1.71.4.2.1, profession and
  specialty from J01, the organisation under 1.2.250.1.71.4.2.2), ``custodian``,
  ``legalAuthenticator``, ``documentationOf/serviceEvent`` (with the practice setting)
  and ``componentOf/encompassingEncounter`` (with the type of care setting).

``check_cda`` is the checker the tests use on every document: well-formed, valid against
the CDA R2 schema (``documents/schemas``), the templateIds, a type code of J07, a valid
INS under an INS OID when one is carried, authors identified by IdNat_PS, and a base64
body that decodes to a PDF.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, cast

from lxml import etree

from documents import codes
from documents.codes import Code
from documents.errors import DocumentError
from documents.ins import InsOid, PatientIdentity, Sex, check_matricule

HL7: Final = "urn:hl7-org:v3"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
NS: Final = {"cda": HL7}
TEMPLATE_IDS: Final = (
    "2.16.840.1.113883.2.8.2.1",  # HL7 France
    "1.2.250.1.213.1.1.1.1",  # CI-SIS
    "1.3.6.1.4.1.19376.1.2.20",  # IHE XDS-SD (scanned document: a PDF body)
)
TYPE_ID_ROOT: Final = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION: Final = "POCD_HD000040"
IDNAT_PS_OID: Final = "1.2.250.1.71.4.2.1"  # national id of a health professional
IDNAT_STRUCT_OID: Final = "1.2.250.1.71.4.2.2"  # national id of a structure
INS_OIDS: Final = frozenset(oid.value for oid in InsOid)
SCHEMA: Final = Path(__file__).resolve().parent / "schemas" / "cda" / "CDA_extended.xsd"
MAX_CDA_BYTES: Final = 200 * 1024 * 1024
_GENDER: Final = {Sex.F: "F", Sex.M: "M", Sex.U: "UN"}


@dataclass(frozen=True, slots=True)
class InstanceId:
    """An HL7 II: an OID root and an optional extension."""

    root: str
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Organisation:
    """A structure: its IdNat_Struct and its name."""

    national_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Professional:
    """A health professional: IdNat_PS (``8`` + RPPS or ``0`` + ADELI), names, the
    TRE_G15 profession code and the savoir-faire (specialty) code when known."""

    national_id: str
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None = None
    organisation: Organisation | None = None

    @property
    def specialty(self) -> Code:
        return codes.author_specialty(self.profession_code, self.specialty_code)


@dataclass(frozen=True, slots=True)
class Author:
    """A professional who wrote part of the document, and when (their last part)."""

    professional: Professional
    time: datetime


@dataclass(frozen=True, slots=True)
class CdaDocument:
    """Everything a CDA R2 niveau 1 header needs, and the PDF it carries."""

    document_id: InstanceId
    set_id: InstanceId
    version: int
    type_code: Code
    title: str
    effective_time: datetime
    patient: PatientIdentity
    authors: Sequence[Author]
    custodian: Organisation
    legal_authenticator: Professional
    legal_authentication_time: datetime
    service_start: datetime
    service_end: datetime
    practice_setting: Code
    facility_type: Code
    pdf: bytes
    patient_local_id: InstanceId | None = None
    service_code: Code | None = None
    confidentiality: Code = field(default=codes.NORMAL_CONFIDENTIALITY)

    def __post_init__(self) -> None:
        if not self.authors:
            raise DocumentError(
                "no_author",
                "A CDA document has at least one author.",
                "Un document CDA a au moins un auteur.",
            )
        if not self.pdf.startswith(b"%PDF-"):
            raise DocumentError(
                "not_a_pdf",
                "The body of a CDA niveau 1 here is a PDF.",
                "Le corps d'un CDA niveau 1 est ici un PDF.",
            )
        if self.version < 1:
            raise DocumentError(
                "bad_version",
                "versionNumber is a positive integer.",
                "versionNumber est un entier positif.",
            )
        for moment in (self.effective_time, self.service_start, self.service_end):
            if moment.tzinfo is None:
                raise DocumentError(
                    "naive_time",
                    "CDA times carry their UTC offset: give aware datetimes.",
                    "Les heures CDA portent leur décalage UTC : donnez des datetime avec fuseau.",
                )


def cda_time(moment: datetime) -> str:
    """An HL7 TS with its offset: ``20210401134745+0100``."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def cda_date(day: date) -> str:
    return day.strftime("%Y%m%d")


class _Writer:
    """Small helpers over lxml's SubElement in the HL7 namespace."""

    @staticmethod
    def add(
        parent: etree._Element, tag: str, text: str | None = None, **attributes: str
    ) -> etree._Element:
        element = etree.SubElement(parent, f"{{{HL7}}}{tag}")
        for key, value in attributes.items():
            element.set(key.rstrip("_"), value)
        if text is not None:
            element.text = text
        return element

    @classmethod
    def code(cls, parent: etree._Element, tag: str, value: Code) -> etree._Element:
        attributes = {"code": value.code, "displayName": value.display, "codeSystem": value.system}
        if value.system_name:
            attributes["codeSystemName"] = value.system_name
        return cls.add(parent, tag, **attributes)

    @classmethod
    def ii(cls, parent: etree._Element, value: InstanceId, tag: str = "id") -> etree._Element:
        if value.extension is None:
            return cls.add(parent, tag, root=value.root)
        return cls.add(parent, tag, root=value.root, extension=value.extension)

    @classmethod
    def person_name(cls, parent: etree._Element, professional: Professional) -> None:
        name = cls.add(parent, "name")
        cls.add(name, "given", professional.given_name)
        cls.add(name, "family", professional.family_name)

    @classmethod
    def organisation(
        cls, parent: etree._Element, tag: str, organisation: Organisation
    ) -> etree._Element:
        element = cls.add(parent, tag)
        cls.ii(element, InstanceId(IDNAT_STRUCT_OID, organisation.national_id))
        cls.add(element, "name", organisation.name)
        return element


_w = _Writer


def _record_target(root: etree._Element, document: CdaDocument) -> None:
    patient = document.patient
    role = _w.add(_w.add(root, "recordTarget"), "patientRole")
    if patient.is_qualified and patient.matricule and patient.oid:
        _w.ii(role, InstanceId(patient.oid.value, patient.matricule))
    if document.patient_local_id is not None:
        _w.ii(role, document.patient_local_id)
    if len(role) == 0:
        _w.add(role, "id", nullFlavor="NI")  # no qualified INS and no local id
    person = _w.add(role, "patient", classCode="PSN")
    name = _w.add(person, "name")
    _w.add(name, "family", patient.birth_family_name, qualifier="BR")
    _w.add(name, "given", patient.birth_given_names_text)
    _w.add(name, "given", patient.first_birth_given_name, qualifier="BR")
    if patient.used_family_name:
        _w.add(name, "family", patient.used_family_name, qualifier="CL")
    if patient.used_given_name:
        _w.add(name, "given", patient.used_given_name, qualifier="CL")
    gender = codes.code_in("J143", _GENDER[patient.sex])
    _w.add(
        person,
        "administrativeGenderCode",
        code=gender.code,
        displayName=gender.display,
        codeSystem=gender.system,
    )
    _w.add(person, "birthTime", value=cda_date(patient.birth_date))
    if patient.birthplace:
        address = _w.add(_w.add(_w.add(person, "birthplace"), "place"), "addr")
        _w.add(address, "county", patient.birthplace)


def _author(root: etree._Element, author: Author, fallback: Organisation) -> None:
    professional = author.professional
    element = _w.add(root, "author")
    _w.add(element, "time", value=cda_time(author.time))
    assigned = _w.add(element, "assignedAuthor")
    _w.ii(assigned, InstanceId(IDNAT_PS_OID, professional.national_id))
    _w.code(assigned, "code", professional.specialty)
    _w.person_name(_w.add(assigned, "assignedPerson"), professional)
    _w.organisation(assigned, "representedOrganization", professional.organisation or fallback)


def build_cda(document: CdaDocument) -> bytes:
    """The CDA R2 niveau 1 document as UTF-8 XML bytes (with its declaration)."""
    namespaces: dict[str | None, str] = {None: HL7, "xsi": XSI}
    root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap=namespaces)  # type: ignore[arg-type]
    _w.add(root, "realmCode", code="FR")
    _w.add(root, "typeId", root=TYPE_ID_ROOT, extension=TYPE_ID_EXTENSION)
    for template in TEMPLATE_IDS:
        _w.add(root, "templateId", root=template)
    _w.ii(root, document.document_id)
    _w.code(root, "code", document.type_code)
    _w.add(root, "title", document.title)
    _w.add(root, "effectiveTime", value=cda_time(document.effective_time))
    _w.code(root, "confidentialityCode", document.confidentiality)
    _w.add(root, "languageCode", code="fr-FR")
    _w.ii(root, document.set_id, tag="setId")
    _w.add(root, "versionNumber", value=str(document.version))
    _record_target(root, document)
    for author in document.authors:
        _author(root, author, document.custodian)
    custodian = _w.add(_w.add(root, "custodian"), "assignedCustodian")
    _w.organisation(custodian, "representedCustodianOrganization", document.custodian)

    legal = _w.add(root, "legalAuthenticator")
    _w.add(legal, "time", value=cda_time(document.legal_authentication_time))
    _w.add(legal, "signatureCode", code="S")
    entity = _w.add(legal, "assignedEntity")
    _w.ii(entity, InstanceId(IDNAT_PS_OID, document.legal_authenticator.national_id))
    _w.person_name(_w.add(entity, "assignedPerson"), document.legal_authenticator)

    event = _w.add(_w.add(root, "documentationOf"), "serviceEvent")
    if document.service_code is not None:
        _w.code(event, "code", document.service_code)
    period = _w.add(event, "effectiveTime")
    _w.add(period, "low", value=cda_time(document.service_start))
    _w.add(period, "high", value=cda_time(document.service_end))
    performer = _w.add(event, "performer", typeCode="PRF")
    performing = _w.add(performer, "assignedEntity")
    _w.ii(performing, InstanceId(IDNAT_PS_OID, document.legal_authenticator.national_id))
    _w.person_name(_w.add(performing, "assignedPerson"), document.legal_authenticator)
    organisation = _w.organisation(
        performing,
        "representedOrganization",
        document.legal_authenticator.organisation or document.custodian,
    )
    _w.code(organisation, "standardIndustryClassCode", document.practice_setting)

    encounter = _w.add(_w.add(root, "componentOf"), "encompassingEncounter")
    encounter_period = _w.add(encounter, "effectiveTime")
    _w.add(encounter_period, "low", value=cda_time(document.service_start))
    _w.add(encounter_period, "high", value=cda_time(document.service_end))
    facility = _w.add(_w.add(encounter, "location"), "healthCareFacility")
    _w.ii(facility, InstanceId(IDNAT_STRUCT_OID, document.custodian.national_id))
    _w.code(facility, "code", document.facility_type)

    body = _w.add(_w.add(root, "component"), "nonXMLBody")
    _w.add(
        body,
        "text",
        base64.b64encode(document.pdf).decode("ascii"),
        mediaType="application/pdf",
        representation="B64",
    )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


# Checking ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedCda:
    """What ``check_cda`` read from a valid document."""

    document_id: InstanceId
    type_code: str
    title: str
    ins: InstanceId | None
    author_ids: tuple[str, ...]
    pdf: bytes


class CdaCheckError(DocumentError):
    """The document fails one or more checks; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "bad_cda",
            "The CDA document is not valid: " + "; ".join(problems),
            "Le document CDA n'est pas valide : " + "; ".join(problems),
        )
        self.problems = problems


@cache
def cda_schema() -> etree.XMLSchema:
    """The CDA R2 schema with the French extensions, read once."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(SCHEMA), parser))


def parse_xml(data: bytes) -> etree._ElementTree:
    """Parse without entities or network access; big text nodes allowed (a PDF in
    base64 passes libxml2's 10 MB default)."""
    if len(data) > MAX_CDA_BYTES:
        raise CdaCheckError([f"larger than {MAX_CDA_BYTES} bytes"])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        return etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as error:
        raise CdaCheckError([f"not well-formed XML: {error}"]) from None


def _first(tree: etree._ElementTree, path: str) -> etree._Element | None:
    found = tree.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    element = found[0] if found else None
    return element if isinstance(element, etree._Element) else None


def _all(tree: etree._ElementTree, path: str) -> list[etree._Element]:
    found = tree.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def check_cda(data: bytes) -> CheckedCda:
    """Check a CDA R2 niveau 1 document; CdaCheckError listing every problem found."""
    tree = parse_xml(data)
    schema = cda_schema()
    problems = (
        [f"schema: line {e.line}: {e.message}" for e in cast("Iterable[Any]", schema.error_log)]
        if not schema.validate(tree)
        else []
    )
    root = tree.getroot()
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        raise CdaCheckError([*problems, "the root is not ClinicalDocument"])
    if _first(tree, "/cda:ClinicalDocument/cda:realmCode[@code='FR']") is None:
        problems.append("realmCode is not FR")
    type_id = _first(tree, "/cda:ClinicalDocument/cda:typeId")
    if type_id is None or (type_id.get("root"), type_id.get("extension")) != (
        TYPE_ID_ROOT,
        TYPE_ID_EXTENSION,
    ):
        problems.append("typeId is not 2.16.840.1.113883.1.3 / POCD_HD000040")
    templates = [e.get("root") for e in _all(tree, "/cda:ClinicalDocument/cda:templateId")]
    for template in TEMPLATE_IDS:
        if template not in templates:
            problems.append(f"templateId {template} is missing")
    if _first(tree, "/cda:ClinicalDocument/cda:languageCode[@code='fr-FR']") is None:
        problems.append("languageCode is not fr-FR")
    code = _first(tree, "/cda:ClinicalDocument/cda:code")
    type_code = code.get("code", "") if code is not None else ""
    if type_code not in codes.value_set("J07") or (
        code is not None and code.get("codeSystem") != codes.LOINC
    ):
        problems.append(f"code {type_code!r} is not a J07 document type")
    ins = _check_ins(tree, problems)
    author_ids = []
    for author in _all(tree, "/cda:ClinicalDocument/cda:author/cda:assignedAuthor/cda:id"):
        if author.get("root") != IDNAT_PS_OID or not author.get("extension"):
            problems.append("an author is not identified by an IdNat_PS (1.2.250.1.71.4.2.1)")
        else:
            author_ids.append(author.get("extension", ""))
    if not author_ids:
        problems.append("no author")
    pdf = _check_body(tree, problems)
    document_id = _first(tree, "/cda:ClinicalDocument/cda:id")
    title = _first(tree, "/cda:ClinicalDocument/cda:title")
    if problems:
        raise CdaCheckError(problems)
    assert document_id is not None
    return CheckedCda(
        document_id=InstanceId(document_id.get("root", ""), document_id.get("extension")),
        type_code=type_code,
        title=(title.text or "") if title is not None else "",
        ins=ins,
        author_ids=tuple(author_ids),
        pdf=pdf,
    )


def _check_ins(tree: etree._ElementTree, problems: list[str]) -> InstanceId | None:
    ids = _all(tree, "/cda:ClinicalDocument/cda:recordTarget/cda:patientRole/cda:id")
    carried = [i for i in ids if i.get("root") in INS_OIDS]
    if not carried:
        return None
    if len(carried) > 1:
        problems.append("more than one INS in recordTarget")
    oid, matricule = carried[0].get("root", ""), carried[0].get("extension", "")
    try:
        check_matricule(matricule)
    except DocumentError as error:
        problems.append(f"the INS under {oid} is invalid: {error.message}")
    name = "/cda:ClinicalDocument/cda:recordTarget/cda:patientRole/cda:patient"
    for trait, path in (
        ("birth family name", f"{name}/cda:name/cda:family[@qualifier='BR']"),
        ("first birth given name", f"{name}/cda:name/cda:given[@qualifier='BR']"),
        ("sex", f"{name}/cda:administrativeGenderCode"),
        ("birth date", f"{name}/cda:birthTime"),
    ):
        if _first(tree, path) is None:
            problems.append(f"an INS is carried without the {trait}")
    return InstanceId(oid, matricule)


def _check_body(tree: etree._ElementTree, problems: list[str]) -> bytes:
    text = _first(tree, "/cda:ClinicalDocument/cda:component/cda:nonXMLBody/cda:text")
    if text is None:
        problems.append("no nonXMLBody/text")
        return b""
    if (text.get("mediaType"), text.get("representation")) != ("application/pdf", "B64"):
        problems.append('nonXMLBody/text is not mediaType="application/pdf" representation="B64"')
    try:
        pdf = base64.b64decode("".join((text.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        problems.append("nonXMLBody/text is not base64")
        return b""
    if not pdf.startswith(b"%PDF-"):
        problems.append("nonXMLBody/text does not decode to a PDF")
    return pdf
