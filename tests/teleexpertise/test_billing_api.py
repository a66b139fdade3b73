"""The billing counter and the encrypted ledger: an act per practitioner per case, once
the report exists; the yearly limit held across the practitioner's devices; nothing but
ciphertext and a pseudonym stored."""

from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from django.db import connection

from teleexpertise.models import BillingAct
from tests.teleexpertise.conftest import request_body, step

pytestmark = pytest.mark.django_db(transaction=True)


def pseudonym(seed: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode().rstrip("=")


def act(member, room, *, code, patient="p1", billable=True, limit=4, year=None):
    from django.utils import timezone

    return member.client.post(
        f"/api/v1/teleexpertise/{room.pk}/act",
        {
            "code": code,
            "year": year or timezone.now().year,
            "pseudonym": pseudonym(patient),
            "billable": billable,
            "limit": limit,
            "entry": "c2VhbGVkIGVudHJ5",
        },
        format="json",
    )


def answered_case(member_nurse, member_doctor, te_room):
    room = te_room(member_nurse, member_doctor)
    opened = member_nurse.client.post(
        "/api/v1/teleexpertise",
        request_body(room, member_doctor, message_id=f"req-{room.pk}"),
        format="json",
    )
    assert opened.status_code == 201, opened.content
    assert step(member_doctor, room, "accept", f"a-{room.pk}").status_code == 201
    assert step(member_doctor, room, "report", f"r-{room.pk}").status_code == 201
    return room


def test_each_side_records_its_own_act_once_the_report_exists(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = te_room(nurse, doctor)
    nurse.client.post("/api/v1/teleexpertise", request_body(room, doctor), format="json")
    early = act(nurse, room, code="RQD")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "transition_refused")
    step(doctor, room, "accept", "a")
    step(doctor, room, "report", "r")
    wrong = act(nurse, room, code="TE2")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "role_refused")
    first = act(nurse, room, code="RQD")
    assert first.status_code == 201
    assert first.json()["count"] == 1
    assert act(nurse, room, code="RQD").status_code == 200  # the same act again
    assert act(doctor, room, code="TE2").json()["count"] == 1
    other_patient = act(nurse, room, code="RQD", patient="p2")
    assert (other_patient.status_code, other_patient.json()["error"]["code"]) == (409, "conflict")

    ledger = nurse.client.get("/api/v1/billing/ledger").json()["acts"]
    assert [(a["room"], a["code"], a["billable"], a["entry"]) for a in ledger] == [
        (room.pk, "RQD", True, "c2VhbGVkIGVudHJ5")
    ]
    count = nurse.client.get(
        "/api/v1/billing/count",
        {"code": "RQD", "year": ledger[0]["created_at"][:4], "pseudonym": pseudonym("p1")},
    )
    assert count.json() == {"count": 1}


def test_the_fifth_billable_act_is_refused_and_recorded_as_not_billable(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    rooms = [answered_case(nurse, doctor, te_room) for _ in range(5)]
    for number, room in enumerate(rooms[:4], start=1):
        recorded = act(nurse, room, code="RQD")
        assert recorded.json().get("count") == number, recorded.content
    fifth = act(nurse, rooms[4], code="RQD")
    assert (fifth.status_code, fifth.json()["error"]["code"]) == (409, "billing_limit_reached")
    assert "4 of 4" in fifth.json()["error"]["message"]
    assert act(nurse, rooms[4], code="RQD", billable=False).json()["count"] == 4
    assert BillingAct.objects.filter(practitioner=nurse.practitioner, billable=True).count() == 4


def test_the_limit_holds_when_two_devices_record_at_once(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    laptop = member("nurse")  # the same practitioner, another device
    rooms = [answered_case(nurse, doctor, te_room) for _ in range(4)]
    for room in rooms[:3]:
        assert act(nurse, room, code="RQD").status_code == 201
    # The fourth case recorded billable from two devices at once with limit 4: one act.
    # Another case recorded at the same time must not get a 5th billable one either.
    extra = answered_case(nurse, doctor, te_room)
    answers: dict[str, int] = {}

    def record(name, device, room):
        answers[name] = act(device, room, code="RQD").status_code
        connection.close()

    threads = [
        threading.Thread(target=record, args=("phone", nurse, rooms[3])),
        threading.Thread(target=record, args=("laptop", laptop, extra)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) == [201, 409]
    assert BillingAct.objects.filter(practitioner=nurse.practitioner, billable=True).count() == 4


def test_bad_input_is_refused(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    room = answered_case(nurse, doctor, te_room)
    bad = nurse.client.post(
        f"/api/v1/teleexpertise/{room.pk}/act",
        {
            "code": "RQD",
            "year": 2026,
            "pseudonym": "short",
            "billable": True,
            "limit": 4,
            "entry": "AA",
        },
        format="json",
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_request")
    assert act(nurse, room, code="RQD", year=1999).status_code == 400
    assert act(nurse, room, code="RQD", limit=0).status_code == 400
    assert not BillingAct.objects.exists()
