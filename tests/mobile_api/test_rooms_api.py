"""The REST basics: development login, rooms created and changed by signed state
events, history; one error envelope. Every user here is a real REST client: it logs in,
certifies its device keys over REST, and signs its own events."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient

from chat.models import Envelope, Membership, Room, RoomStateEvent
from e2ee import state as chain
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair
from tests.mobile_api.users import User, creation, login

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(practitioners):
    return {
        "admin": login(practitioners["nurse"].national_id),
        "member": login(practitioners["doctor"].national_id),
        "outsider": login(practitioners["physio"].national_id),
        "other": login(practitioners["pharmacist"].national_id),
    }


@pytest.fixture
def room(people):
    event = creation(people["admin"], "care_team", [(people["member"], "member")])
    response = people["admin"].client.post("/api/v1/rooms", {"event": event}, format="json")
    assert response.status_code == 201, response.content
    return Room.objects.get(pk=response.json()["id"])


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
        ("get", f"/api/v1/rooms/{room.pk}/state"),
        ("post", "/api/v1/devices/keys"),
        ("get", "/api/v1/devices/messages"),
        ("post", "/api/v1/identity"),
        ("get", "/api/v1/keys/practitioners/810003456786"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    client.credentials(HTTP_AUTHORIZATION="Bearer forged")
    assert client.get("/api/v1/rooms").json()["error"]["code"] == "auth_failed"


def test_create_and_list_rooms(people):
    admin, member = people["admin"], people["member"]
    created = admin.client.post(
        "/api/v1/rooms", {"event": creation(admin, "direct", [(member, "member")])}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["members"] == [
        {"practitioner": member.national_id, "role": "member"},
        {"practitioner": admin.national_id, "role": "admin"},
    ]
    assert (body["state_epoch"], body["policy"]["archiver_required"], body["archiver"]) == (
        0,
        False,
        None,
    )
    listed = member.client.get("/api/v1/rooms").json()["rooms"]
    assert [(r["id"], r["role"]) for r in listed] == [(body["id"], "member")]
    assert people["outsider"].client.get("/api/v1/rooms").json()["rooms"] == []
    # The member verifies the stored chain himself and finds what was signed.
    verified = member.state(body["id"])
    assert verified.room == body["uid"]
    assert sorted(verified.members) == sorted([admin.national_id, member.national_id])


def _forged_signature(event: str) -> str:
    value = json.loads(event)
    value["sig"] = b64u(bytes(64))
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("direct_alone", "bad_request"),
        ("direct_three", "bad_request"),
        ("unknown_kind", "bad_state_event"),
        ("unknown_practitioner", "not_found"),
        ("no_event", "bad_request"),
        ("forged_signature", "bad_state_event"),
        ("signed_by_another_device", "bad_state_event"),
        ("uncertified_member_device", "key_not_certified"),
    ],
)
def test_bad_room_creation_is_refused_and_creates_nothing(people, case, code):
    admin, member, other = people["admin"], people["member"], people["other"]
    payload: dict[str, object]
    if case == "direct_alone":
        payload = {"event": creation(admin, "direct", [])}
    elif case == "direct_three":
        payload = {"event": creation(admin, "direct", [(member, "member"), (other, "member")])}
    elif case == "unknown_kind":
        payload = {"event": creation(admin, "party", [])}
    elif case == "unknown_practitioner":
        ghost = User(admin.client, "899999999999", 999999, DeviceKeyPair.generate())
        payload = {"event": creation(admin, "care_team", [(ghost, "member")])}
    elif case == "no_event":
        payload = {"kind": "care_team", "members": []}
    elif case == "forged_signature":
        payload = {"event": _forged_signature(creation(admin, "care_team", []))}
    elif case == "signed_by_another_device":
        payload = {"event": creation(member, "care_team", [(admin, "member")])}
    else:
        uncertified = login(other.national_id, certify=False)
        payload = {"event": creation(admin, "care_team", [(uncertified, "member")])}
    response = admin.client.post("/api/v1/rooms", payload, format="json")
    assert response.json()["error"]["code"] == code, response.content
    assert (Room.objects.count(), Membership.objects.count(), RoomStateEvent.objects.count()) == (
        0,
        0,
        0,
    )


# Who may add or remove members: the full matrix.
@pytest.mark.parametrize(
    ("actor", "status", "code"),
    [("admin", 201, None), ("member", 403, "not_admin"), ("outsider", 404, "not_member")],
)
def test_adding_a_member_needs_an_admin(people, room, actor, status, code):
    signer = people[actor]
    current = people["admin"].state(room.pk)
    event = signer.sign(current, "add_member", people["other"].member("member"))
    response = signer.client.post(
        f"/api/v1/rooms/{room.pk}/members", {"event": event}, format="json"
    )
    assert response.status_code == status, response.content
    if code:
        assert response.json()["error"]["code"] == code
    added = Membership.objects.filter(room=room, practitioner_id=people["other"].national_id)
    assert added.exists() == (status == 201)
    assert RoomStateEvent.objects.filter(room=room).count() == (2 if status == 201 else 1)


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
    signer, removed = people[actor], people[target]
    current = people["admin"].state(room.pk)
    event = signer.sign(current, "remove_member", {"national_id": removed.national_id})
    response = signer.client.delete(
        f"/api/v1/rooms/{room.pk}/members/{removed.national_id}", {"event": event}, format="json"
    )
    assert response.status_code == status, response.content
    still_member = Membership.objects.filter(
        room=room, practitioner_id=removed.national_id
    ).exists()
    assert still_member == (status != 204 and target != "outsider")


def test_adding_twice_conflicts_and_a_stale_event_is_refused(people, room):
    admin, other = people["admin"], people["other"]
    path = f"/api/v1/rooms/{room.pk}/state"
    before = admin.state(room.pk)
    first = admin.client.post(
        path, {"event": admin.sign(before, "add_member", other.member("member"))}, format="json"
    )
    assert first.status_code == 201, first.content
    again = admin.client.post(
        path,
        {"event": admin.sign(admin.state(room.pk), "add_member", other.member("member"))},
        format="json",
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    # Signed against the old head: another event came first.
    stale = admin.client.post(
        path,
        {
            "event": admin.sign(
                before, "set_role", {"national_id": other.national_id, "role": "admin"}
            )
        },
        format="json",
    )
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "stale_state")
    assert RoomStateEvent.objects.filter(room=room).count() == 2


def test_a_revoked_device_cannot_be_added(people, room):
    admin, other = people["admin"], people["other"]
    # The pharmacist lost this phone and revoked it from another device of hers.
    second = login(other.national_id)
    assert second.client.delete(f"/api/v1/devices/{other.device}").status_code == 204
    event = admin.sign(admin.state(room.pk), "add_member", other.member("member"))
    response = admin.client.post(f"/api/v1/rooms/{room.pk}/state", {"event": event}, format="json")
    assert response.json()["error"]["code"] == "key_not_certified"
    assert not Membership.objects.filter(room=room, practitioner_id=other.national_id).exists()


def test_state_changes_are_visible_to_every_member(people, room):
    admin, member = people["admin"], people["member"]
    policy = chain.Policy(
        archiver_required=False, rotate_after_messages=50, rotate_after_seconds=3600
    )
    event = admin.sign(admin.state(room.pk), "set_policy", {"policy": policy.to_json()})
    assert (
        admin.client.post(
            f"/api/v1/rooms/{room.pk}/state", {"event": event}, format="json"
        ).status_code
        == 201
    )
    listed = member.client.get("/api/v1/rooms").json()["rooms"][0]
    assert listed["policy"] == policy.to_json()
    assert member.state(room.pk).policy == policy
    events = member.client.get(f"/api/v1/rooms/{room.pk}/state", {"after": 0}).json()["events"]
    assert [e["epoch"] for e in events] == [1]


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


def test_history_pages_forward_and_backward(people, room):
    member = people["member"]
    client, device_id = member.client, member.device
    _store(room, device_id, member.national_id, 7)
    path = f"/api/v1/rooms/{room.pk}/messages"
    seqs = lambda response: [m["seq"] for m in response.json()["messages"]]  # noqa: E731
    assert seqs(client.get(path, {"after": 2, "limit": 3})) == [3, 4, 5]
    assert seqs(client.get(path, {"before": 4, "limit": 2})) == [2, 3]
    assert seqs(client.get(path, {"limit": 2})) == [6, 7]
    first = client.get(path, {"after": 0, "limit": 1}).json()["messages"][0]
    assert base64.urlsafe_b64decode(first["body"] + "==") == b"b1"
    assert first["sender"] == {"device": device_id, "practitioner": member.national_id}
    assert client.get(path, {"after": 8}).json()["error"]["code"] == "bad_sequence"
    assert client.get(path, {"after": 1, "before": 3}).json()["error"]["code"] == "bad_request"
    assert client.get(path, {"after": -1}).json()["error"]["code"] == "bad_request"
    assert people["outsider"].client.get(path).status_code == 404


def test_a_new_member_does_not_see_history_from_before_joining(people, room):
    admin, member, other = people["admin"], people["member"], people["other"]
    _store(room, member.device, member.national_id, 3)
    event = admin.sign(admin.state(room.pk), "add_member", other.member("member"))
    assert (
        admin.client.post(
            f"/api/v1/rooms/{room.pk}/members", {"event": event}, format="json"
        ).status_code
        == 201
    )
    _store(room, member.device, member.national_id, 2, start=4)
    response = other.client.get(f"/api/v1/rooms/{room.pk}/messages", {"after": 0})
    assert [m["seq"] for m in response.json()["messages"]] == [4, 5]


def test_logout_revokes_the_token(people):
    client = people["admin"].client
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/rooms").status_code == 401
