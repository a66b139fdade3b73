"""The request's own documents from the browser (docs/protocol.md §12.8): when a
structure keeps them (the room names its organisation's archiver), the request a nurse
sends from the browser carries its PDF and its CDA 75496-0, written in the browser, as
the SDK's request does. The doctor's SDK downloads both and checks them as the SDK's own
are checked, and the organisation's archiver keeps the same files. Without an archiver
the request carries none, as the SDK's without a structure, and the PDF writer is never
loaded. A request whose call fails leaves neither its photo nor its documents on the
server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lxml import etree
from playwright.async_api import Page, expect
from playwright.async_api import Request as PlaywrightRequest

from client.teleexpertise.contents import Request
from client.teleexpertise.report import request_documents
from documents.cda import NS, Organisation, check_cda
from tests.e2e.teleexpertise_helpers import (
    DOCTOR,
    NURSE,
    ORGANISATION,
    ORGANISATION_NAME,
    archiver_client,
    next_event,
    plaintext_found,
    te_client,
)
from tests.e2e.test_archiver import create_archiver
from tests.teleexpertise.test_documents import pdf_text, render_first_page
from tests.web.teleexpertise_pages import (
    PHOTO,
    QUESTION,
    REASON,
    fill_request,
    open_teleexpertise,
    request_call_unavailable,
    skeleton,
    uploads_of,
)

pytestmark = pytest.mark.e2e

KEEPER = Organisation("1750000123", ORGANISATION_NAME)
WRITERS = ("/chunks/pdf-", "/chunks/cda-")  # the lazily loaded PDF and CDA writers


def writers_loaded(page: Page) -> list[str]:
    """The PDF and CDA writer chunks the page fetches from now on (a list that grows)."""
    loaded: list[str] = []

    def seen(request: PlaywrightRequest) -> None:
        if any(writer in request.url for writer in WRITERS):
            loaded.append(request.url)

    page.on("request", seen)
    return loaded


def cda_time(iso: str) -> str:
    """2026-03-14T10:00:00+00:00 as the CDA writes it: 20260314100000+0000."""
    return iso[:19].replace("-", "").replace("T", "").replace(":", "") + "+0000"


async def test_a_request_from_the_browser_carries_its_pdf_and_cda(
    app_page, web_server, server_env, tmp_path
):
    token_file = tmp_path / "archiver.json"
    await asyncio.to_thread(create_archiver, server_env, token_file)
    archiver, archiver_te = await archiver_client(web_server, tmp_path, token_file)
    nurse = await app_page(NURSE)
    loaded = writers_loaded(nurse)
    doctor, doctor_te = await te_client(web_server, tmp_path, DOCTOR, "doctor")
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await nurse.get_by_label("Organisme qui archive le salon").fill(ORGANISATION)
        assert loaded == []  # the screen and its form come without the writers
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-state")).to_have_text("demandée")
        assert sorted(url.split("/chunks/")[1].split("-")[0] for url in loaded) == ["cda", "pdf"]

        # The doctor's SDK: the request, verified, with its photo and its two documents,
        # each downloaded and checked against its descriptor's SHA-256.
        async with asyncio.timeout(20):
            room = await doctor.wait_for_room(lambda r: r.state.kind == "teleexpertise")
        got = await next_event(doctor_te)
        request = got.event
        assert isinstance(request, Request)
        assert (got.room_id, got.sender) == (room, NURSE)
        (photo,) = request.attachments
        assert [(d.name, d.mime) for d in request.documents] == [
            ("demande-teleexpertise.pdf", "application/pdf"),
            ("demande-teleexpertise.xml", "application/xml"),
        ]
        pdf, cda = [
            (await doctor.save_attachment(d, tmp_path / "doctor")).read_bytes()
            for d in request.documents
        ]
        assert [d.size for d in request.documents] == [len(pdf), len(cda)]

        # The nurse downloads her request's PDF from the case: the same file.
        async with nurse.expect_download() as waiting:
            await nurse.locator("#te-download-request-pdf").click()
        download = await waiting.value
        assert download.suggested_filename == "demande-teleexpertise.pdf"
        assert await asyncio.to_thread(Path(await download.path()).read_bytes) == pdf

        # The organisation's archiver reads the request and keeps the same documents.
        await archiver.connect()
        archived = await next_event(archiver_te)
        assert isinstance(archived.event, Request)
        assert archived.event.documents == request.documents
        kept = [
            (await archiver.save_attachment(d, tmp_path / "archive")).read_bytes()
            for d in archived.event.documents
        ]
        assert kept == [pdf, cda]
    finally:
        await doctor.close()
        await archiver.close()

    # The CDA passes the checks the SDK's own 75496-0 passes (the CDA R2 schema with the
    # French extensions, templateIds, J07 type, INS, IdNat_PS, the PDF as its body).
    checked = check_cda(cda)
    assert (checked.type_code, checked.title) == ("75496-0", "Demande de téléexpertise")
    assert checked.ins is not None
    assert (checked.ins.root, checked.ins.extension) == ("1.2.250.1.213.1.4.10", "279035121518989")
    assert checked.author_ids == (NURSE,)
    assert checked.pdf == pdf
    assert checked.document_id.root.startswith("2.25.")
    tree = etree.fromstring(cda)
    assert [e.get("root") for e in tree.findall("cda:templateId", NS)] == [
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    ]
    keeper = tree.find(
        "cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization", NS
    )
    assert keeper is not None
    assert keeper.find("cda:id", NS).get("extension") == KEEPER.national_id  # type: ignore[union-attr]
    assert keeper.find("cda:name", NS).text == KEEPER.name  # type: ignore[union-attr]
    requested = cda_time(request.requested_at.isoformat())
    assert tree.find("cda:effectiveTime", NS).get("value") == requested  # type: ignore[union-attr]
    # ... and has the shape of the SDK's CDA for the same request, element for element.
    sdk = request_documents(request=request, custodian=KEEPER)
    assert skeleton(cda) == skeleton(sdk.cda)
    theirs = etree.fromstring(sdk.cda)
    for path in (
        "cda:code",
        "cda:title",
        "cda:effectiveTime",
        "cda:recordTarget",
        "cda:author",
        "cda:custodian",
        "cda:legalAuthenticator",
        "cda:documentationOf",
        "cda:componentOf",
    ):
        ours, expected = tree.find(path, NS), theirs.find(path, NS)
        assert ours is not None
        assert expected is not None
        assert etree.tostring(ours) == etree.tostring(expected), path

    # The PDF renders and names the patient, both professionals, the question, the
    # consent and the photo with its hash.
    render_first_page(pdf, tmp_path)
    text = " ".join(pdf_text(pdf, tmp_path).split())
    for shown in (
        "Demande de téléexpertise",
        "PAT-TROIS DOMINIQUE MARIE-LOUISE",
        "279035121518989",
        "RPPS 10003456786",  # the requérant
        "RPPS 10001987659",  # the requis
        REASON,
        QUESTION,
        "Consentement donné oralement par le patient",
        f"{PHOTO}, {photo.mime}, {photo.size} octets, SHA-256 {photo.sha256}",
    ):
        assert shown in text, shown
    needles = [QUESTION, "PAT-TROIS", "MARIE-LOUISE", "279035121518989", "Demande de téléexpertise"]
    assert await plaintext_found(needles, [tmp_path / "server.log"]) == []


async def test_without_an_archiver_the_request_carries_no_documents(app_page, web_server, tmp_path):
    nurse = await app_page(NURSE)
    loaded = writers_loaded(nurse)
    doctor, doctor_te = await te_client(web_server, tmp_path, DOCTOR, "doctor")
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await expect(nurse.get_by_label("Organisme qui archive le salon")).to_have_value("")
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-state")).to_have_text("demandée")
        got = await next_event(doctor_te)
        assert isinstance(got.event, Request)
        assert got.room_id in doctor.rooms
        assert doctor.rooms[got.room_id].archiver is None
        assert len(got.event.attachments) == 1
        assert got.event.documents == ()
        await expect(nurse.locator("#te-question")).to_contain_text(QUESTION)
        await expect(nurse.locator("#te-download-request-pdf")).to_have_count(0)
    finally:
        await doctor.close()
    assert loaded == []  # no document written, no writer fetched


async def test_the_documents_of_a_request_whose_call_fails_are_withdrawn(
    app_page, web_server, server_env, tmp_path
):
    token_file = tmp_path / "archiver.json"
    await asyncio.to_thread(create_archiver, server_env, token_file)
    archiver, _ = await archiver_client(web_server, tmp_path, token_file)
    nurse = await app_page(NURSE)
    doctor, _ = await te_client(web_server, tmp_path, DOCTOR, "doctor")  # the requis' device
    at_the_call: list[int] = []

    await request_call_unavailable(nurse, at_the_call, NURSE)
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await nurse.get_by_label("Organisme qui archive le salon").fill(ORGANISATION)
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-message")).to_contain_text("indisponible")
        assert at_the_call == [3]  # the photo, the PDF and the CDA, when the call was made
        assert await uploads_of(NURSE) == 0
    finally:
        await doctor.close()
        await archiver.close()
