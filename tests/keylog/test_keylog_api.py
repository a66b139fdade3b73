"""The key-transparency log over REST, checked the way a client checks it: every
certificate against a signed tree head (inclusion), every tree head against the
previous one (consistency); revocations; the alert to a practitioner's other devices;
the to-device queue."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient

from chat.models import ToDeviceMessage
from e2ee import transparency
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair
from tests.signed_rooms import create_room
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)
NURSE = "810003456786"
DOCTOR = "810001987659"


def login(national_id: str) -> tuple[APIClient, int, str]:
    client = APIClient()
    response = client.post("/api/v1/auth/dev-login", {"national_id": national_id}, format="json")
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client, response.json()["device"], token


def certify(client: APIClient, national_id: str, device: int, keys: DeviceKeyPair):
    signature = transparency.sign_registration(
        key_pair=keys, national_id=national_id, device=device
    )
    return client.post(
        "/api/v1/devices/keys",
        {**keys.public.to_json(), "signature": b64u(signature)},
        format="json",
    )


def log_key(client: APIClient) -> bytes:
    return unb64u(client.get("/api/v1/keys/log").json()["log_key"])


def test_a_certificate_is_in_the_log_and_the_log_only_grows(practitioners):
    client, device, _ = login(NURSE)
    public = log_key(client)
    start = transparency.parse_tree_head(
        client.get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    keys = DeviceKeyPair.generate()
    response = certify(client, NURSE, device, keys)
    assert response.status_code == 201, response.content
    body = response.json()
    record = transparency.parse_log_entry(body["entry"].encode(), log_public=public)
    assert isinstance(record, transparency.Certificate)
    assert (record.national_id, record.device, record.keys) == (NURSE, device, keys.public)
    head = transparency.parse_tree_head(body["tree_head"], log_public=public)
    transparency.check_inclusion(
        leaf=body["entry"].encode(), index=body["index"], proof=body["proof"], head=head
    )

    # Another practitioner's device joins the log; the nurse's view stays consistent.
    doctor, doctor_device, _ = login(DOCTOR)
    assert certify(doctor, DOCTOR, doctor_device, DeviceKeyPair.generate()).status_code == 201
    latest = transparency.parse_tree_head(
        client.get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    assert latest.size == head.size + 1
    for old in (start, head):
        proof = client.get(
            "/api/v1/keys/log/consistency", {"first": old.size, "second": latest.size}
        ).json()["proof"]
        transparency.check_consistency(old=old, new=latest, proof=proof)
    # A head the log had before is served as signed then.
    again = client.get("/api/v1/keys/log/tree-head", {"size": head.size}).json()["tree_head"]
    assert transparency.parse_tree_head(again, log_public=public) == head

    # The directory answer: the nurse's certificate with a proof against the latest head.
    answer = doctor.get(f"/api/v1/keys/practitioners/{NURSE}").json()
    answer_head = transparency.parse_tree_head(answer["tree_head"], log_public=public)
    [entry] = answer["entries"]
    transparency.check_inclusion(
        leaf=entry["entry"].encode(), index=entry["index"], proof=entry["proof"], head=answer_head
    )
    # A monitor can download the whole log and recompute the root.
    entries = client.get("/api/v1/keys/log/entries", {"start": 0, "end": latest.size}).json()[
        "entries"
    ]
    from e2ee.merkle import leaf_hash, root

    assert root([leaf_hash(e["entry"].encode()) for e in entries]) == latest.root


def test_keys_are_certified_once_and_only_with_a_valid_self_signature(practitioners):
    client, device, _ = login(NURSE)
    keys = DeviceKeyPair.generate()
    bad = client.post(
        "/api/v1/devices/keys",
        {**keys.public.to_json(), "signature": b64u(bytes(64))},
        format="json",
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_keys")
    # Signed for another device number: refused too.
    wrong = transparency.sign_registration(key_pair=keys, national_id=NURSE, device=device + 1)
    response = client.post(
        "/api/v1/devices/keys", {**keys.public.to_json(), "signature": b64u(wrong)}, format="json"
    )
    assert response.json()["error"]["code"] == "bad_keys"
    assert certify(client, NURSE, device, keys).status_code == 201
    twice = certify(client, NURSE, device, DeviceKeyPair.generate())
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "conflict")
    assert client.get("/api/v1/keys/log").json()["tree_head"]["head"]["size"] == 1


def test_a_lost_phone_is_revoked_in_the_log_and_loses_its_token(practitioners):
    tablet, tablet_device, _ = login(NURSE)
    phone, phone_device, _ = login(NURSE)
    assert certify(phone, NURSE, phone_device, DeviceKeyPair.generate()).status_code == 201
    other, _, _ = login(DOCTOR)
    assert tablet.delete(f"/api/v1/devices/{phone_device}").status_code == 204
    assert phone.get("/api/v1/rooms").status_code == 401
    entries = other.get(f"/api/v1/keys/practitioners/{NURSE}").json()["entries"]
    records = [
        transparency.parse_log_entry(e["entry"].encode(), log_public=log_key(other))
        for e in entries
    ]
    assert [type(r).__name__ for r in records] == ["Certificate", "Revocation"]
    assert records[1].device == phone_device
    # One cannot revoke somebody else's device.
    assert other.delete(f"/api/v1/devices/{tablet_device}").status_code == 404


async def test_a_new_device_for_my_national_id_alerts_my_other_devices(practitioners, runtime):
    from channels.db import database_sync_to_async as sync_to_async

    _, _, phone_token = await sync_to_async(login)(NURSE)
    phone = Client(token=phone_token)
    await phone.start()
    intruder, intruder_device, _ = await sync_to_async(login)(NURSE)
    response = await sync_to_async(certify)(
        intruder, NURSE, intruder_device, DeviceKeyPair.generate()
    )
    assert response.status_code == 201
    frame = await phone.receive_type("to_device")
    notice = json.loads(base64.urlsafe_b64decode(frame["body"] + "=="))
    assert (frame["kind"], notice["type"], notice["device"]) == (
        "notice",
        "device_certified",
        intruder_device,
    )
    assert frame["sender"] is None
    await phone.close()


def test_to_device_queue_send_fetch_acknowledge(practitioners):
    sender, sender_device, _ = login(NURSE)
    receiver, receiver_device, _ = login(DOCTOR)
    body = b64u(b'{"opaque":"sealed share"}')
    one = {"messages": [{"device": receiver_device, "body": body}]}
    # Deny by default: nobody shares a room with the doctor yet.
    assert sender.post("/api/v1/devices/messages", one, format="json").status_code == 404
    create_room(creator=practitioners["nurse"], kind="direct", member_ids=[DOCTOR])
    sent = sender.post(
        "/api/v1/devices/messages",
        {"messages": [{"device": receiver_device, "body": body}] * 2},
        format="json",
    )
    assert sent.status_code == 201, sent.content
    everything = receiver.get("/api/v1/devices/messages").json()["messages"]
    # (the doctor's signing device, certified for the room, was announced as a notice)
    assert [m["kind"] for m in everything] == ["notice", "key_share", "key_share"]
    queued = everything[1:]
    assert [m["body"] for m in queued] == [body, body]
    assert queued[0]["sender"] == {"device": sender_device, "practitioner": NURSE}
    assert receiver.post(
        "/api/v1/devices/messages/ack", {"up_to": queued[0]["id"]}, format="json"
    ).json() == {"deleted": 2}  # the notice and the first share
    assert [m["id"] for m in receiver.get("/api/v1/devices/messages").json()["messages"]] == [
        queued[1]["id"]
    ]
    # Nothing for unknown devices, nothing oversized, nothing partial.
    refused = sender.post(
        "/api/v1/devices/messages",
        {"messages": [{"device": receiver_device, "body": body}, {"device": 987654, "body": body}]},
        format="json",
    )
    assert refused.json()["error"]["code"] == "not_found"
    too_big = sender.post(
        "/api/v1/devices/messages",
        {"messages": [{"device": receiver_device, "body": b64u(bytes(5000))}]},
        format="json",
    )
    assert too_big.json()["error"]["code"] == "body_too_large"
    assert ToDeviceMessage.objects.filter(kind="key_share").count() == 1
