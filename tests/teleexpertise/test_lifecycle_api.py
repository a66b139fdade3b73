"""The téléexpertise lifecycle over REST: who may take which step, in which order; the
envelope of a refused step is never stored; retries are idempotent; the archiving
organisation reads the lifecycle, outsiders do not."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chat.models import Envelope
from teleexpertise.models import Teleexpertise, Transition
from tests.teleexpertise.conftest import request_body, step

pytestmark = pytest.mark.django_db(transaction=True)


def codes(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_the_whole_path_and_every_step_recorded(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = te_room(nurse, doctor)
    opened = nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    assert opened.status_code == 201, opened.content
    assert opened.json()["teleexpertise"]["state"] == "requested"
    assert opened.json()["step"]["seq"] == 1

    assert step(doctor, room, "clarification_request", "q-1").status_code == 201
    assert step(nurse, room, "clarification_answer", "a-1").status_code == 201
    accepted = step(doctor, room, "accept", "acc-1")
    assert accepted.json()["teleexpertise"]["state"] == "accepted"
    reported = step(doctor, room, "report", "rep-1")
    assert reported.json()["teleexpertise"]["state"] == "answered"
    closed = step(nurse, room, "close", "close-1")
    assert closed.status_code == 201

    shown = nurse.client.get(f"/api/v1/teleexpertise/{room.pk}").json()
    assert shown["state"] == "closed"
    assert shown["open_questions"] == 0
    assert [
        (t["action"], t["state"], t["practitioner"], t["seq"]) for t in shown["transitions"]
    ] == [
        ("request", "requested", nurse.national_id, 1),
        ("clarification_request", "requested", doctor.national_id, 2),
        ("clarification_answer", "requested", nurse.national_id, 3),
        ("accept", "accepted", doctor.national_id, 4),
        ("report", "answered", doctor.national_id, 5),
        ("close", "closed", nurse.national_id, 6),
    ]
    # Each step's envelope is in the room, sent by the device that took the step.
    stored = list(Envelope.objects.filter(room=room).order_by("seq"))
    assert [(e.seq, e.client_id, e.sender_device_id) for e in stored] == [
        (1, "req-1", nurse.device),
        (2, "q-1", doctor.device),
        (3, "a-1", nurse.device),
        (4, "acc-1", doctor.device),
        (5, "rep-1", doctor.device),
        (6, "close-1", nurse.device),
    ]
    for member_ in (nurse, doctor):
        listed = member_.client.get("/api/v1/teleexpertise").json()["teleexpertises"]
        assert [t["room"] for t in listed] == [room.pk]
    assert nurse.client.get("/api/v1/teleexpertise?role=requis").json() == {"teleexpertises": []}


def test_refused_steps_store_nothing(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = te_room(nurse, doctor)
    nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")

    refusals = [
        (step(nurse, room, "accept", "x-1"), (403, "role_refused")),  # a requérant cannot accept
        (step(doctor, room, "report", "x-2"), (409, "transition_refused")),  # not accepted yet
        (step(nurse, room, "report", "x-3"), (403, "role_refused")),  # a report from the requérant
        (step(nurse, room, "clarification_answer", "x-4"), (409, "transition_refused")),
        (step(doctor, room, "close", "x-5"), (409, "transition_refused")),
        (step(doctor, room, "cancel", "x-6"), (403, "role_refused")),
        (
            step(doctor, room, "decline", "x-7", deadline="2030-01-01T00:00:00Z"),
            (400, "bad_request"),
        ),
    ]
    for response, expected in refusals:
        assert codes(response) == expected, response.content
    message = step(nurse, room, "accept", "x-8").json()["error"]
    assert message["message"] == "As the requérant you cannot accept."
    assert message["message_fr"] == "En tant que requérant, vous ne pouvez pas accepter."
    assert list(Envelope.objects.filter(room=room).values_list("client_id", flat=True)) == ["req-1"]
    assert Transition.objects.filter(teleexpertise_id=room.pk).count() == 1
    assert Teleexpertise.objects.get(pk=room.pk).state == "requested"

    # Declined: a final state, nothing more can happen.
    assert step(doctor, room, "decline", "dec-1").json()["teleexpertise"]["state"] == "declined"
    assert codes(step(doctor, room, "accept", "acc-late")) == (409, "transition_refused")
    assert codes(step(nurse, room, "cancel", "cancel-late")) == (409, "transition_refused")


def test_an_outsider_and_a_non_member_get_nothing(member, te_room):
    nurse, doctor, physio = member("nurse"), member("doctor"), member("physio")
    room = te_room(nurse, doctor)
    assert codes(
        physio.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    ) == (404, "not_member")
    nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    assert codes(step(physio, room, "accept", "p-1")) == (404, "not_member")
    assert codes(physio.client.get(f"/api/v1/teleexpertise/{room.pk}")) == (404, "not_member")
    assert Envelope.objects.filter(room=room).count() == 1


def test_a_pharmacist_cannot_be_requis(member, te_room):
    nurse, pharmacist = member("nurse"), member("pharmacist")
    room = te_room(nurse, pharmacist)
    refused = nurse.client.post(
        "/api/v1/teleexpertise", request_body(room, pharmacist), format="json"
    )
    assert codes(refused) == (403, "requis_not_eligible")
    assert "Pharmacien" in refused.json()["error"]["message"]
    assert refused.json()["error"]["message_fr"].startswith("Seul un médecin")
    assert not Teleexpertise.objects.exists()
    assert not Envelope.objects.filter(room=room).exists()


def test_a_request_needs_a_teleexpertise_room_of_two_and_a_sane_deadline(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    care = te_room(nurse, doctor, kind="care_team")
    assert codes(
        nurse.client.post("/api/v1/teleexpertise", request_body(care, doctor), format="json")
    ) == (400, "bad_request")
    room = te_room(nurse, doctor)
    for hours in (0, 24 * 400):
        late = nurse.client.post(
            "/api/v1/teleexpertise", request_body(room, doctor, hours=hours), format="json"
        )
        assert codes(late) == (400, "bad_request")
    assert not Envelope.objects.exists()


def test_retries_are_idempotent(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = te_room(nurse, doctor)
    body = request_body(room, doctor)
    first = nurse.client.post("/api/v1/teleexpertise", body, format="json")
    again = nurse.client.post("/api/v1/teleexpertise", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["step"] == first.json()["step"]
    accepted = step(doctor, room, "accept", "acc-1")
    retried = step(doctor, room, "accept", "acc-1")
    assert (accepted.status_code, retried.status_code) == (201, 200)
    # The same id for another step is a conflict, not a second step.
    assert codes(step(doctor, room, "report", "acc-1")) == (409, "conflict")
    assert Envelope.objects.filter(room=room).count() == 2
    assert Transition.objects.filter(teleexpertise_id=room.pk).count() == 2


def test_accepting_may_set_the_deadline_and_cancel_ends_it(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = te_room(nurse, doctor)
    nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    new_deadline = "2099-01-01T00:00:00+00:00"
    assert codes(step(doctor, room, "accept", "a", deadline=new_deadline)) == (400, "bad_request")
    accepted = step(
        doctor, room, "accept", "a2", deadline=request_body(room, doctor, hours=6)["deadline"]
    )
    assert accepted.status_code == 201
    cancelled = step(nurse, room, "cancel", "c")
    assert cancelled.json()["teleexpertise"]["state"] == "cancelled"


def test_two_steps_at_once_one_wins_and_the_loser_stores_nothing(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    doctor_laptop = member("doctor")  # the same requis, another device
    room = te_room(nurse, doctor)
    nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    answers: dict[str, int] = {}

    def take(name, device, action):
        answers[name] = step(device, room, action, f"{name}-1").status_code
        connection.close()

    threads = [
        threading.Thread(target=take, args=("phone", doctor, "accept")),
        threading.Thread(target=take, args=("laptop", doctor_laptop, "decline")),
        threading.Thread(target=take, args=("nurse", nurse, "cancel")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) in ([201, 409, 409], [201, 201, 409])
    te = Teleexpertise.objects.get(pk=room.pk)
    # Whatever the order, the steps recorded follow the table, and every envelope stored
    # belongs to a recorded step.
    recorded = list(
        Transition.objects.filter(teleexpertise=te).values_list("message_id", flat=True)
    )
    stored = list(Envelope.objects.filter(room=room).values_list("client_id", flat=True))
    assert sorted(recorded) == sorted(stored)
    # The nurse may cancel before or after an acceptance, never after a decline.
    assert te.state in {"declined", "cancelled"}
