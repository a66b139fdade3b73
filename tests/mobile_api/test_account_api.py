"""The caller's account over REST: who am I, unread counts, marking read, logging out
(tokens and keys), revoking one's other devices."""

from __future__ import annotations

import base64
import secrets

import pytest
from rest_framework.test import APIClient

from chat.models import Device, DeviceCursor, Room
from chat.services.unread import UNREAD_COUNT_LIMIT
from directory.models import Activity
from identity.models import PscSession
from keylog.models import LogEntry
from keylog.services import certified_keys
from tests.mobile_api.users import User, creation, login

pytestmark = pytest.mark.django_db(transaction=True)


def body(size: int = 32) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(size)).decode().rstrip("=")


def send(user: User, room_id: int, client_id: str) -> int:
    response = user.client.post(
        f"/api/v1/rooms/{room_id}/messages", {"id": client_id, "body": body()}, format="json"
    )
    assert response.status_code == 201, response.content
    seq: int = response.json()["seq"]
    return seq


@pytest.fixture
def people(practitioners):
    return {
        "nurse": login(practitioners["nurse"].national_id),
        "doctor": login(practitioners["doctor"].national_id),
        "pharmacist": login(practitioners["pharmacist"].national_id),
    }


@pytest.fixture
def room(people) -> Room:
    nurse, doctor = people["nurse"], people["doctor"]
    event = creation(nurse, "care_team", [(doctor, "member")])
    response = nurse.client.post("/api/v1/rooms", {"event": event}, format="json")
    assert response.status_code == 201, response.content
    return Room.objects.get(pk=response.json()["id"])


def unread_of(user: User) -> dict[int, dict]:
    response = user.client.get("/api/v1/rooms/unread")
    assert response.status_code == 200, response.content
    return {entry["room"]: entry for entry in response.json()["rooms"]}


def test_me_tells_who_and_on_which_device(people, practitioners):
    nurse = people["nurse"]
    Activity.objects.create(
        practitioner=practitioners["nurse"],
        activity_hash="a" * 32,
        profession_code="60",
        structure_name="Cabinet infirmier des Lilas",
        postcode="69003",
        town="Lyon",
    )
    laptop = login(nurse.national_id, certify=False)
    me = laptop.client.get("/api/v1/me").json()
    assert me["practitioner"]["national_id"] == nurse.national_id
    assert me["practitioner"]["last_name"] == "Martin"
    places = [a["structure_name"] for a in me["practitioner"]["activities"]]
    assert places[-1] == "Cabinet infirmier des Lilas"
    assert len(places) == Activity.objects.filter(practitioner=practitioners["nurse"]).count()
    assert (me["device"]["device"], me["device"]["current"], me["device"]["keys"]) == (
        laptop.device,
        True,
        None,
    )
    assert [(d["device"], d["current"]) for d in me["devices"]] == [
        (nurse.device, False),
        (laptop.device, True),
    ]
    assert me["devices"][0]["keys"]["sign_key"] == nurse.keys.public.to_json()["sign_key"]
    assert me["psc"] is None  # development login: no Pro Santé Connect session


def test_me_shows_the_activity_chosen_after_a_psc_login(people):
    nurse = people["nurse"]
    activities = [
        {"profession_code": "60", "structure_name": "Cabinet A"},
        {"profession_code": "60", "structure_name": "Clinique B"},
    ]
    PscSession.objects.create(
        device_id=nurse.device,
        practitioner_id=nurse.national_id,
        subject="s",
        sealed_tokens=b"",
        activities=activities,
        activity=activities[1],
        created_at="2026-01-05T10:00:00Z",
        checked_at="2026-01-05T10:00:00Z",
    )
    psc = nurse.client.get("/api/v1/me").json()["psc"]
    assert psc["activity"]["structure_name"] == "Clinique B"
    assert len(psc["activities"]) == 2


def test_unread_counts_others_messages_after_the_read_point(people, room):
    nurse, doctor = people["nurse"], people["doctor"]
    for number in range(3):
        send(doctor, room.pk, f"d{number}")
    send(nurse, room.pk, "n0")  # her own message is never unread for her
    assert unread_of(nurse)[room.pk] == {
        "room": room.pk,
        "last_seq": 4,
        "read_seq": 0,
        "unread": 3,
        "unread_capped": False,
    }
    assert unread_of(doctor)[room.pk]["unread"] == 1
    # Read up to 2 on the phone: the laptop, logged in later, sees the same.
    assert (
        nurse.client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 2}, format="json").status_code
        == 204
    )
    laptop = login(nurse.national_id, certify=False)
    assert unread_of(laptop)[room.pk]["unread"] == 1
    assert unread_of(laptop)[room.pk]["read_seq"] == 2
    assert DeviceCursor.objects.get(device_id=nurse.device, room=room).read_seq == 2
    # Read never moves back.
    nurse.client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 1}, format="json")
    assert unread_of(nurse)[room.pk]["unread"] == 1


def test_unread_counts_only_what_a_late_member_may_see(people, room):
    nurse, doctor, pharmacist = people["nurse"], people["doctor"], people["pharmacist"]
    for number in range(4):
        send(doctor, room.pk, f"before{number}")
    event = nurse.sign(nurse.state(room.pk), "add_member", pharmacist.member("member"))
    added = nurse.client.post(f"/api/v1/rooms/{room.pk}/members", {"event": event}, format="json")
    assert added.status_code == 201, added.content
    assert unread_of(pharmacist)[room.pk]["unread"] == 0
    send(doctor, room.pk, "after")
    assert unread_of(pharmacist)[room.pk] == {
        "room": room.pk,
        "last_seq": 5,
        "read_seq": 0,
        "unread": 1,
        "unread_capped": False,
    }
    # Marking read before one joined is refused.
    refused = pharmacist.client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 2}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "bad_sequence")


def test_unread_counting_is_bounded(people, room, settings, monkeypatch):
    nurse, doctor = people["nurse"], people["doctor"]
    monkeypatch.setattr("chat.services.unread.UNREAD_COUNT_LIMIT", 3)
    for number in range(5):
        send(doctor, room.pk, f"d{number}")
    entry = unread_of(nurse)[room.pk]
    assert (entry["unread"], entry["unread_capped"]) == (3, True)
    assert UNREAD_COUNT_LIMIT == 1000  # the real bound


def test_marking_read_is_for_members_and_within_the_room(people, room):
    nurse, pharmacist = people["nurse"], people["pharmacist"]
    send(people["doctor"], room.pk, "d0")
    outsider = pharmacist.client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 1}, format="json")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (404, "not_member")
    beyond = nurse.client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 2}, format="json")
    assert (beyond.status_code, beyond.json()["error"]["code"]) == (400, "bad_sequence")
    missing = nurse.client.post(f"/api/v1/rooms/{room.pk}/read", {}, format="json")
    assert missing.json()["error"]["fields"]["seq"]
    assert not DeviceCursor.objects.filter(room=room).exists()


def test_logout_revokes_the_token_and_the_keys(people):
    nurse = people["nurse"]
    assert certified_keys(national_id=nurse.national_id, device_id=nurse.device) is not None
    assert nurse.client.post("/api/v1/auth/logout").status_code == 204
    assert nurse.client.get("/api/v1/rooms").status_code == 401
    # The log now says so, with the reason, and nobody may add these keys to a room.
    revocation = LogEntry.objects.get(device_id=nurse.device, kind="revocation")
    assert b'"reason":"logout"' in bytes(revocation.leaf)
    assert certified_keys(national_id=nurse.national_id, device_id=nurse.device) is None
    entries = people["doctor"].client.get(f"/api/v1/keys/practitioners/{nurse.national_id}")
    assert [e["index"] for e in entries.json()["entries"]][-1] == revocation.index


def test_logout_of_a_device_without_keys_revokes_its_token(practitioners):
    phone = login(practitioners["nurse"].national_id, certify=False)
    assert phone.client.post("/api/v1/auth/logout").status_code == 204
    assert phone.client.get("/api/v1/me").status_code == 401
    assert not LogEntry.objects.filter(device_id=phone.device).exists()


def test_revoke_others_leaves_only_this_device(people):
    nurse = people["nurse"]
    tablet = login(nurse.national_id)
    laptop = login(nurse.national_id, certify=False)
    answer = laptop.client.post("/api/v1/devices/revoke-others", {}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"revoked": [nurse.device, tablet.device]}
    assert nurse.client.get("/api/v1/me").status_code == 401
    assert tablet.client.get("/api/v1/me").status_code == 401
    assert laptop.client.get("/api/v1/me").status_code == 200
    revoked = LogEntry.objects.filter(kind="revocation").values_list("device_id", flat=True)
    assert sorted(d for d in revoked if d is not None) == [nurse.device, tablet.device]
    # Someone else's devices are untouched.
    assert people["doctor"].client.get("/api/v1/me").status_code == 200
    assert Device.objects.filter(practitioner_id=nurse.national_id, revoked_at=None).count() == 1


def test_a_device_of_someone_else_cannot_be_revoked(people):
    doctor_device = people["doctor"].device
    answer = people["nurse"].client.delete(f"/api/v1/devices/{doctor_device}")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")
    assert people["doctor"].client.get("/api/v1/me").status_code == 200


def test_anonymous_cannot_use_the_account_operations(room):
    client = APIClient()
    for method, path in [
        ("get", "/api/v1/me"),
        ("get", "/api/v1/rooms/unread"),
        ("post", f"/api/v1/rooms/{room.pk}/read"),
        ("post", f"/api/v1/rooms/{room.pk}/messages"),
        ("post", "/api/v1/devices/revoke-others"),
        ("post", "/api/v1/auth/logout"),
    ]:
        response = getattr(client, method)(path)
        assert (response.status_code, response.json()["error"]["code"]) == (
            401,
            "not_authenticated",
        )
