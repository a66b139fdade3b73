"""CDA R2 niveau 1: the header element by element, valid against the CDA R2 schema, the
INS only for a qualified identity, and a checker that catches what a receiver refuses."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from documents import codes
from documents.cda import (
    HL7,
    IDNAT_PS_OID,
    TEMPLATE_IDS,
    CdaCheckError,
    InstanceId,
    build_cda,
    check_cda,
    parse_xml,
)
from documents.errors import DocumentError
from documents.ins import IdentityStatus
from tests.documents.samples import DOCTOR, NURSE, document, patient

NS = {"cda": HL7}


def xpath(tree, path):
    return tree.xpath(path, namespaces=NS)


def test_the_header_of_a_qualified_patient():
    built = document()
    xml = build_cda(built)
    checked = check_cda(xml)
    assert checked.type_code == "11506-3"
    assert checked.ins == InstanceId("1.2.250.1.213.1.4.10", "279035121518989")
    assert checked.author_ids == ("810003456786", "810001987659")
    assert checked.pdf == built.pdf
    tree = parse_xml(xml)
    root = "/cda:ClinicalDocument"
    assert xpath(tree, f"{root}/cda:realmCode/@code") == ["FR"]
    assert xpath(tree, f"{root}/cda:templateId/@root") == list(TEMPLATE_IDS)
    assert xpath(tree, f"{root}/cda:code/@displayName") == [
        "CR ou fiche de suivi de soins par auxiliaire médical"
    ]
    assert xpath(tree, f"{root}/cda:languageCode/@code") == ["fr-FR"]
    assert xpath(tree, f"{root}/cda:confidentialityCode/@code") == ["N"]
    assert xpath(tree, f"{root}/cda:versionNumber/@value") == ["1"]
    assert xpath(tree, f"{root}/cda:effectiveTime/@value") == ["20261202110500+0100"]
    name = f"{root}/cda:recordTarget/cda:patientRole/cda:patient/cda:name"
    assert [
        (e.tag.split("}")[1], e.get("qualifier"), e.text) for e in xpath(tree, f"{name}/*")
    ] == [
        ("family", "BR", "PAT-TROIS"),
        ("given", None, "DOMINIQUE MARIE-LOUISE"),
        ("given", "BR", "DOMINIQUE"),
        ("family", "CL", "PAT-TROIS"),
        ("given", "CL", "DOMI"),
    ]
    person = f"{root}/cda:recordTarget/cda:patientRole/cda:patient"
    assert xpath(tree, f"{person}/cda:administrativeGenderCode/@code") == ["F"]
    assert xpath(tree, f"{person}/cda:birthTime/@value") == ["19790328"]
    assert xpath(tree, f"{person}/cda:birthplace/cda:place/cda:addr/cda:county/text()") == ["51215"]
    author = f"{root}/cda:author/cda:assignedAuthor"
    assert xpath(tree, f"{author}/cda:id/@root") == [IDNAT_PS_OID, IDNAT_PS_OID]
    assert xpath(tree, f"{author}/cda:code/@code") == ["G15_60", "G15_10/SM26"]
    assert xpath(tree, f"{author}/cda:representedOrganization/cda:id/@extension") == [
        "1750000123",
        "1750000123",
    ]
    assert xpath(tree, f"{root}/cda:legalAuthenticator/cda:signatureCode/@code") == ["S"]
    assert xpath(tree, f"{root}/cda:legalAuthenticator/cda:assignedEntity/cda:id/@extension") == [
        DOCTOR.national_id
    ]
    event = f"{root}/cda:documentationOf/cda:serviceEvent"
    assert xpath(tree, f"{event}/cda:effectiveTime/cda:low/@value") == ["20261202093000+0100"]
    assert xpath(
        tree,
        f"{event}/cda:performer/cda:assignedEntity/cda:representedOrganization/"
        "cda:standardIndustryClassCode/@code",
    ) == ["AMBULATOIRE"]
    facility = (
        f"{root}/cda:componentOf/cda:encompassingEncounter/cda:location/cda:healthCareFacility"
    )
    assert xpath(tree, f"{facility}/cda:code/@code") == ["SA05"]
    body = xpath(tree, f"{root}/cda:component/cda:nonXMLBody/cda:text")[0]
    assert (body.get("mediaType"), body.get("representation")) == ("application/pdf", "B64")


@pytest.mark.parametrize("status", [IdentityStatus.PROV, IdentityStatus.VALI, IdentityStatus.RECUP])
def test_an_unqualified_patient_has_traits_and_no_ins(status):
    unqualified = patient(status=status, matricule=None, oid=None)
    xml = build_cda(document(patient=unqualified))
    checked = check_cda(xml)
    assert checked.ins is None
    tree = parse_xml(xml)
    ids = xpath(tree, "/cda:ClinicalDocument/cda:recordTarget/cda:patientRole/cda:id")
    assert [(i.get("root"), i.get("nullFlavor")) for i in ids] == [(None, "NI")]
    local = InstanceId("2.25.1234", "room-7")
    tree = parse_xml(build_cda(document(patient=unqualified, patient_local_id=local)))
    ids = xpath(tree, "/cda:ClinicalDocument/cda:recordTarget/cda:patientRole/cda:id")
    assert [(i.get("root"), i.get("extension")) for i in ids] == [("2.25.1234", "room-7")]
    assert xpath(tree, "//cda:family[@qualifier='BR']/text()") == ["PAT-TROIS"]


def test_unknown_sex_is_the_hl7_code_un():
    from documents.ins import Sex

    tree = parse_xml(build_cda(document(patient=patient(sex=Sex.U))))
    assert xpath(tree, "//cda:administrativeGenderCode/@code") == ["UN"]


def test_codes_come_from_the_ci_sis_value_sets():
    assert codes.document_type("85208-7").display == "CR de télémédecine"
    assert codes.document_type("75496-0").display == "Demande d'acte de télémédecine"
    assert codes.author_specialty("10", "SM26").code == "G15_10/SM26"
    assert codes.author_specialty("60", "SM99").code == "G15_60"  # unknown pair: profession
    with pytest.raises(DocumentError) as refused:
        codes.document_type("00000-0")
    assert refused.value.code == "unknown_code"
    with pytest.raises(DocumentError):
        codes.author_specialty("99")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"authors": []}, "no_author"),
        ({"pdf": b"GIF89a"}, "not_a_pdf"),
        ({"version": 0}, "bad_version"),
    ],
)
def test_the_builder_refuses_what_cannot_be_a_document(changes, code):
    with pytest.raises(DocumentError) as refused:
        document(**changes)
    assert refused.value.code == code


def test_naive_times_are_refused():
    from datetime import datetime

    with pytest.raises(DocumentError, match="UTC offset"):
        document(effective_time=datetime(2026, 12, 2, 10, 0))


def _edited(edit) -> bytes:
    tree = parse_xml(build_cda(document()))
    edit(tree)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def _remove(path):
    def edit(tree):
        for element in xpath(tree, path):
            element.getparent().remove(element)

    return edit


def _set(path, attribute, value):
    def edit(tree):
        for element in xpath(tree, path):
            element.set(attribute, value)

    return edit


def _text(path, value):
    def edit(tree):
        for element in xpath(tree, path):
            element.text = value

    return edit


def _move_title_last(tree):
    title = xpath(tree, "/cda:ClinicalDocument/cda:title")[0]
    root = tree.getroot()
    root.remove(title)
    root.append(title)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_remove("/cda:ClinicalDocument/cda:templateId[2]"), "templateId 1.2.250.1.213.1.1.1.1"),
        (_set("/cda:ClinicalDocument/cda:realmCode", "code", "DE"), "realmCode"),
        (_set("/cda:ClinicalDocument/cda:code", "code", "12345-6"), "J07"),
        (_set("//cda:patientRole/cda:id", "extension", "279035121518988"), "INS"),
        (_remove("//cda:patient/cda:birthTime"), "birth date"),
        (_set("//cda:assignedAuthor/cda:id", "root", "1.2.3"), "IdNat_PS"),
        (_text("//cda:nonXMLBody/cda:text", "not base64!"), "base64"),
        (_text("//cda:nonXMLBody/cda:text", base64.b64encode(b"GIF89a").decode()), "PDF"),
        (_remove("/cda:ClinicalDocument/cda:typeId"), "schema"),
        (_move_title_last, "schema"),
    ],
)
def test_the_checker_finds_each_problem(edit, expected):
    with pytest.raises(CdaCheckError) as refused:
        check_cda(_edited(edit))
    assert expected in refused.value.message
    assert refused.value.problems


def test_not_well_formed_xml_is_refused():
    with pytest.raises(CdaCheckError, match="well-formed"):
        check_cda(b"<ClinicalDocument")
    with pytest.raises(CdaCheckError, match="well-formed"):
        check_cda(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;&a;</x>' + b"<y/>")


def test_entities_are_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    xml = f'<!DOCTYPE d [<!ENTITY e SYSTEM "file://{secret}">]><d>&e;</d>'.encode()
    assert b"root:x" not in etree.tostring(parse_xml(xml))


def test_several_authors_keep_their_own_specialty():
    xml = build_cda(document())
    tree = parse_xml(xml)
    names = xpath(tree, "//cda:assignedAuthor/cda:assignedPerson/cda:name/cda:family/text()")
    assert names == [NURSE.family_name, DOCTOR.family_name]
