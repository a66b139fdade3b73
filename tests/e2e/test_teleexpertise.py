"""Téléexpertise end to end, on real server processes with real SDK clients: the nurse
asks the GP with a wound photo and the patient's consent; the GP asks a clarification,
accepts, answers; the report (PDF + CDA 85208-7) reaches the nurse's device and the
room's archiver; both ledgers hold the right act; nothing of the patient, the question
or the answer is in any table, in Redis or in the logs."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.models import Envelope
from client.api import ApiError
from client.teleexpertise.consent import ConsentDecision
from client.teleexpertise.contents import (
    ClarificationAnswer,
    ClarificationRequest,
    Report,
    Request,
)
from client.teleexpertise.errors import (
    BillingLimitError,
    ConsentRefusedError,
    TeleexpertiseError,
)
from client.teleexpertise.tariffs import ActCode, Zone
from documents.cda import Organisation, check_cda
from documents.errors import DocumentError
from teleexpertise.models import BillingAct, Teleexpertise
from teleexpertise.services.clock import run_clock
from teleexpertise.workflow import State
from tests.e2e.teleexpertise_helpers import (
    DOCTOR,
    NURSE,
    ORGANISATION,
    PHARMACIST,
    archiver_client,
    in_hours,
    next_event,
    next_frame,
    plaintext_found,
    te_client,
    wound_photo,
)
from tests.e2e.test_archiver import create_archiver
from tests.teleexpertise.samples import consent, patient
from tests.teleexpertise.test_documents import render_first_page

pytestmark = pytest.mark.e2e

QUESTION = "Plaie du talon gauche qui s'aggrave depuis dix jours : faut-il changer de pansement ?"
CLARIFICATION = "Y a-t-il de la fièvre ou un écoulement purulent ?"
PRECISION = "Pas de fièvre, exsudat séreux modéré."
ANSWER = "Pas de signe d'infection : hydrocolloïde, contrôle à J+7, adresser si extension."


@pytest.mark.own_server  # it stops its server
async def test_nurse_asks_the_gp_and_both_are_paid(server, server_env, tmp_path):
    token_file = tmp_path / "archiver.json"
    await asyncio.to_thread(create_archiver, server_env, token_file)
    archiver, archiver_te = await archiver_client(server, tmp_path, token_file)
    nurse, nurse_te = await te_client(server, tmp_path, NURSE, "nurse")
    doctor, doctor_te = await te_client(server, tmp_path, DOCTOR, "doctor")
    the_patient = patient()

    sent = await nurse_te.request(
        requis=DOCTOR,
        patient=the_patient,
        reason="Plaie qui s'aggrave",
        question=QUESTION,
        consent=consent(obtained_on=date.today()),
        deadline=in_hours(48),
        files=[(wound_photo(), "plaie-talon.jpg")],
        archiver=ORGANISATION,
    )
    assert (sent.seq, sent.state) == (1, State.REQUESTED)
    assert sent.billing is not None
    assert (sent.billing.count, sent.billing.over_limit) == (0, False)
    room = sent.room_id

    # The GP's device: the request, verified, with the photo and the request's documents.
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    got = await next_event(doctor_te)
    assert isinstance(got.event, Request)
    assert (got.sender, got.event.patient, got.event.question) == (NURSE, the_patient, QUESTION)
    (photo,) = got.event.attachments
    saved = await doctor.save_attachment(photo, tmp_path / "doctor")
    assert saved.read_bytes().startswith(b"\xff\xd8")  # a JPEG, cleaned and re-encoded
    assert [d.name for d in got.event.documents] == [
        "demande-teleexpertise.pdf",
        "demande-teleexpertise.xml",
    ]

    question = await doctor_te.ask(room, CLARIFICATION)
    asked = await next_event(nurse_te)
    assert isinstance(asked.event, ClarificationRequest)
    assert asked.event.question == CLARIFICATION
    await nurse_te.answer(room, asked.event.question_id, PRECISION)
    answered = await next_event(doctor_te)
    assert isinstance(answered.event, ClarificationAnswer)
    assert answered.event.answer == PRECISION
    assert answered.event.question_id == question.event.question_id

    accepted = await doctor_te.accept(room)
    assert accepted.state is State.ACCEPTED
    frame = await next_frame(nurse)  # the requérant sees each state change live
    while frame["action"] != "accept":
        frame = await next_frame(nurse)
    assert (frame["room"], frame["state"]) == (room, "accepted")
    await next_event(nurse_te)  # the accept event itself

    reported = await doctor_te.report(room, ANSWER)
    assert reported.state is State.ANSWERED
    assert reported.documents is not None

    # The nurse's device: the report, its PDF and CDA, and her RQD recorded on arrival.
    got = await next_event(nurse_te)
    assert isinstance(got.event, Report)
    assert got.event.answer == ANSWER
    folder = tmp_path / "nurse-documents"
    pdf_path, cda_path = await nurse_te.save_documents(room, folder)
    checked = check_cda(cda_path.read_bytes())
    assert (checked.type_code, checked.ins.extension if checked.ins else None) == (
        "85208-7",
        "279035121518989",
    )
    assert checked.pdf == pdf_path.read_bytes()
    render_first_page(pdf_path.read_bytes(), tmp_path)
    assert got.act is not None
    assert (got.act.code, got.act.billable) == (ActCode.RQD, True)

    # Both ledgers, decrypted on each device.
    today = date.today()
    expected = {
        NURSE: (ActCode.RQD, nurse_te.tariffs.lookup(ActCode.RQD, Zone.METROPOLE, today)),
        DOCTOR: (ActCode.TE2, doctor_te.tariffs.lookup(ActCode.TE2, Zone.METROPOLE, today)),
    }
    for te, national_id in ((nurse_te, NURSE), (doctor_te, DOCTOR)):
        (entry,) = await (await te.billing()).ledger()
        code, tariff = expected[national_id]
        assert (entry.code, entry.amount_cents, entry.billable, entry.room) == (
            code,
            tariff.amount_cents,
            True,
            room,
        )
        assert entry.patient == the_patient
        csv_text = await (await te.billing()).export(start=today.replace(day=1), end=today)
        assert f"{tariff.amount_text};metropole;oui" in csv_text
    if today.year == 2026:
        assert (expected[DOCTOR][1].amount_cents, expected[NURSE][1].amount_cents) == (2300, 1000)
    acts = await sync_to_async(
        lambda: sorted(BillingAct.objects.values_list("practitioner_id", "code", "billable"))
    )()
    assert acts == [(DOCTOR, "TE2", True), (NURSE, "RQD", True)]

    await nurse_te.close(room)
    status = await doctor_te.status(room)
    assert [t["action"] for t in status["transitions"]] == [
        "request",
        "clarification_request",
        "clarification_answer",
        "accept",
        "report",
        "close",
    ]

    # The archiver reads the whole case and the report's documents.
    await archiver.connect()
    events = [await next_event(archiver_te) for _ in range(6)]
    assert [type(r.event).__name__ for r in events] == [
        "Request",
        "ClarificationRequest",
        "ClarificationAnswer",
        "Accept",
        "Report",
        "Close",
    ]
    case = archiver_te.cases.require(room)
    assert case.state is State.CLOSED
    report = case.report
    assert report is not None
    archived = [await archiver.save_attachment(d, tmp_path / "archive") for d in report.documents]
    assert check_cda(archived[1].read_bytes()).type_code == "85208-7"
    assert (await archiver_te.status(room))["state"] == "closed"

    # An interoperable export of the request, made on the nurse's device.
    bundle = nurse_te.service_request(room)
    assert json.loads(json.dumps(bundle))["type"] == "transaction"

    for client in (nurse, doctor, archiver):
        await client.close()
    server.stop()
    found = await plaintext_found(
        [
            "279035121518989",
            "PAT-TROIS",
            "1979-03-28",
            "19790328",
            "DOMINIQUE",
            QUESTION,
            QUESTION.split(":")[0],
            CLARIFICATION,
            PRECISION,
            ANSWER,
        ],
        [server.log_path],
    )
    assert found == []
    assert await sync_to_async(Teleexpertise.objects.count)() == 1
    assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 6


async def envelopes_in(room: int) -> int:
    count: int = await sync_to_async(Envelope.objects.filter(room_id=room).count)()
    return count


async def test_decline_cancel_expiry_and_refusals(server, tmp_path):
    nurse, nurse_te = await te_client(server, tmp_path, NURSE, "nurse")
    doctor, doctor_te = await te_client(server, tmp_path, DOCTOR, "doctor")
    pharmacist, _ = await te_client(server, tmp_path, PHARMACIST, "pharmacist")
    ask = {
        "patient": patient(),
        "reason": "Plaie",
        "question": "Avis ?",
        "consent": consent(obtained_on=date.today()),
        "deadline": in_hours(24),
    }

    # Finding the requis: the directory, among médecins, sages-femmes, chirurgiens-dentistes.
    found = await nurse_te.people.find_requis(name="dur", postcode="69")
    assert [p["national_id"] for p in found] == [DOCTOR]
    with pytest.raises(TeleexpertiseError) as not_requis:
        await nurse_te.people.find_requis(profession="21")
    assert not_requis.value.code == "requis_not_eligible"
    # A pharmacist cannot be requis: refused on the device, nothing created or stored.
    with pytest.raises(TeleexpertiseError) as refused:
        await nurse_te.request(requis=PHARMACIST, **ask)
    assert refused.value.code == "requis_not_eligible"
    assert "Pharmacien" in refused.value.message
    # A refused consent blocks the request and is recorded on the device.
    with pytest.raises(ConsentRefusedError) as no_consent:
        await nurse_te.request(
            requis=DOCTOR, **{**ask, "consent": consent(decision=ConsentDecision.REFUSED)}
        )
    assert no_consent.value.message_fr.startswith("Refus exprimé oralement par le patient")
    assert [r["consent"]["decision"] for r in nurse_te.refusals] == ["refused"]
    # A wrong INS key never makes an identity.
    with pytest.raises(DocumentError):
        patient(matricule="279035121518988")
    assert await sync_to_async(Envelope.objects.count)() == 0
    assert not nurse.rooms

    # Declined, with its reason.
    declined = await nurse_te.request(requis=DOCTOR, **ask)
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == declined.room_id)
    await next_event(doctor_te)
    # Out of order or not one's role: refused before anything is sent.
    for attempt, code in (
        (doctor_te.report(declined.room_id, "trop tôt"), "transition_refused"),
        (nurse_te.accept(declined.room_id), "role_refused"),
        (nurse_te.report(declined.room_id, "le requérant ne répond pas"), "role_refused"),
    ):
        with pytest.raises(TeleexpertiseError) as out_of_order:
            await attempt
        assert out_of_order.value.code == code
    assert await envelopes_in(declined.room_id) == 1
    # A non-member's step, sent straight to the server: refused, nothing stored.
    with pytest.raises(ApiError) as outsider:
        await pharmacist.api.call(
            "POST",
            f"teleexpertise/{declined.room_id}/steps",
            json={"action": "accept", "id": "intrus-1", "body": "AAAA"},
        )
    assert outsider.value.code == "not_member"
    await doctor_te.decline(declined.room_id, "Hors de mon champ : adresser en dermatologie.")
    got = await next_event(nurse_te)
    assert got.event.reason.startswith("Hors de mon champ")  # type: ignore[union-attr]
    assert got.case.state is State.DECLINED
    assert await envelopes_in(declined.room_id) == 2

    # Cancelled by the requérant after acceptance.
    cancelled = await nurse_te.request(requis=DOCTOR, **ask)
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == cancelled.room_id)
    await next_event(doctor_te)
    await doctor_te.accept(cancelled.room_id)
    await next_event(nurse_te)
    await nurse_te.cancel(cancelled.room_id, "Patient hospitalisé.")
    assert (await next_event(doctor_te)).case.state is State.CANCELLED
    with pytest.raises(TeleexpertiseError):
        await doctor_te.report(cancelled.room_id, "trop tard")

    # Expired: the clock runs past the deadline; both devices see it live.
    expiring = await nurse_te.request(requis=DOCTOR, **ask)
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == expiring.room_id)
    await next_event(doctor_te)
    for session in (nurse, doctor):
        while not session.teleexpertise_frames.empty():
            session.teleexpertise_frames.get_nowait()
    done = await sync_to_async(run_clock)(now=in_hours(25))
    assert expiring.room_id in done.expired
    for session, te in ((nurse, nurse_te), (doctor, doctor_te)):
        frame = await next_frame(session)
        while frame["room"] != expiring.room_id:
            frame = await next_frame(session)
        assert (frame["action"], frame["state"]) == ("expire", "expired")
        assert te.on_frame(frame).state is State.EXPIRED
        assert te.cases.require(expiring.room_id).state is State.EXPIRED
    with pytest.raises(TeleexpertiseError) as too_late:
        await doctor_te.accept(expiring.room_id)
    assert too_late.value.code == "transition_refused"
    assert await envelopes_in(expiring.room_id) == 1
    for client in (nurse, doctor, pharmacist):
        await client.close()


async def test_the_fifth_act_for_a_patient_is_flagged(server, tmp_path):
    nurse, nurse_te = await te_client(server, tmp_path, NURSE, "nurse")
    doctor, doctor_te = await te_client(server, tmp_path, DOCTOR, "doctor")
    # No archiver in these rooms: the GP's documents are kept by his structure.
    doctor_te.organisation = Organisation("1750000123", "Centre de santé des Pentes")
    ask = {
        "requis": DOCTOR,
        "patient": patient(),
        "reason": "Suivi de plaie",
        "question": "Évolution ?",
        "consent": consent(obtained_on=date.today()),
        "deadline": in_hours(24),
    }
    for number in range(4):
        sent = await nurse_te.request(**ask)
        async with asyncio.timeout(20):
            await doctor.wait_for_room(lambda r, room=sent.room_id: r.room_id == room)
        await next_event(doctor_te)
        await doctor_te.accept(sent.room_id)
        await doctor_te.report(sent.room_id, f"Réponse {number + 1}")
        while not isinstance((await next_event(nurse_te)).event, Report):
            pass
    # The fifth request for the same patient this year: flagged before it is sent.
    with pytest.raises(BillingLimitError) as flagged:
        await nurse_te.request(**ask)
    assert (flagged.value.count, flagged.value.limit) == (4, 4)
    assert "act RQD number 5" in flagged.value.message
    assert flagged.value.message_fr.startswith("Ce serait le 5e acte RQD")
    assert len(nurse.rooms) == 4  # nothing was created or sent
    # Sent anyway, it is answered and recorded as not billable, on both sides.
    fifth = await nurse_te.request(**ask, acknowledge_billing_limit=True)
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == fifth.room_id)
    await next_event(doctor_te)
    with pytest.raises(BillingLimitError):
        await doctor_te.accept(fifth.room_id)  # the requis is warned too (TE2)
    await doctor_te.accept(fifth.room_id, acknowledge_billing_limit=True)
    await doctor_te.report(fifth.room_id, "Réponse 5")
    while not isinstance((got := await next_event(nurse_te)).event, Report):
        pass
    assert got.act is not None
    assert (got.act.billable, got.act.amount_cents) == (False, 0)
    for te in (nurse_te, doctor_te):
        entries = await (await te.billing()).ledger()
        assert [e.billable for e in entries] == [True, True, True, True, False]
    for client in (nurse, doctor):
        await client.close()
