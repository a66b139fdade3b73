"""The archiver on the server: its certificate says ``archiver``; rooms name it only
with such a certificate, and never as a member; it reads the rooms that name it (from
the moment they do) and writes nothing."""

from __future__ import annotations

import pytest

from chat.models import Membership, Room
from e2ee import transparency, tree_heads
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair, raw_public
from tests import identities
from tests.archiver.helpers import (
    ORGANISATION,
    archiver,
    creation,
    login,
    store_envelopes,
)
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)
NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"


def error_code(response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def people(practitioners):
    return {"admin": login(NURSE), "member": login(DOCTOR), "outsider": login(PHYSIO)}


def create(admin, others, *, archiver_device):
    event = creation(admin, others, archiver=archiver_device)
    return admin.client.post("/api/v1/rooms", {"event": event}, format="json")


def test_the_log_certifies_an_archiver_as_archiver_and_a_practitioner_as_device(people):
    device = archiver()
    public = unb64u(device.client.get("/api/v1/keys/log").json()["log_key"])
    answer = people["admin"].client.get(f"/api/v1/keys/practitioners/{ORGANISATION}").json()
    head = tree_heads.parse_tree_head(answer["tree_head"], log_public=public)
    records = []
    for entry in answer["entries"]:
        tree_heads.check_inclusion(
            leaf=entry["entry"].encode(), index=entry["index"], proof=entry["proof"], head=head
        )
        records.append(
            (
                entry["index"],
                transparency.parse_log_entry(entry["entry"].encode(), log_public=public),
            )
        )
    identity, certificate = (record for _, record in records)
    assert isinstance(identity, transparency.IdentityEntry)
    assert identity.kind == "organisation"
    assert isinstance(certificate, transparency.DeviceEntry)
    assert (certificate.device, certificate.kind, certificate.sign_key) == (
        device.device,
        "archiver",
        device.keys.public.sign_key,
    )
    chain = transparency.verify_chain(
        national_id=ORGANISATION, label=unb64u(answer["label"]), entries=records
    )
    assert list(chain.devices) == [device.device]
    nurse = people["admin"].client.get(f"/api/v1/keys/practitioners/{NURSE}").json()
    kinds = [
        (r.kind if isinstance(r, transparency.IdentityEntry | transparency.DeviceEntry) else None)
        for r in (
            transparency.parse_log_entry(e["entry"].encode(), log_public=public)
            for e in nurse["entries"]
        )
    ]
    assert kinds == ["practitioner", "device"]


def test_a_room_names_a_certified_archiver_which_reads_it_and_writes_nothing(people):
    admin, member, outsider = people["admin"], people["member"], people["outsider"]
    device = archiver()
    response = create(admin, [member], archiver_device=device.room_device)
    assert response.status_code == 201, response.content
    room_id = response.json()["id"]
    assert response.json()["archiver"] == device.room_device.archiver_json()
    room = Room.objects.get(pk=room_id)
    assert (room.archiver_device_id, room.archiver_after_seq) == (device.device, 0)
    assert not Membership.objects.filter(practitioner_id=ORGANISATION).exists()

    # It lists and reads the room: the signed chain and the envelopes.
    [listed] = device.client.get("/api/v1/rooms").json()["rooms"]
    assert (listed["id"], listed["role"]) == (room_id, None)
    assert device.state(room_id).archiver == device.room_device
    store_envelopes(room_id, member, range(1, 4))
    history = device.client.get(f"/api/v1/rooms/{room_id}/messages", {"after": 0}).json()
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3]

    # Members may send it their sender keys; someone outside the room may not.
    share = {"messages": [{"device": device.device, "body": b64u(b"sealed")}]}
    assert member.client.post("/api/v1/devices/messages", share, format="json").status_code == 201
    refused = outsider.client.post("/api/v1/devices/messages", share, format="json")
    assert (refused.status_code, error_code(refused)) == (404, "not_found")

    # It changes nothing: no state event, no key share to members.
    response = device.post_event(room_id, "set_archiver", {"archiver": None})
    assert (response.status_code, error_code(response)) == (404, "not_member")
    to_member = {"messages": [{"device": member.device, "body": b64u(b"x")}]}
    response = device.client.post("/api/v1/devices/messages", to_member, format="json")
    assert error_code(response) == "not_found"
    # Another organisation's archiver sees none of it.
    stranger = archiver(structure_id="3" + "12345678900011")
    assert stranger.client.get("/api/v1/rooms").json()["rooms"] == []
    assert stranger.client.get(f"/api/v1/rooms/{room_id}/state").status_code == 404
    assert stranger.client.get(f"/api/v1/rooms/{room_id}/messages").status_code == 404


async def test_the_archiver_cannot_post_an_envelope(people, runtime):
    from channels.db import database_sync_to_async as sync_to_async

    admin, member = people["admin"], people["member"]
    device = await sync_to_async(archiver)()
    response = await sync_to_async(create)(admin, [member], archiver_device=device.room_device)
    room_id = response.json()["id"]
    client = Client(token=device.token)
    await client.start()
    await client.send({"type": "send", "room": room_id, "id": "a1", "body": b64u(b"opaque")})
    refusal = await client.receive_type("error")
    assert (refusal["code"], refusal["ref"]) == ("not_member", "a1")
    await client.close()
    assert await sync_to_async(Room.objects.get)(pk=room_id) is not None
    assert (await sync_to_async(Room.objects.get)(pk=room_id)).last_seq == 0


def test_set_archiver_needs_an_archiver_certificate(people):
    admin, member = people["admin"], people["member"]
    response = create(admin, [member], archiver_device=None)
    room_id = response.json()["id"]
    uncertified = archiver(certify=False)  # an archiver device whose keys the log lacks
    certified = archiver()
    # A practitioner's device is vouched for as a device, not as an archiver: the signed
    # state itself refuses it, for the server as for every member.
    response = admin.post_event(
        room_id, "set_archiver", {"archiver": people["outsider"].room_device.archiver_json()}
    )
    assert (response.status_code, error_code(response)) == (400, "bad_state_event")
    assert "not vouched for" in response.json()["error"]["message"]
    # Keys the organisation's identity key signed, but not certified in the log.
    cases = {
        "an uncertified key": uncertified.room_device,
        "other keys than certified": identities.room_device(
            ORGANISATION, certified.device, DeviceKeyPair.generate()
        ),
    }
    for why, fake in cases.items():
        response = admin.post_event(room_id, "set_archiver", {"archiver": fake.archiver_json()})
        assert (response.status_code, error_code(response)) == (409, "key_not_certified"), why
        assert "as an archiver" in response.json()["error"]["message"]
    assert Room.objects.get(pk=room_id).archiver_device_id is None

    store_envelopes(room_id, member, range(1, 3))  # before the archiver is named
    response = admin.post_event(
        room_id, "set_archiver", {"archiver": certified.room_device.archiver_json()}
    )
    assert response.status_code == 201, response.content
    room = Room.objects.get(pk=room_id)
    assert (room.archiver_device_id, room.archiver_after_seq) == (certified.device, 2)
    assert room.archiver == certified.room_device.archiver_json()
    store_envelopes(room_id, member, range(3, 5))
    history = certified.client.get(f"/api/v1/rooms/{room_id}/messages", {"after": 0}).json()
    assert [m["seq"] for m in history["messages"]] == [3, 4]  # only since it was named
    # Unnamed again: it reads nothing more.
    assert admin.post_event(room_id, "set_archiver", {"archiver": None}).status_code == 201
    assert certified.client.get(f"/api/v1/rooms/{room_id}/messages").status_code == 404


@pytest.mark.parametrize("archiver_case", ["practitioner", "uncertified"])
def test_a_creation_naming_a_false_archiver_is_refused(people, archiver_case):
    admin, member = people["admin"], people["member"]
    fake = (
        people["outsider"].room_device
        if archiver_case == "practitioner"
        else archiver(certify=False).room_device
    )
    response = create(admin, [member], archiver_device=fake)
    expected = (
        (400, "bad_state_event")  # vouched for as a device, not as an archiver
        if archiver_case == "practitioner"
        else (409, "key_not_certified")
    )
    assert (response.status_code, error_code(response)) == expected
    assert Room.objects.count() == 0


def test_an_archiver_is_never_a_member_nor_a_members_device(people):
    admin, member = people["admin"], people["member"]
    device = archiver()
    # Listed as a member at creation, or added later: refused.
    response = create(admin, [member, device], archiver_device=None)
    assert (response.status_code, error_code(response)) == (400, "bad_state_event")
    room_id = create(admin, [member], archiver_device=None).json()["id"]
    response = admin.post_event(room_id, "add_member", device.member("member"))
    assert (response.status_code, error_code(response)) == (400, "bad_state_event")
    # Its device is vouched for as an archiver, never as a member's device.
    assert "not vouched for" in response.json()["error"]["message"]
    # A member presenting the archiver's keys as one of their own devices (vouched for
    # by their own identity key): the log certifies no such device of theirs.
    disguised = identities.room_device(DOCTOR, device.device, device.keys).entry_json()
    response = member.post_event(
        room_id, "add_device", {"national_id": DOCTOR, "device": disguised}
    )
    assert (response.status_code, error_code(response)) == (409, "key_not_certified")
    assert "as a member's device" in response.json()["error"]["message"]
    # Once the room names it archiver, the chain itself forbids making it a member.
    assert (
        admin.post_event(
            room_id, "set_archiver", {"archiver": device.room_device.archiver_json()}
        ).status_code
        == 201
    )
    # (even with a device its identity key vouched for as a member's device)
    sign_key = device.keys.public.sign_key
    member_device = {
        "device": device.device,
        "sign_key": b64u(sign_key),
        "cross_sig": b64u(
            transparency.sign_device_certificate(
                identities.identity_key(ORGANISATION),
                national_id=ORGANISATION,
                device=device.device,
                kind="device",
                sign_key=sign_key,
            )
        ),
    }
    content = {
        "national_id": ORGANISATION,
        "role": "member",
        "identity_key": b64u(raw_public(identities.identity_key(ORGANISATION))),
        "devices": [member_device],
    }
    response = admin.post_event(room_id, "add_member", content)
    assert (response.status_code, error_code(response)) == (409, "conflict")
    assert sorted(admin.state(room_id).members) == sorted([NURSE, DOCTOR])
