"""Téléexpertise between a browser and the Python SDK, both ways, through a real server:
the browser's request (patient, consent, question, photo) is read and verified by the
SDK, the SDK's steps show in the browser as states; the SDK's request opens in the
browser, which accepts it; nothing of the patient or the texts reaches the server."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as sync_to_async
from playwright.async_api import FilePayload, expect

from client.teleexpertise.contents import (
    Accept,
    ClarificationAnswer,
    ClarificationRequest,
    Request,
)
from client.teleexpertise.tariffs import TariffTable
from documents.cda import Organisation
from teleexpertise.models import BillingAct
from teleexpertise.workflow import State
from tests.e2e.teleexpertise_helpers import (
    DOCTOR,
    NURSE,
    next_event,
    plaintext_found,
    te_client,
    wound_photo,
)
from tests.teleexpertise.samples import patient
from tests.web.attachment_pages import open_attachments_page
from tests.web.teleexpertise_pages import (
    QUESTION,
    fill_request,
    open_teleexpertise,
    screenshots,
    sdk_request,
)

pytestmark = pytest.mark.e2e

ANSWER = "Pas de signe d'infection : hydrocolloïde, contrôle à J+7, adresser si extension."
ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "teleexpertise.json"
TARIFFS = ROOT / "web" / "src" / "teleexpertise" / "tariffs.json"
CENTRE = Organisation("1750000123", "Centre de santé des Pentes")


async def test_a_nurse_in_the_browser_asks_a_doctor_on_the_sdk(app_page, web_server, tmp_path):
    nurse = await app_page(NURSE)
    doctor, doctor_te = await te_client(web_server, tmp_path, DOCTOR, "doctor")
    doctor_te.organisation = CENTRE  # the structure that keeps the report's documents
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        # A wrong INS key is refused on the device, and without consent nothing is sent.
        await nurse.get_by_label("Matricule INS").fill("279035121518988")
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-message")).to_contain_text("consent_refused")
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-message")).to_contain_text("bad_matricule_key")
        assert not doctor.rooms
        await nurse.get_by_label("Matricule INS").fill("279035121518989")
        await screenshots(nurse, "form")
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-state")).to_have_text("demandée")

        # The doctor's SDK reads the browser's request as its own format, and verifies it.
        async with asyncio.timeout(20):
            room = await doctor.wait_for_room(lambda r: r.state.kind == "teleexpertise")
        got = await next_event(doctor_te)
        assert isinstance(got.event, Request)
        assert (got.room_id, got.sender) == (room, NURSE)
        assert got.event.patient == patient()
        assert (got.event.question, got.event.reason) == (QUESTION, "Plaie qui s'aggrave")
        assert got.event.consent.to_dict()["method"] == "oral"
        (photo,) = got.event.attachments
        saved = await doctor.save_attachment(photo, tmp_path / "doctor")
        assert saved.read_bytes().startswith(b"\xff\xd8")
        assert got.event.documents == ()

        await doctor_te.accept(room)
        await expect(nurse.locator("#te-state")).to_have_text("acceptée")
        # The doctor's clarification question, answered in the browser, verified by the SDK.
        asked = await doctor_te.ask(room, "Depuis quand la plaie suinte-t-elle ?")
        assert isinstance(asked.event, ClarificationRequest)
        reply = nurse.locator(f"#te-reply-{asked.event.question_id}")
        await reply.fill("Depuis trois jours, sans fièvre.")
        await nurse.locator(f"#te-reply-photos-{asked.event.question_id}").set_input_files(
            [FilePayload(name="plaie-j3.jpg", mimeType="image/jpeg", buffer=wound_photo())]
        )
        await nurse.get_by_role("button", name="Envoyer la précision").click()
        got = await next_event(doctor_te)
        assert isinstance(got.event, ClarificationAnswer)
        assert (got.sender, got.event.answer) == (NURSE, "Depuis trois jours, sans fièvre.")
        assert got.event.question_id == asked.event.question_id
        (later_photo,) = got.event.attachments
        assert later_photo.name == "plaie-j3.jpg"
        saved = await doctor.save_attachment(later_photo, tmp_path / "doctor-j3")
        assert saved.read_bytes().startswith(b"\xff\xd8")
        await expect(nurse.locator("#te-clarifications .te-replied")).to_contain_text("trois jours")
        await expect(nurse.locator(f"#te-reply-files-{asked.event.question_id} img")).to_have_count(
            1
        )
        reported = await doctor_te.report(room, ANSWER)
        assert reported.state is State.ANSWERED
        await expect(nurse.locator("#te-state")).to_have_text("répondue")
        await expect(nurse.locator("#te-answer")).to_contain_text(ANSWER)
        # The SDK's compte rendu, decrypted and checked here, downloads as its PDF.
        async with nurse.expect_download() as waiting:
            await nurse.locator("#te-download-pdf").click()
        download = await waiting.value
        assert download.suggested_filename == "compte-rendu-teleexpertise.pdf"
        pdf = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert reported.documents is not None
        assert pdf == reported.documents.pdf
        await doctor_te.close(room, "")
        await expect(nurse.locator("#te-state")).to_have_text("clôturée")
        await nurse.get_by_role("button", name="Demandes envoyées").click()
        case = nurse.locator(f'#te-cases [data-room="{room}"]')
        await expect(case).to_have_attribute("data-state", "closed")
        await expect(case).to_contain_text("Plaie qui s'aggrave")
        await screenshots(nurse, "sent")

        # The nurse's RQD, recorded by the browser once the report arrived, decrypted here.
        await nurse.get_by_role("button", name="Actes").click()
        act = nurse.locator(f'#te-ledger tr[data-room="{room}"][data-code="RQD"]')
        await expect(act).to_contain_text("PAT-TROIS DOMINIQUE (1979-03-28)")
        await expect(act).to_contain_text("10,00 €")
        await screenshots(nurse, "ledger")
        async with nurse.expect_download() as waiting:
            await nurse.get_by_role("button", name="Exporter en CSV").click()
        download = await waiting.value
        assert download.suggested_filename == "actes-teleexpertise.csv"
        data = await asyncio.to_thread(Path(await download.path()).read_bytes)
        lines = data.decode("utf-8").split("\r\n")
        assert lines[0].startswith("date;acte;montant_eur;zone;facturable;")
        assert lines[1] == (
            f"{date.today().isoformat()};RQD;10.00;metropole;oui;;PAT-TROIS;DOMINIQUE;"
            f"1979-03-28;F;279035121518989;1.2.250.1.213.1.4.10;QUAL;{NURSE};{DOCTOR};{room}"
        )
        acts = await sync_to_async(list)(
            BillingAct.objects.order_by("code").values_list("code", "billable")
        )
        assert acts == [("RQD", True), ("TE2", True)]
    finally:
        await doctor.close()
    needles = [QUESTION, ANSWER, "PAT-TROIS", "MARIE-LOUISE", "279035121518989", "1979-03-28"]
    assert await plaintext_found(needles, [tmp_path / "server.log"]) == []


async def test_the_sdk_asks_a_doctor_in_the_browser_who_accepts(app_page, web_server, tmp_path):
    doctor_page = await app_page(DOCTOR)
    nurse, nurse_te = await te_client(web_server, tmp_path, NURSE, "nurse")
    try:
        sent = await sdk_request(nurse_te, photo=True)
        await open_teleexpertise(doctor_page)
        await doctor_page.get_by_role("button", name="Demandes reçues").click()
        case = doctor_page.locator(f'#te-cases [data-room="{sent.room_id}"]')
        await expect(case).to_have_attribute("data-state", "requested")
        await expect(case).to_contain_text("Plaie qui s'aggrave")  # decrypted here
        await screenshots(doctor_page, "inbox")
        await case.click()
        await expect(doctor_page.locator("#te-patient")).to_contain_text("PAT-TROIS")
        await expect(doctor_page.locator("#te-question")).to_contain_text(QUESTION)
        await doctor_page.get_by_role("button", name="Accepter").click()
        await expect(doctor_page.locator("#te-state")).to_have_text("acceptée")
        await expect(doctor_page.locator("#te-report-form")).to_be_visible()
        await screenshots(doctor_page, "case")

        # The nurse's SDK verifies the browser's accept event.
        got = await next_event(nurse_te)
        assert isinstance(got.event, Accept)
        assert (got.room_id, got.sender, got.case.state) == (sent.room_id, DOCTOR, State.ACCEPTED)
        await nurse_te.cancel(sent.room_id, "")
        await expect(doctor_page.locator("#te-state")).to_have_text("annulée")
    finally:
        await nurse.close()
    assert await plaintext_found([QUESTION, "PAT-TROIS"], [tmp_path / "server.log"]) == []


async def test_the_billing_vectors_pass_in_the_browser(web_build, browser):
    """The browser's pseudonym and ledger entry are the SDK's, byte for byte
    (tests/vectors/teleexpertise.json, docs/protocol.md §12.7)."""
    vectors = json.loads(VECTORS.read_text())
    context, page = await open_attachments_page(browser)
    results = await page.evaluate(
        "(data) => globalThis.relaisTeleexpertiseVectors.run(data)", vectors
    )
    await context.close()
    assert [f"{r['name']}: {r.get('error')}" for r in results if not r["ok"]] == []
    assert len(results) == len(vectors["pseudonym"]["cases"]) + 2


def test_the_browser_tariffs_are_the_sdk_table():
    """web/src/teleexpertise/tariffs.json is client/teleexpertise/tariffs.toml."""
    browser = json.loads(TARIFFS.read_text())
    sdk = [
        {
            "code": row.code.value,
            "zone": row.zone.value,
            "valid_from": row.valid_from.isoformat(),
            "valid_until": row.valid_until.isoformat() if row.valid_until else None,
            "amount_cents": row.amount_cents,
            "yearly_limit_per_patient": row.yearly_limit_per_patient,
        }
        for row in TariffTable.load().rows
    ]
    assert browser == sdk
