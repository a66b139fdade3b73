"""IHE_XDM.ZIP: the exact layout, METADATA.XML parsed with lxml and checked field by
field against the files it describes (hash, size, URI, ids, codes, patient, authors),
the CDA documents checked, the photos unchanged, the same bytes on every build."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

import pytest
from lxml import etree

from archive.content import ArchivedMessage, ArchivedReport
from archive.errors import ArchiveError
from archive.metadata import APPROVED, HAS_MEMBER, NS, SUBMISSION_SET_NODE, Scheme
from archive.policy import DEFAULT_POLICY
from archive.transcript import build_transcript
from archive.xdm import build_xdm_zip
from documents.cda import IDNAT_PS_OID, TEMPLATE_IDS, check_cda
from documents.cda import NS as CDA_NS
from tests.archive.builders import (
    content,
    patient,
    photo_file,
    report,
    report_cda,
    report_pdf,
    unqualified_patient,
)

SUBSET = "IHE_XDM/SUBSET01/"


def transcript(archive) -> tuple[bytes, bytes]:
    documents = build_transcript(archive, DEFAULT_POLICY.choose(archive))
    assert documents.cda is not None
    return documents.pdf, documents.cda


def build(archive=None) -> bytes:
    archive = archive or content()
    pdf, cda = transcript(archive)
    return build_xdm_zip(archive, transcript_pdf=pdf, transcript_cda=cda)


def open_zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def metadata(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(open_zip(data).read(SUBSET + "METADATA.XML"), parser)


def xpath(element, path):
    return element.xpath(path, namespaces=NS)


def slot(element, name):
    return [v.text for v in xpath(element, f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value")]


def classification(element, scheme):
    (found,) = xpath(element, f"rim:Classification[@classificationScheme='{scheme}']")
    return found


def identifier(element, scheme):
    (found,) = xpath(element, f"rim:ExternalIdentifier[@identificationScheme='{scheme}']")
    return found.get("value")


def test_the_zip_has_the_exact_layout():
    names = open_zip(build()).namelist()
    assert names == [
        "README.TXT",
        "INDEX.HTM",
        "IHE_XDM/",
        "IHE_XDM/SUBSET01/",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/PJ000001.JPG",
        "IHE_XDM/SUBSET01/PJ000002.PDF",
    ]
    for name in names:
        leaf = name.rstrip("/").rsplit("/", 1)[-1]
        assert re.fullmatch(r"[A-Z0-9_]{1,8}(\.[A-Z0-9]{1,3})?", leaf), name


def test_readme_and_index_describe_the_archive():
    archive = open_zip(build())
    readme = archive.read("README.TXT").decode("utf-8")
    assert "Centre de santé des Pentes" in readme
    assert "Relais" in readme
    assert "DOC0001.XML" in readme
    assert "PJ000001.JPG\tIMG_2041.jpg" in readme
    index = etree.fromstring(archive.read("INDEX.HTM"), etree.XMLParser(no_network=True))
    links = index.xpath("//x:a/@href", namespaces={"x": "http://www.w3.org/1999/xhtml"})
    assert links == [
        "README.TXT",
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/PJ000001.JPG",
        "IHE_XDM/SUBSET01/PJ000002.PDF",
    ]


def test_every_document_has_its_entry_with_hash_size_and_uri():
    data = build()
    archive = open_zip(data)
    root = metadata(data)
    assert root.tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0}SubmitObjectsRequest"
    entries = xpath(root, "//rim:ExtrinsicObject")
    documents = [n for n in archive.namelist() if n.startswith(SUBSET) and n[-1] != "/"]
    documents.remove(SUBSET + "METADATA.XML")
    assert [slot(e, "URI")[0] for e in entries] == [n.removeprefix(SUBSET) for n in documents]
    for entry, name in zip(entries, documents, strict=True):
        body = archive.read(name)
        assert slot(entry, "hash") == [hashlib.sha1(body, usedforsecurity=False).hexdigest()]
        assert slot(entry, "size") == [str(len(body))]
        assert entry.get("status") == APPROVED
        assert entry.get("id").startswith("urn:uuid:")
        assert slot(entry, "languageCode") == ["fr-FR"]
        for scheme in (
            Scheme.CLASS_CODE,
            Scheme.TYPE_CODE,
            Scheme.FORMAT_CODE,
            Scheme.CONFIDENTIALITY,
            Scheme.FACILITY_TYPE,
            Scheme.PRACTICE_SETTING,
        ):
            assert classification(entry, scheme).get("nodeRepresentation")
        assert identifier(entry, Scheme.DOCUMENT_UNIQUE_ID)
    mimes = [e.get("mimeType") for e in entries]
    assert mimes == ["text/xml", "image/jpeg", "application/pdf"]


def test_the_transcript_entry_comes_from_its_cda_header():
    data = build()
    transcript = xpath(metadata(data), "//rim:ExtrinsicObject")[0]
    checked = check_cda(open_zip(data).read(SUBSET + "DOC0001.XML"))
    assert identifier(transcript, Scheme.DOCUMENT_UNIQUE_ID) == checked.document_id.root
    assert identifier(transcript, Scheme.DOCUMENT_PATIENT_ID) == (
        "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    )
    assert slot(transcript, "sourcePatientId") == ["279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"]
    assert slot(transcript, "sourcePatientInfo") == [
        "PID-5|PAT-TROIS^DOMINIQUE^^^^^L",
        "PID-7|19790328",
        "PID-8|F",
    ]
    assert slot(transcript, "creationTime") == ["20261202140000"]
    assert slot(transcript, "serviceStartTime") == ["20261202080000"]
    assert slot(transcript, "serviceStopTime") == ["20261202085000"]
    assert slot(transcript, "legalAuthenticator") == [
        "810001987659^DURAND^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    ]
    type_code = classification(transcript, Scheme.TYPE_CODE)
    assert type_code.get("nodeRepresentation") == checked.type_code == "11506-3"
    assert slot(type_code, "codingScheme") == ["2.16.840.1.113883.6.1"]
    assert classification(transcript, Scheme.CLASS_CODE).get("nodeRepresentation") == "10"
    assert classification(transcript, Scheme.FORMAT_CODE).get("nodeRepresentation") == (
        "urn:ihe:iti:xds-sd:pdf:2008"
    )
    assert classification(transcript, Scheme.FACILITY_TYPE).get("nodeRepresentation") == "SA05"
    assert classification(transcript, Scheme.PRACTICE_SETTING).get("nodeRepresentation") == (
        "AMBULATOIRE"
    )
    assert classification(transcript, Scheme.CONFIDENTIALITY).get("nodeRepresentation") == "N"
    authors = xpath(
        transcript, f"rim:Classification[@classificationScheme='{Scheme.DOCUMENT_AUTHOR}']"
    )
    people = [slot(a, "authorPerson")[0] for a in authors]
    assert people == [
        f"810003456786^MARTIN^Claire^^^^^^&{IDNAT_PS_OID}&ISO^D^^^IDNPS",
        f"810001987659^DURAND^Paul^^^^^^&{IDNAT_PS_OID}&ISO^D^^^IDNPS",
    ]
    assert slot(authors[0], "authorInstitution") == [
        "Centre de santé des Pentes^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000123"
    ]
    assert slot(authors[0], "authorSpecialty") == ["G15_60^Infirmier^1.2.250.1.213.1.1.4.5"]


def test_the_cda_carries_the_templates_the_ins_and_the_authors_rpps():
    cda = open_zip(build()).read(SUBSET + "DOC0001.XML")
    checked = check_cda(cda)
    assert checked.ins is not None
    assert (checked.ins.root, checked.ins.extension) == ("1.2.250.1.213.1.4.10", "279035121518989")
    assert checked.author_ids == ("810003456786", "810001987659")
    tree = etree.fromstring(cda, etree.XMLParser(huge_tree=True, no_network=True))
    templates = tree.xpath("/cda:ClinicalDocument/cda:templateId/@root", namespaces=CDA_NS)
    assert isinstance(templates, list)
    assert tuple(templates) == TEMPLATE_IDS
    assert checked.pdf.startswith(b"%PDF-")


def test_the_submission_set():
    root = metadata(build())
    (package,) = xpath(root, "//rim:RegistryPackage")
    set_id = package.get("id")
    assert set_id.startswith("urn:uuid:")
    assert slot(package, "submissionTime") == ["20261202140000"]
    assert slot(package, "intendedRecipient") == ["||^^Internet^dpi@chb.mssante.fr"]
    assert identifier(package, Scheme.SET_PATIENT_ID) == (
        "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    )
    assert identifier(package, Scheme.SET_SOURCE_ID).startswith("2.25.")
    assert identifier(package, Scheme.SET_UNIQUE_ID).startswith("2.25.")
    assert classification(package, Scheme.SET_CONTENT_TYPE).get("nodeRepresentation") == "11506-3"
    author = classification(package, Scheme.SET_AUTHOR)
    assert slot(author, "authorPerson")[0].startswith("810003456786^MARTIN")
    (node,) = xpath(
        root, f"rim:RegistryObjectList/rim:Classification[@classifiedObject='{set_id}']"
    )
    assert node.get("classificationNode") == SUBMISSION_SET_NODE
    associations = xpath(root, "//rim:Association")
    entries = [e.get("id") for e in xpath(root, "//rim:ExtrinsicObject")]
    assert [a.get("targetObject") for a in associations] == entries
    for association in associations:
        assert association.get("associationType") == HAS_MEMBER
        assert association.get("sourceObject") == set_id
        assert slot(association, "SubmissionSetStatus") == ["Original"]


def test_photos_are_the_bytes_that_were_sent():
    archive = content()
    data = build(archive)
    zipped = open_zip(data)
    sent = archive.files
    assert hashlib.sha256(zipped.read(SUBSET + "PJ000001.JPG")).hexdigest() == sent[0].sha256
    assert hashlib.sha256(zipped.read(SUBSET + "PJ000002.PDF")).hexdigest() == sent[1].sha256
    entry = xpath(metadata(data), "//rim:ExtrinsicObject")[1]
    assert entry.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS) == ["IMG_2041.jpg"]
    assert classification(entry, Scheme.FORMAT_CODE).get("nodeRepresentation") == (
        "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    )


def test_a_teleexpertise_report_is_its_own_document_typed_85208_7():
    archive = content(room_kind="teleexpertise", reports=(report(), report(with_cda=False)))
    data = build(archive)
    names = open_zip(data).namelist()
    assert names[5:8] == [SUBSET + "DOC0001.XML", SUBSET + "DOC0002.XML", SUBSET + "DOC0003.PDF"]
    entries = xpath(metadata(data), "//rim:ExtrinsicObject")
    types = [classification(e, Scheme.TYPE_CODE).get("nodeRepresentation") for e in entries]
    assert types[:3] == ["11488-4", "85208-7", "85208-7"]
    assert [e.get("mimeType") for e in entries[:3]] == ["text/xml", "text/xml", "application/pdf"]
    assert (
        identifier(entries[1], Scheme.DOCUMENT_UNIQUE_ID) == "2.25.111111111111111111111111111111"
    )
    assert check_cda(open_zip(data).read(SUBSET + "DOC0002.XML")).type_code == "85208-7"


def test_without_a_qualified_ins_nothing_carries_an_ins():
    data = build(content(patient=unqualified_patient()))
    cda = open_zip(data).read(SUBSET + "DOC0001.XML")
    assert check_cda(cda).ins is None
    assert b"279035121518989" not in cda
    transcript = xpath(metadata(data), "//rim:ExtrinsicObject")[0]
    patient_id = identifier(transcript, Scheme.DOCUMENT_PATIENT_ID)
    assert re.fullmatch(r"R42\^\^\^&2\.25\.\d+&ISO\^PI", patient_id)
    assert b"279035121518989" not in open_zip(data).read(SUBSET + "METADATA.XML")


def test_the_same_archive_gives_the_same_bytes():
    assert build() == build()
    other = build(content(last_seq=10))
    assert other != build()


def test_the_cda_must_embed_the_transcript_pdf():
    archive = content()
    _, cda = transcript(archive)
    with pytest.raises(ArchiveError) as caught:
        build_xdm_zip(archive, transcript_pdf=b"%PDF-other", transcript_cda=cda)
    assert caught.value.code == "cda_pdf_mismatch"


def test_a_room_without_a_patient_has_no_xdm():
    pdf, cda = transcript(content())
    with pytest.raises(ArchiveError) as caught:
        build_xdm_zip(content(patient=None), transcript_pdf=pdf, transcript_cda=cda)
    assert caught.value.code == "no_patient"


def test_non_ascii_names_stay_in_the_metadata_and_the_zip_names_are_8_3():
    files = (photo_file(5, "Plaie talon gauche été.jpg"), photo_file(6, "検査結果.jpg"))
    first = content().messages[0]
    archive = content(messages=(ArchivedMessage(3, first.sent_at, first.author, "", files),))
    data = build(archive)
    assert open_zip(data).namelist()[-2:] == [SUBSET + "PJ000001.JPG", SUBSET + "PJ000002.JPG"]
    titles = xpath(metadata(data), "//rim:ExtrinsicObject/rim:Name/rim:LocalizedString/@value")
    assert titles[1:] == ["Plaie talon gauche été.jpg", "検査結果.jpg"]


def test_a_report_entry_reads_its_authors_from_its_cda():
    data = build(content(room_kind="teleexpertise", reports=(report(),)))
    entry = xpath(metadata(data), "//rim:ExtrinsicObject")[1]
    (author,) = xpath(
        entry, f"rim:Classification[@classificationScheme='{Scheme.DOCUMENT_AUTHOR}']"
    )
    assert slot(author, "authorPerson") == [
        f"810001987659^DURAND^Paul^^^^^^&{IDNAT_PS_OID}&ISO^D^^^IDNPS"
    ]
    assert slot(author, "authorSpecialty")[0].startswith("G15_10/SM26^")
    assert slot(entry, "creationTime") == ["20261202100000"]


def test_a_report_about_another_patient_is_refused():
    pdf = report_pdf()
    other = patient(matricule="295109912611193", birth_family_name="AUTRE")
    stray = ArchivedReport(pdf=pdf, cda=report_cda(pdf, patient=other), title="CR")
    with pytest.raises(ArchiveError) as caught:
        build(content(room_kind="teleexpertise", reports=(stray,)))
    assert caught.value.code == "patient_mismatch"
