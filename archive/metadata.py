"""XDS metadata (ebRIM 3.0) of an IHE XDM submission set: ``METADATA.XML``.

One ``SubmitObjectsRequest`` holding the submission set (``RegistryPackage``) and one
document entry (``ExtrinsicObject``) per file of ``IHE_XDM/SUBSET01``, each tied to the
set by a ``HasMember`` association. The UUIDs of the classification and identification
schemes are the IHE ITI TF-3 §4.2.5 constants. Which value each field takes, and from
where, is in docs/archive.md ("METADATA.XML").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from lxml import etree

from documents.codes import Code

LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS: Final = {"lcm": LCM, "rim": RIM}

DOCUMENT_ENTRY_TYPE: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
APPROVED: Final = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
_OBJECT_TYPE: Final = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
CLASSIFICATION_TYPE: Final = _OBJECT_TYPE + "Classification"


class Scheme:
    """Classification and external-identifier schemes (IHE ITI TF-3 §4.2.5)."""

    DOCUMENT_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
    CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
    CONFIDENTIALITY: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
    EVENT_CODE: Final = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
    FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
    FACILITY_TYPE: Final = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
    PRACTICE_SETTING: Final = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
    TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
    DOCUMENT_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
    DOCUMENT_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
    SET_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
    SET_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
    SET_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
    SET_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
    SET_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"


@dataclass(frozen=True, slots=True)
class XdsAuthor:
    """An author as XDS writes it: ``person`` and ``institution`` are HL7 v2 XCN and XON,
    ``specialty`` the J01 code of their profession."""

    person: str
    institution: str
    specialty: Code


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One document of the subset, with every field of its XDS "fiche"."""

    entry_uuid: str
    uri: str
    mime_type: str
    hash_sha1: str
    size: int
    title: str
    unique_id: str
    patient_id: str
    source_patient_id: str
    source_patient_info: tuple[str, ...]
    creation_time: datetime
    service_start: datetime
    service_stop: datetime
    authors: tuple[XdsAuthor, ...]
    legal_authenticator: str | None
    class_code: Code
    type_code: Code
    format_code: Code
    confidentiality: Code
    facility_type: Code
    practice_setting: Code
    comments: str | None = None


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """The "lot de soumission": who sends what for which patient, when."""

    entry_uuid: str
    unique_id: str
    source_id: str
    patient_id: str
    submission_time: datetime
    title: str
    author: XdsAuthor
    content_type: Code
    intended_recipients: tuple[str, ...]


def xds_time(moment: datetime) -> str:
    """An XDS DTM in UTC: ``YYYYMMDDhhmmss``."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


class _Builder:
    def __init__(self) -> None:
        self.counter = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:02d}"

    @staticmethod
    def element(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{RIM}}}{tag}", attributes)

    def slot(self, parent: etree._Element, name: str, values: Sequence[str]) -> None:
        slot = self.element(parent, "Slot", name=name)
        value_list = self.element(slot, "ValueList")
        for value in values:
            self.element(value_list, "Value").text = value

    def name(self, parent: etree._Element, text: str) -> None:
        name = self.element(parent, "Name")
        self.element(name, "LocalizedString", value=text)

    def classification(
        self, parent: etree._Element, scheme: str, owner: str, node: str
    ) -> etree._Element:
        return self.element(
            parent,
            "Classification",
            classificationScheme=scheme,
            classifiedObject=owner,
            id=self.next_id("cl"),
            nodeRepresentation=node,
            objectType=CLASSIFICATION_TYPE,
        )

    def code(self, parent: etree._Element, scheme: str, owner: str, code: Code) -> etree._Element:
        classification = self.classification(parent, scheme, owner, code.code)
        self.slot(classification, "codingScheme", [code.system])
        self.name(classification, code.display)
        return classification

    def author(self, parent: etree._Element, scheme: str, owner: str, author: XdsAuthor) -> None:
        classification = self.classification(parent, scheme, owner, "")
        self.slot(classification, "authorPerson", [author.person])
        self.slot(classification, "authorInstitution", [author.institution])
        specialty = author.specialty
        self.slot(
            classification,
            "authorSpecialty",
            [f"{specialty.code}^{specialty.display}^{specialty.system}"],
        )

    def identifier(
        self, parent: etree._Element, scheme: str, owner: str, value: str, label: str
    ) -> None:
        identifier = self.element(
            parent,
            "ExternalIdentifier",
            identificationScheme=scheme,
            registryObject=owner,
            id=self.next_id("ei"),
            value=value,
            objectType=_OBJECT_TYPE + "ExternalIdentifier",
        )
        self.name(identifier, label)


def build_metadata(submission: SubmissionSet, documents: Sequence[DocumentEntry]) -> bytes:
    """``METADATA.XML`` for ``submission`` and its ``documents``, UTF-8 with a declaration."""
    b = _Builder()
    root = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(root, f"{{{RIM}}}RegistryObjectList")
    set_id = submission.entry_uuid

    for document in documents:
        doc_id = document.entry_uuid
        entry = b.element(
            objects,
            "ExtrinsicObject",
            id=doc_id,
            lid=doc_id,
            mimeType=document.mime_type,
            objectType=DOCUMENT_ENTRY_TYPE,
            status=APPROVED,
        )
        b.slot(entry, "creationTime", [xds_time(document.creation_time)])
        b.slot(entry, "hash", [document.hash_sha1])
        b.slot(entry, "languageCode", ["fr-FR"])
        if document.legal_authenticator is not None:
            b.slot(entry, "legalAuthenticator", [document.legal_authenticator])
        b.slot(entry, "serviceStartTime", [xds_time(document.service_start)])
        b.slot(entry, "serviceStopTime", [xds_time(document.service_stop)])
        b.slot(entry, "size", [str(document.size)])
        b.slot(entry, "sourcePatientId", [document.source_patient_id])
        b.slot(entry, "sourcePatientInfo", list(document.source_patient_info))
        b.slot(entry, "URI", [document.uri])
        b.name(entry, document.title)
        if document.comments:
            description = b.element(entry, "Description")
            b.element(description, "LocalizedString", value=document.comments)
        for author in document.authors:
            b.author(entry, Scheme.DOCUMENT_AUTHOR, doc_id, author)
        b.code(entry, Scheme.CLASS_CODE, doc_id, document.class_code)
        b.code(entry, Scheme.CONFIDENTIALITY, doc_id, document.confidentiality)
        b.code(entry, Scheme.FORMAT_CODE, doc_id, document.format_code)
        b.code(entry, Scheme.FACILITY_TYPE, doc_id, document.facility_type)
        b.code(entry, Scheme.PRACTICE_SETTING, doc_id, document.practice_setting)
        b.code(entry, Scheme.TYPE_CODE, doc_id, document.type_code)
        b.identifier(
            entry,
            Scheme.DOCUMENT_PATIENT_ID,
            doc_id,
            document.patient_id,
            "XDSDocumentEntry.patientId",
        )
        b.identifier(
            entry,
            Scheme.DOCUMENT_UNIQUE_ID,
            doc_id,
            document.unique_id,
            "XDSDocumentEntry.uniqueId",
        )

    package = b.element(objects, "RegistryPackage", id=set_id, lid=set_id, status=APPROVED)
    b.slot(package, "submissionTime", [xds_time(submission.submission_time)])
    if submission.intended_recipients:
        b.slot(
            package,
            "intendedRecipient",
            [f"||^^Internet^{address}" for address in submission.intended_recipients],
        )
    b.name(package, submission.title)
    b.author(package, Scheme.SET_AUTHOR, set_id, submission.author)
    b.code(package, Scheme.SET_CONTENT_TYPE, set_id, submission.content_type)
    b.identifier(
        package, Scheme.SET_UNIQUE_ID, set_id, submission.unique_id, "XDSSubmissionSet.uniqueId"
    )
    b.identifier(
        package, Scheme.SET_SOURCE_ID, set_id, submission.source_id, "XDSSubmissionSet.sourceId"
    )
    b.identifier(
        package,
        Scheme.SET_PATIENT_ID,
        set_id,
        submission.patient_id,
        "XDSSubmissionSet.patientId",
    )
    b.element(
        objects,
        "Classification",
        classifiedObject=set_id,
        classificationNode=SUBMISSION_SET_NODE,
        id=b.next_id("cl"),
        objectType=CLASSIFICATION_TYPE,
    )
    for index, document in enumerate(documents, start=1):
        association = b.element(
            objects,
            "Association",
            associationType=HAS_MEMBER,
            sourceObject=set_id,
            targetObject=document.entry_uuid,
            id=f"as{index:02d}",
            objectType=_OBJECT_TYPE + "Association",
        )
        b.slot(association, "SubmissionSetStatus", ["Original"])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
