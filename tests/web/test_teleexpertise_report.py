"""The requis' side of a téléexpertise in the browser, against the Python SDK through a
real server: the photos shown in the case, a clarification asked in the browser and
answered by the SDK, the report written in the browser (its PDF and CDA 85208-7 read,
verified and accepted by the SDK, and checked as the SDK's own documents are checked),
the acts of both sides; and the receiver's checks of §12.5: an event the SDK refuses is
refused in the browser too. Nothing of the patient or the texts reaches the server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as sync_to_async
from lxml import etree
from playwright.async_api import Route, expect

from client.teleexpertise.cases import CaseBook, room_facts
from client.teleexpertise.contents import ClarificationRequest, Report
from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.report import report_documents
from documents import codes
from documents.cda import NS, Organisation, check_cda
from teleexpertise.models import BillingAct, Teleexpertise
from teleexpertise.workflow import REQUIS_PROFESSIONS, State
from tests.e2e.teleexpertise_helpers import DOCTOR, NURSE, next_event, plaintext_found, te_client
from tests.teleexpertise.test_documents import pdf_text, render_first_page
from tests.web.teleexpertise_pages import (
    QUESTION,
    fill_request,
    open_teleexpertise,
    screenshots,
    sdk_request,
    skeleton,
)

pytestmark = pytest.mark.e2e

ANSWER = (
    "Pas de signe d'infection : hydrocolloïde à changer tous les 3 jours, contrôle à J+7, "
    "m'adresser la patiente si la plaie s'étend ou si une fièvre apparaît."
)
CLARIFICATION = "La plaie sent-elle mauvais ? Y a-t-il de la fièvre ?"
CLARIFIED = "Non, pas d'odeur ; 37,2 °C ce matin."
CENTRE = Organisation("1750000123", "Centre de santé des Pentes")
CODES = Path(__file__).resolve().parents[2] / "web" / "src" / "teleexpertise" / "codes.json"


async def test_a_doctor_in_the_browser_reports_to_a_nurse_on_the_sdk(
    app_page, web_server, tmp_path
):
    doctor = await app_page(DOCTOR)
    nurse, nurse_te = await te_client(web_server, tmp_path, NURSE, "nurse")
    try:
        sent = await sdk_request(nurse_te, photo=True)
        room = sent.room_id
        await open_teleexpertise(doctor)
        await doctor.get_by_role("button", name="Demandes reçues").click()
        await doctor.locator(f'#te-cases [data-room="{room}"]').click()
        # The request's photo shows inside the case, decrypted here.
        thumb = doctor.locator("#te-request-files img.te-photo")
        await expect(thumb).to_have_attribute("alt", "plaie-talon.jpg")
        assert await thumb.evaluate("(img) => img.complete && img.naturalWidth > 0")
        await doctor.get_by_role("button", name="Accepter").click()
        await expect(doctor.locator("#te-state")).to_have_text("acceptée")
        got = await next_event(nurse_te)
        assert got.case.state is State.ACCEPTED

        # A clarification asked in the browser, answered from the SDK.
        await doctor.get_by_label("Demander une précision au requérant").fill(CLARIFICATION)
        await doctor.get_by_role("button", name="Envoyer la question").click()
        asked = await next_event(nurse_te)
        assert isinstance(asked.event, ClarificationRequest)
        assert asked.event.question == CLARIFICATION
        await nurse_te.answer(room, asked.event.question_id, CLARIFIED)
        await expect(doctor.locator("#te-clarifications .te-replied")).to_contain_text(CLARIFIED)

        # The report, written in the browser: PDF and CDA made here, encrypted, sent.
        await doctor.get_by_label("Réponse (compte rendu)").fill(ANSWER)
        await doctor.get_by_label("Identifiant national de la structure").fill(CENTRE.national_id)
        await doctor.get_by_label("Nom de cette structure").fill(CENTRE.name)
        await screenshots(doctor, "report-form")
        await doctor.get_by_role("button", name="Envoyer le compte rendu").click()
        await expect(doctor.locator("#te-state")).to_have_text("répondue")
        await expect(doctor.locator("#te-answer")).to_contain_text(ANSWER)
        await expect(doctor.locator("#te-message")).to_have_count(0)

        # The nurse's SDK verifies the report and records its RQD.
        got = await next_event(nurse_te)
        assert isinstance(got.event, Report)
        assert (got.sender, got.case.state) == (DOCTOR, State.ANSWERED)
        assert got.event.answer == ANSWER
        assert got.act is not None
        assert got.act.code.value == "RQD"
        files = await nurse_te.save_documents(room, tmp_path / "nurse")
        by_type = {path.suffix: path.read_bytes() for path in files}
        assert {path.name for path in files} == {
            "compte-rendu-teleexpertise.pdf",
            "compte-rendu-teleexpertise.xml",
        }
        pdf, cda = by_type[".pdf"], by_type[".xml"]
        case = nurse_te.cases.require(room)
    finally:
        await nurse.close()

    # The browser's CDA passes the checks the SDK's own documents pass (the CDA R2
    # schema with the French extensions, templateIds, J07 type, INS, IdNat_PS, PDF body)
    checked = check_cda(cda)
    assert checked.type_code == "85208-7"
    assert checked.title == "Compte rendu de téléexpertise"
    assert checked.ins is not None
    assert (checked.ins.root, checked.ins.extension) == ("1.2.250.1.213.1.4.10", "279035121518989")
    assert checked.author_ids == (DOCTOR,)
    assert checked.pdf == pdf
    assert checked.document_id.root.startswith("2.25.")
    tree = etree.fromstring(cda)
    assert [e.get("root") for e in tree.findall("cda:templateId", NS)] == [
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    ]
    custodian = tree.find(
        "cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization", NS
    )
    assert custodian is not None
    assert custodian.find("cda:name", NS).text == CENTRE.name  # type: ignore[union-attr]
    # ... and has the shape of the SDK's CDA for the same case, element for element.
    report = case.report
    assert report is not None
    sdk = report_documents(
        case=case, answer=ANSWER, reported_at=report.reported_at, custodian=CENTRE
    )
    assert skeleton(cda) == skeleton(sdk.cda)
    for path in ("cda:code", "cda:recordTarget", "cda:author/cda:assignedAuthor/cda:code"):
        ours, theirs = tree.find(path, NS), etree.fromstring(sdk.cda).find(path, NS)
        assert ours is not None
        assert theirs is not None
        assert etree.tostring(ours) == etree.tostring(theirs), path

    # The PDF renders and carries the case, accents included.
    render_first_page(pdf, tmp_path)
    text = " ".join(pdf_text(pdf, tmp_path).split())
    for expected in (
        "Compte rendu de téléexpertise",
        "PAT-TROIS DOMINIQUE MARIE-LOUISE",
        "279035121518989",
        "RPPS 10003456786",  # the requérant
        "RPPS 10001987659",  # the requis
        "faut-il changer de pansement",
        "La plaie sent-elle mauvais",
        "37,2 °C",
        "hydrocolloïde à changer tous les 3 jours",
        "plaie-talon.jpg",
    ):
        assert expected in text, expected

    acts = await sync_to_async(list)(
        BillingAct.objects.order_by("code").values_list("code", "practitioner_id", "billable")
    )
    assert [(code, billable) for code, _, billable in acts] == [("RQD", True), ("TE2", True)]
    needles = [QUESTION, ANSWER, CLARIFICATION, CLARIFIED, "PAT-TROIS", "279035121518989"]
    assert await plaintext_found(needles, [tmp_path / "server.log"]) == []


async def test_the_browser_refuses_the_events_the_sdk_refuses(app_page, web_server, tmp_path):
    """A requérant (or a server) sends events outside the lifecycle as ordinary
    messages: a report from the requérant, an accept from the requérant, an answer to a
    question never asked. The server cannot see them; the SDK refuses each, and so does
    the browser, which shows no answer and says why."""
    doctor = await app_page(DOCTOR)
    nurse, nurse_te = await te_client(web_server, tmp_path, NURSE, "nurse")
    try:
        sent = await sdk_request(nurse_te)
        room = sent.room_id
        forged = [
            {
                "type": "teleexpertise.report",
                "v": 1,
                "answer": "Réponse inventée",
                "reported_at": "2026-03-14T12:00:00+00:00",
                "documents": [],
            },
            {"type": "teleexpertise.accept", "v": 1, "note": ""},
            {
                "type": "teleexpertise.clarification_answer",
                "v": 1,
                "question_id": str(uuid.uuid4()),
                "answer": "Précision sans question",
                "answered_at": "2026-03-14T12:00:00+00:00",
                "attachments": [],
            },
            {"type": "teleexpertise.close", "v": 1, "note": "", "extra": "field"},
        ]
        # The SDK of a requis refuses each of them.
        book = CaseBook({}, me=DOCTOR)
        facts = room_facts(nurse.rooms[room])
        book.accept(room=facts, seq=1, sender=NURSE, content=sent.event.to_content())
        codes = []
        for seq, content in enumerate(forged, start=2):
            with pytest.raises(TeleexpertiseError) as refused:
                book.accept(room=facts, seq=seq, sender=NURSE, content=content)
            codes.append(refused.value.code)
        assert codes == ["role_refused", "role_refused", "transition_refused", "bad_event"]
        for content in forged:
            await nurse.send(room, content)

        await open_teleexpertise(doctor)
        await doctor.get_by_role("button", name="Demandes reçues").click()
        case = doctor.locator(f'#te-cases [data-room="{room}"]')
        await expect(case).to_have_attribute("data-refused", "4")
        await case.click()
        refused = doctor.locator("#te-refused li")
        await expect(refused).to_have_count(4)
        assert [await item.get_attribute("data-code") for item in await refused.all()] == codes
        await expect(doctor.locator("#te-answer")).to_have_count(0)
        await expect(doctor.get_by_role("button", name="Accepter")).to_be_visible()
        await screenshots(doctor, "refused")
    finally:
        await nurse.close()
    assert await plaintext_found(["Réponse inventée", QUESTION], [tmp_path / "server.log"]) == []


async def test_steps_beyond_the_yearly_limit_are_flagged_first(app_page, web_server):
    """When the server counts four billable acts this year for the patient's pseudonym,
    the browser warns before a fifth request (RQD) or acceptance (TE2) and takes the
    step only on "send anyway" (the act will not be billable). The count is the server's
    answer: here it says four."""
    nurse = await app_page(NURSE)
    doctor = await app_page(DOCTOR)
    asked: list[str] = []

    async def four_acts(route: Route) -> None:
        asked.append(route.request.url)
        await route.fulfill(json={"count": 4})

    await nurse.route("**/billing/count?*", four_acts)
    await doctor.route("**/billing/count?*", four_acts)
    await open_teleexpertise(nurse)
    await fill_request(nurse)
    await nurse.get_by_label("Le patient a donné son consentement").check()
    await nurse.get_by_role("button", name="Envoyer la demande").click()
    await expect(nurse.locator("#te-message")).to_contain_text("billing_limit_reached")
    await expect(nurse.locator("#te-message")).to_contain_text("5e acte RQD")
    assert len(asked) == 1
    assert "code=RQD" in asked[0]
    assert "pseudonym=" in asked[0]
    assert "PAT-TROIS" not in asked[0]
    assert await sync_to_async(Teleexpertise.objects.count)() == 0  # nothing sent
    await nurse.locator("#te-send-anyway").click()
    await expect(nurse.locator("#te-state")).to_have_text("demandée")

    await open_teleexpertise(doctor)
    await doctor.get_by_role("button", name="Demandes reçues").click()
    await doctor.locator("#te-cases [data-room]").click()
    await doctor.get_by_role("button", name="Accepter").click()
    await expect(doctor.locator("#te-message")).to_contain_text("5e acte TE2")
    assert "code=TE2" in asked[-1]
    await expect(doctor.locator("#te-state")).to_have_text("demandée")
    await doctor.locator("#te-send-anyway").click()
    await expect(doctor.locator("#te-state")).to_have_text("acceptée")
    await expect(nurse.locator("#te-state")).to_have_text("acceptée")


def test_the_browser_codes_are_the_value_sets():
    """web/src/teleexpertise/codes.json is the part of documents/valuesets the browser's
    CDAs need: J01 for every profession (the requérant's, author of the request's CDA,
    may be any), the two document types, and the fixed codes."""
    browser = json.loads(CODES.read_text())

    def entry(code: codes.Code) -> dict[str, str]:
        value = {"code": code.code, "system": code.system, "display": code.display}
        if code.system_name:
            value["system_name"] = code.system_name
        return value

    j01 = {
        key: entry(code) for key, code in codes.value_set("J01").items() if key.startswith("G15_")
    }
    assert {f"G15_{p}" for p in REQUIS_PROFESSIONS} | {"G15_60", "G15_21"} <= set(j01)
    assert browser == {
        "J01": j01,
        "J07": {key: entry(codes.document_type(key)) for key in ("85208-7", "75496-0")},
        "J04": {"AMBULATOIRE": entry(codes.code_in("J04", "AMBULATOIRE"))},
        "J02": {"SA07": entry(codes.code_in("J02", "SA07"))},
        "J143": {key: entry(codes.code_in("J143", key)) for key in ("F", "M", "UN")},
        "confidentiality": entry(codes.NORMAL_CONFIDENTIALITY),
    }
