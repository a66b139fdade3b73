"""The key-transparency log over REST, checked the way a client checks it: identity
keys and cross-signed devices under VRF labels, every entry against a signed head
(inclusion), heads against each other (consistency), revocations, identity resets;
the public read (no token, rate-limited, no national id); witness cosignatures; the
alert to a practitioner's other devices; the to-device queue."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from chat.models import Device, ToDeviceMessage
from e2ee import merkle, transparency, tree_heads
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair, raw_public
from keylog.models import LogEntry
from tests.identities import certify_over_rest, identity_body, identity_key, registration
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
    return certify_over_rest(client, national_id, device, keys)


def log_key(client: APIClient) -> bytes:
    return unb64u(APIClient().get("/api/v1/keys/log").json()["log_key"])


def verified_lookup(client: APIClient, national_id: str) -> transparency.LabelChain:
    """What a client does with a lookup: every proof and signature checked."""
    info = APIClient().get("/api/v1/keys/log").json()
    public = unb64u(info["log_key"])
    answer = client.get(f"/api/v1/keys/practitioners/{national_id}").json()
    head = tree_heads.parse_tree_head(answer["tree_head"], log_public=public)
    label = unb64u(answer["label"])
    transparency.verify_label(
        vrf_public=unb64u(info["vrf_key"]),
        national_id=national_id,
        label=label,
        proof=unb64u(answer["vrf_proof"]),
    )
    records = []
    for item in answer["entries"]:
        leaf = item["entry"].encode()
        tree_heads.check_inclusion(leaf=leaf, index=item["index"], proof=item["proof"], head=head)
        records.append((item["index"], transparency.parse_log_entry(leaf, log_public=public)))
    return transparency.verify_chain(national_id=national_id, label=label, entries=records)


def test_identity_then_devices_under_a_hidden_label_and_the_log_only_grows(practitioners):
    client, device, _ = login(NURSE)
    public = log_key(client)
    start = tree_heads.parse_tree_head(
        APIClient().get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    keys = DeviceKeyPair.generate()
    response = certify(client, NURSE, device, keys)
    assert response.status_code == 201, response.content
    body = response.json()
    record = transparency.parse_log_entry(body["entry"].encode(), log_public=public)
    assert isinstance(record, transparency.DeviceEntry)
    assert (record.device, record.sign_key, record.prev) == (device, keys.public.sign_key, 0)
    assert record.identity_key == raw_public(identity_key(NURSE))
    head = tree_heads.parse_tree_head(body["tree_head"], log_public=public)
    tree_heads.check_inclusion(
        leaf=body["entry"].encode(), index=body["index"], proof=body["proof"], head=head
    )
    # The entries never name the practitioner: only a label.
    assert NURSE.encode() not in b"".join(bytes(e.leaf) for e in LogEntry.objects.all())

    # Another practitioner's identity and device; the nurse's view stays consistent.
    doctor, doctor_device, _ = login(DOCTOR)
    assert certify(doctor, DOCTOR, doctor_device, DeviceKeyPair.generate()).status_code == 201
    latest = tree_heads.parse_tree_head(
        APIClient().get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    assert latest.size == head.size + 2
    for old in (start, head):
        proof = (
            APIClient()
            .get("/api/v1/keys/log/consistency", {"first": old.size, "second": latest.size})
            .json()["proof"]
        )
        tree_heads.check_consistency(old=old, new=latest, proof=proof)
    again = APIClient().get("/api/v1/keys/log/tree-head", {"size": head.size}).json()
    assert tree_heads.parse_tree_head(again["tree_head"], log_public=public) == head

    # The doctor looks the nurse up and verifies everything.
    chain = verified_lookup(doctor, NURSE)
    assert chain.identity_key == raw_public(identity_key(NURSE))
    assert {d: c.sign_key for d, c in chain.devices.items()} == {device: keys.public.sign_key}
    # Anyone can download the log and recompute the root.
    entries = APIClient().get("/api/v1/keys/log/entries", {"start": 0, "end": latest.size})
    hashes = [merkle.leaf_hash(e["entry"].encode()) for e in entries.json()["entries"]]
    assert merkle.root(hashes) == latest.root


def test_a_device_needs_a_cross_signature_by_the_current_identity_key(practitioners):
    client, device, _ = login(NURSE)
    keys = DeviceKeyPair.generate()
    # No identity key yet: nothing to certify under.
    early = client.post("/api/v1/devices/keys", registration(NURSE, device, keys), format="json")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "conflict")
    assert client.post("/api/v1/identity", identity_body(NURSE), format="json").status_code == 201
    twice = client.post("/api/v1/identity", identity_body(NURSE), format="json")
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "conflict")
    # A binding by another key, a cross-signature by a key that is not the identity
    # key (what a server without it would have to make), a self-signature for another
    # device number: all refused, and nothing is appended.
    forged = {**identity_body(NURSE), "binding": b64u(bytes(64))}
    assert client.post("/api/v1/identity", forged, format="json").status_code == 400
    rogue = Ed25519PrivateKey.generate()
    bad_cross = {
        **registration(NURSE, device, keys),
        "cross_signature": b64u(
            transparency.sign_device_certificate(
                rogue,
                national_id=NURSE,
                device=device,
                kind="device",
                sign_key=keys.public.sign_key,
            )
        ),
    }
    other_device = {**registration(NURSE, device + 1, keys)}
    other_device["kex_signature"] = registration(NURSE, device, keys)["kex_signature"]
    for body in (bad_cross, other_device):
        refused = client.post("/api/v1/devices/keys", body, format="json")
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "bad_keys")
    assert LogEntry.objects.count() == 1
    assert certify(client, NURSE, device, keys).status_code == 201
    again = certify(client, NURSE, device, DeviceKeyPair.generate())
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    assert Device.objects.get(pk=device).public_keys["kex_key"] == b64u(keys.public.kex_key)


def test_an_identity_reset_supersedes_the_key_and_revokes_the_other_devices(
    practitioners, settings
):
    phone, phone_device, _ = login(NURSE)
    assert certify(phone, NURSE, phone_device, DeviceKeyPair.generate()).status_code == 201
    new_phone, _, _ = login(NURSE)
    replacement = Ed25519PrivateKey.generate()
    body = {
        "identity_key": b64u(raw_public(replacement)),
        "binding": b64u(transparency.sign_identity_binding(replacement, NURSE)),
    }
    refused = new_phone.post("/api/v1/identity", body, format="json")
    assert refused.json()["error"]["code"] == "conflict"  # no explicit reset
    settings.KEYLOG_RESET_WINDOW = 0  # a login older than the window may not reset
    late = new_phone.post("/api/v1/identity", {**body, "reset": True}, format="json")
    assert late.json()["error"]["code"] == "conflict"
    settings.KEYLOG_RESET_WINDOW = 600
    reset = new_phone.post("/api/v1/identity", {**body, "reset": True}, format="json")
    assert reset.status_code == 201, reset.content
    assert phone.get("/api/v1/rooms").status_code == 401  # the old phone is revoked
    chain = verified_lookup(new_phone, NURSE)
    assert chain.identity_keys == [raw_public(identity_key(NURSE)), raw_public(replacement)]
    assert chain.devices == {}  # the old device was cross-signed by the old key
    revocation = chain.history[-1][1]
    assert isinstance(revocation, transparency.RevocationEntry)
    assert (revocation.device, revocation.reason) == (phone_device, "identity_reset")


def test_a_lost_phone_is_revoked_in_the_log_and_loses_its_token(practitioners):
    tablet, tablet_device, _ = login(NURSE)
    phone, phone_device, _ = login(NURSE)
    assert certify(phone, NURSE, phone_device, DeviceKeyPair.generate()).status_code == 201
    other, _, _ = login(DOCTOR)
    assert tablet.delete(f"/api/v1/devices/{phone_device}").status_code == 204
    assert phone.get("/api/v1/rooms").status_code == 401
    chain = verified_lookup(other, NURSE)
    assert [type(r).__name__ for _, r in chain.history] == [
        "IdentityEntry",
        "DeviceEntry",
        "RevocationEntry",
    ]
    assert chain.devices == {}
    # One cannot revoke somebody else's device.
    assert other.delete(f"/api/v1/devices/{tablet_device}").status_code == 404


def test_the_log_is_public_but_lookups_need_a_token_and_reads_are_limited(practitioners, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "keylog_ip": "8/minute",
            "keylog_lookup_device": "2/minute",
        },
    }
    client, device, _ = login(NURSE)
    assert certify(client, NURSE, device, DeviceKeyPair.generate()).status_code == 201
    anonymous = APIClient()
    for path, params in [
        ("/api/v1/keys/log", {}),
        ("/api/v1/keys/log/tree-head", {"size": 1}),
        ("/api/v1/keys/log/consistency", {"first": 1, "second": 2}),
        ("/api/v1/keys/log/entries", {"start": 0, "end": 2}),
    ]:
        response = anonymous.get(path, params)
        assert response.status_code == 200, (path, response.content)
        assert NURSE not in response.content.decode()
    assert anonymous.get(f"/api/v1/keys/practitioners/{NURSE}").status_code == 401
    pages = anonymous.get("/api/v1/keys/log/entries", {"start": 0, "end": 1001})
    assert pages.json()["error"]["code"] == "bad_request"  # bounded pages
    # Five public reads so far, by this address: three more, then refused.
    statuses = [anonymous.get("/api/v1/keys/log").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    lookups = [client.get(f"/api/v1/keys/practitioners/{NURSE}").status_code for _ in range(3)]
    assert lookups == [200, 200, 429]


def test_only_configured_witnesses_cosign_and_clients_get_the_cosigned_head(
    practitioners, settings
):
    witness, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    settings.KEYLOG_WITNESSES = [b64u(raw_public(witness))]
    client, device, _ = login(NURSE)
    assert certify(client, NURSE, device, DeviceKeyPair.generate()).status_code == 201
    info = APIClient().get("/api/v1/keys/log").json()
    public = unb64u(info["log_key"])
    assert info["witnesses"] == [b64u(raw_public(witness))]
    latest = tree_heads.parse_tree_head(info["latest"]["tree_head"], log_public=public)
    assert latest.size == 2
    # Nothing cosigned yet: clients are served the newest head, without cosignatures.
    assert info["cosignatures"] == []

    def post(key: Ed25519PrivateKey, head: tree_heads.TreeHead):
        cosignature = tree_heads.cosign(witness_key=key, log_public=public, head=head)
        return APIClient().post(
            "/api/v1/keys/log/cosignatures",
            {"size": head.size, "timestamp": head.timestamp, **cosignature},
            format="json",
        )

    assert post(stranger, latest).status_code == 400  # not a configured witness
    forged = tree_heads.TreeHead(latest.size, bytes(32), latest.timestamp, latest.signature)
    assert post(witness, forged).status_code == 400  # does not verify for the real head
    first = tree_heads.parse_tree_head(
        APIClient().get("/api/v1/keys/log/tree-head", {"size": 1}).json()["tree_head"],
        log_public=public,
    )
    assert post(witness, first).status_code == 201
    # A newer head exists, but clients are served the newest one the witness cosigned.
    served = APIClient().get("/api/v1/keys/log").json()
    assert served["tree_head"]["head"]["size"] == 1
    head = tree_heads.parse_tree_head(served["tree_head"], log_public=public)
    assert tree_heads.cosigners(
        served["cosignatures"], log_public=public, witnesses=[raw_public(witness)], head=head
    ) == {raw_public(witness)}


def test_a_fresh_head_is_signed_when_the_newest_is_old(practitioners, settings):
    client, device, _ = login(NURSE)
    assert certify(client, NURSE, device, DeviceKeyPair.generate()).status_code == 201
    public = log_key(client)
    first = tree_heads.parse_tree_head(
        APIClient().get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    assert (
        tree_heads.parse_tree_head(
            APIClient().get("/api/v1/keys/log").json()["tree_head"], log_public=public
        )
        == first
    )  # recent enough: the same head
    settings.KEYLOG_HEAD_INTERVAL = 0
    fresh = tree_heads.parse_tree_head(
        APIClient().get("/api/v1/keys/log").json()["tree_head"], log_public=public
    )
    assert (fresh.size, fresh.root) == (first.size, first.root)
    assert fresh.timestamp >= first.timestamp
    assert fresh.signature != first.signature


async def test_a_new_device_for_my_national_id_alerts_my_other_devices(practitioners, runtime):
    from channels.db import database_sync_to_async as sync_to_async

    phone_client, phone_device, phone_token = await sync_to_async(login)(NURSE)
    assert (
        await sync_to_async(certify)(phone_client, NURSE, phone_device, DeviceKeyPair.generate())
    ).status_code == 201
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
