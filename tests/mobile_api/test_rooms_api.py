"""The REST basics: development login, rooms, members, history; one error envelope."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from chat.models import Envelope, Membership
from chat.services.rooms import do_create_room

pytestmark = pytest.mark.django_db(transaction=True)


def login(national_id: str) -> APIClient:
    client = APIClient()
    response = client.post("/api/v1/auth/dev-login", {"national_id": national_id}, format="json")
    assert response.status_code == 201, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


@pytest.fixture
def people(practitioners):
    return {
        "admin": practitioners["nurse"].national_id,
        "member": practitioners["doctor"].national_id,
        "outsider": practitioners["physio"].national_id,
        "other": practitioners["pharmacist"].national_id,
    }


@pytest.fixture
def room(practitioners, people):
    return do_create_room(
        creator=practitioners["nurse"], kind="care_team", member_ids=[people["member"]]
    )


def test_dev_login_gives_a_token_for_a_known_practitioner(practitioners):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/dev-login",
        {"national_id": "810003456786", "device_name": "iPhone"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["practitioner"]["profession_code"] == "60"
    unknown = client.post("/api/v1/auth/dev-login", {"national_id": "899999999999"}, format="json")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert unknown.json()["error"]["message_fr"]


def test_dev_login_does_not_exist_without_debug(practitioners, settings):
    settings.RELAIS = {**settings.RELAIS, "DEV_LOGIN": False}
    response = APIClient().post(
        "/api/v1/auth/dev-login", {"national_id": "810003456786"}, format="json"
    )
    assert response.status_code == 404


def test_anonymous_requests_are_refused(room):
    client = APIClient()
    for method, path in [
        ("get", "/api/v1/rooms"),
        ("post", "/api/v1/rooms"),
        ("get", f"/api/v1/rooms/{room.pk}/messages"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    client.credentials(HTTP_AUTHORIZATION="Bearer forged")
    assert client.get("/api/v1/rooms").json()["error"]["code"] == "auth_failed"


def test_create_and_list_rooms(people):
    admin = login(people["admin"])
    created = admin.post(
        "/api/v1/rooms", {"kind": "direct", "members": [people["member"]]}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["members"] == [
        {"practitioner": people["member"], "role": "member"},
        {"practitioner": people["admin"], "role": "admin"},
    ]
    listed = login(people["member"]).get("/api/v1/rooms").json()["rooms"]
    assert [(r["id"], r["role"]) for r in listed] == [(created.json()["id"], "member")]
    assert login(people["outsider"]).get("/api/v1/rooms").json()["rooms"] == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"kind": "direct", "members": []}, "bad_request"),
        ({"kind": "direct", "members": ["810001987659", "810002765435"]}, "bad_request"),
        ({"kind": "party", "members": []}, "bad_request"),
        ({"kind": "care_team", "members": ["899999999999"]}, "not_found"),
        ({"kind": "care_team"}, "bad_request"),
    ],
)
def test_bad_room_creation_is_refused_and_creates_nothing(people, payload, code):
    response = login(people["admin"]).post("/api/v1/rooms", payload, format="json")
    assert response.json()["error"]["code"] == code
    assert Membership.objects.count() == 0


# Who may add or remove members: the full matrix.
@pytest.mark.parametrize(
    ("actor", "status", "code"),
    [("admin", 201, None), ("member", 403, "not_admin"), ("outsider", 404, "not_member")],
)
def test_adding_a_member_needs_an_admin(people, room, actor, status, code):
    response = login(people[actor]).post(
        f"/api/v1/rooms/{room.pk}/members", {"practitioner": people["other"]}, format="json"
    )
    assert response.status_code == status
    if code:
        assert response.json()["error"]["code"] == code
    assert Membership.objects.filter(room=room, practitioner_id=people["other"]).exists() == (
        status == 201
    )


@pytest.mark.parametrize(
    ("actor", "target", "status"),
    [
        ("admin", "member", 204),
        ("member", "member", 204),  # leaving
        ("member", "admin", 403),
        ("outsider", "member", 404),
        ("admin", "outsider", 404),
        ("admin", "admin", 409),  # the last admin cannot leave members behind
    ],
)
def test_removing_a_member(people, room, actor, target, status):
    response = login(people[actor]).delete(f"/api/v1/rooms/{room.pk}/members/{people[target]}")
    assert response.status_code == status
    still_member = Membership.objects.filter(room=room, practitioner_id=people[target]).exists()
    assert still_member == (status != 204 and target != "outsider")


def test_adding_twice_conflicts(people, room):
    admin = login(people["admin"])
    path = f"/api/v1/rooms/{room.pk}/members"
    assert admin.post(path, {"practitioner": people["other"]}, format="json").status_code == 201
    again = admin.post(path, {"practitioner": people["other"]}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")


def _store(room, device_id: int, practitioner_id: str, count: int, start: int = 1) -> None:
    Envelope.objects.bulk_create(
        Envelope(
            room=room,
            seq=seq,
            sender_device_id=device_id,
            sender_practitioner_id=practitioner_id,
            client_id=f"c{seq}",
            body=f"b{seq}".encode(),
            size=2,
            created_at_ms=seq,
        )
        for seq in range(start, start + count)
    )
    room.last_seq = start + count - 1
    room.save()


def test_history_pages_forward_and_backward(people, room, practitioners):
    client = login(people["member"])
    device_id = practitioners["doctor"].devices.get().pk
    _store(room, device_id, people["member"], 7)
    path = f"/api/v1/rooms/{room.pk}/messages"
    seqs = lambda response: [m["seq"] for m in response.json()["messages"]]  # noqa: E731
    assert seqs(client.get(path, {"after": 2, "limit": 3})) == [3, 4, 5]
    assert seqs(client.get(path, {"before": 4, "limit": 2})) == [2, 3]
    assert seqs(client.get(path, {"limit": 2})) == [6, 7]
    first = client.get(path, {"after": 0, "limit": 1}).json()["messages"][0]
    assert base64.urlsafe_b64decode(first["body"] + "==") == b"b1"
    assert first["sender"] == {"device": device_id, "practitioner": people["member"]}
    assert client.get(path, {"after": 8}).json()["error"]["code"] == "bad_sequence"
    assert client.get(path, {"after": 1, "before": 3}).json()["error"]["code"] == "bad_request"
    assert client.get(path, {"after": -1}).json()["error"]["code"] == "bad_request"
    assert login(people["outsider"]).get(path).status_code == 404


def test_a_new_member_does_not_see_history_from_before_joining(people, room, practitioners):
    device_id = practitioners["doctor"].devices.create(name="x", token_hash=b"h" * 32).pk
    _store(room, device_id, people["member"], 3)
    admin = login(people["admin"])
    admin.post(f"/api/v1/rooms/{room.pk}/members", {"practitioner": people["other"]}, format="json")
    _store(room, device_id, people["member"], 2, start=4)
    response = login(people["other"]).get(f"/api/v1/rooms/{room.pk}/messages", {"after": 0})
    assert [m["seq"] for m in response.json()["messages"]] == [4, 5]


def test_logout_revokes_the_token(people):
    client = login(people["admin"])
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/rooms").status_code == 401
