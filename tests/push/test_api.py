"""The Web Push REST endpoints: subscription, VAPID key, mutes, rate limits, errors."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rest_framework.test import APIClient

from push.models import PushSubscription, RoomMute
from tests.signed_rooms import create_room as do_create_room

pytestmark = pytest.mark.django_db(transaction=True)

FCM = "https://fcm.googleapis.com/fcm/send/dGhpcyBpcyBub3QgYSByZWFsIHRva2Vu:APA91b"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def browser_subscription(endpoint: str = FCM) -> dict:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))},
    }


@pytest.fixture
def production_push(push_on, settings):
    """Push as production configures it: https only, known push services only."""
    settings.RELAIS_PUSH = {
        **settings.RELAIS_PUSH,
        "ALLOW_HTTP_ENDPOINTS": False,
        "ENDPOINT_HOSTS": ["fcm.googleapis.com", "*.notify.windows.com"],
    }


@pytest.fixture
def api(practitioners, device_token):
    def client_for(person: str, device: str = "phone") -> tuple[APIClient, int]:
        device_id, token = device_token(practitioners[person], device)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client, device_id

    return client_for


def error_of(response):
    return response.json()["error"]["code"]


@pytest.mark.usefixtures("production_push")
def test_register_read_replace_and_delete_the_device_subscription(api):
    client, device_id = api("nurse")
    first = browser_subscription()
    created = client.put("/api/v1/push/subscription", first, format="json")
    assert created.status_code == 201, created.content
    assert created.json() == {"endpoint": FCM, "expirationTime": None, "device": device_id}
    assert client.get("/api/v1/push/subscription").json()["endpoint"] == FCM

    second = browser_subscription("https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB")
    second["expirationTime"] = 1_900_000_000_000
    replaced = client.put("/api/v1/push/subscription", second, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["expirationTime"] == 1_900_000_000_000
    stored = PushSubscription.objects.get()
    assert (stored.device_id, stored.endpoint) == (device_id, second["endpoint"])
    assert stored.p256dh == second["keys"]["p256dh"]

    assert client.delete("/api/v1/push/subscription").status_code == 204
    assert PushSubscription.objects.count() == 0
    assert client.delete("/api/v1/push/subscription").status_code == 204  # idempotent
    missing = client.get("/api/v1/push/subscription")
    assert (missing.status_code, error_of(missing)) == (404, "not_found")


@pytest.mark.usefixtures("production_push")
def test_an_endpoint_moves_to_the_device_that_registers_it_last(api):
    nurse, _ = api("nurse")
    doctor, doctor_device = api("doctor")
    shared_browser = browser_subscription()
    assert nurse.put("/api/v1/push/subscription", shared_browser, format="json").status_code == 201
    assert doctor.put("/api/v1/push/subscription", shared_browser, format="json").status_code == 201
    assert list(PushSubscription.objects.values_list("device_id", flat=True)) == [doctor_device]


@pytest.mark.usefixtures("production_push")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "https"),
        ({"endpoint": "https://push.attacker.example/x"}, "push service"),
        ({"endpoint": "https://10.0.0.7/admin"}, "push service"),
        ({"endpoint": "https://user:pw@fcm.googleapis.com/x"}, "user or password"),
        ({"endpoint": "https://fcm.googleapis.com/" + "a" * 2100}, None),
        ({"endpoint": "https://fcm.googleapis.com/é"}, "ASCII"),
        ({"keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"a" * 16)}}, "curve"),
        ({"keys": {"p256dh": b64url(b"\x02" * 33), "auth": b64url(b"a" * 16)}}, "65 bytes"),
        ({"keys": {"p256dh": "not base64!", "auth": b64url(b"a" * 16)}}, "base64url"),
        ({"keys": {"p256dh": None, "auth": b64url(b"a" * 16)}}, None),
        ({"auth_secret": "x"}, None),
    ],
)
def test_invalid_subscriptions_are_refused_and_nothing_is_stored(api, change, reason):
    client, _ = api("nurse")
    subscription = browser_subscription()
    if "keys" in change and change["keys"]["p256dh"] is not None:
        subscription["keys"] = change["keys"]
    elif "keys" in change:
        subscription["keys"] = {"auth": change["keys"]["auth"]}
    else:
        subscription.update(change)
    response = client.put("/api/v1/push/subscription", subscription, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    if reason is None:
        assert error["code"] == "bad_request"  # shape: missing, unknown or too long
    else:
        assert error["code"] == "bad_push_subscription"
        assert reason in error["message"]
        assert error["message_fr"].startswith("L'abonnement aux notifications est invalide")
    assert PushSubscription.objects.count() == 0


def test_auth_secret_must_be_16_bytes(api, push_on):
    client, _ = api("nurse")
    subscription = browser_subscription("https://127.0.0.1/push/x")
    subscription["keys"]["auth"] = b64url(b"short")
    response = client.put("/api/v1/push/subscription", subscription, format="json")
    assert (response.status_code, error_of(response)) == (400, "bad_push_subscription")


def test_development_allows_a_local_http_push_service(api, push_on):
    client, _ = api("nurse")
    response = client.put(
        "/api/v1/push/subscription",
        browser_subscription("http://127.0.0.1:9999/push/abc"),
        format="json",
    )
    assert response.status_code == 201


def test_vapid_public_key(api, push_on, vapid_key):
    client, _ = api("nurse")
    response = client.get("/api/v1/push/vapid-key")
    assert response.json() == {"public_key": vapid_key.public_key}
    raw = base64.urlsafe_b64decode(response.json()["public_key"] + "=")
    assert len(raw) == 65
    assert raw[0] == 4


def test_without_a_vapid_key_push_is_disabled(api, settings):
    settings.RELAIS_PUSH = {**settings.RELAIS_PUSH, "VAPID_PRIVATE_KEY": ""}
    client, _ = api("nurse")
    for response in (
        client.get("/api/v1/push/vapid-key"),
        client.put("/api/v1/push/subscription", browser_subscription(), format="json"),
    ):
        assert (response.status_code, error_of(response)) == (404, "push_disabled")
        assert response.json()["error"]["message_fr"]
    assert PushSubscription.objects.count() == 0


def test_anonymous_requests_are_refused(push_on):
    client = APIClient()
    for method, path in [
        ("get", "/api/v1/push/vapid-key"),
        ("put", "/api/v1/push/subscription"),
        ("get", "/api/v1/push/mutes"),
        ("put", "/api/v1/rooms/1/mute"),
    ]:
        response = getattr(client, method)(path)
        assert (response.status_code, error_of(response)) == (401, "not_authenticated")


def test_mute_and_unmute_a_room(api, practitioners, push_on):
    client, device_id = api("doctor")
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    muted = client.put(f"/api/v1/rooms/{room.pk}/mute", {}, format="json")
    assert muted.json() == {"room": room.pk, "scope": "practitioner", "until": None}
    device_only = client.put(
        f"/api/v1/rooms/{room.pk}/mute",
        {"scope": "device", "until": "2099-01-01T08:00:00Z"},
        format="json",
    )
    assert device_only.status_code == 200
    assert client.get("/api/v1/push/mutes").json() == {
        "mutes": [
            {"room": room.pk, "scope": "practitioner", "until": None},
            {"room": room.pk, "scope": "device", "until": "2099-01-01T08:00:00+00:00"},
        ]
    }
    # Muting again changes the mute instead of adding one.
    client.put(f"/api/v1/rooms/{room.pk}/mute", {"scope": "device"}, format="json")
    assert RoomMute.objects.filter(device_id=device_id).get().until is None

    assert client.delete(f"/api/v1/rooms/{room.pk}/mute?scope=device").status_code == 204
    assert list(RoomMute.objects.values_list("practitioner_id", flat=True)) == [
        practitioners["doctor"].national_id
    ]
    assert client.delete(f"/api/v1/rooms/{room.pk}/mute").status_code == 204
    assert RoomMute.objects.count() == 0


def test_only_members_mute_and_bad_input_is_refused(api, practitioners, push_on):
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    outsider, _ = api("physio")
    refused = outsider.put(f"/api/v1/rooms/{room.pk}/mute", {}, format="json")
    assert (refused.status_code, error_of(refused)) == (404, "not_member")
    missing = outsider.put("/api/v1/rooms/999999/mute", {}, format="json")
    assert (missing.status_code, error_of(missing)) == (404, "not_member")
    for path in (f"/api/v1/rooms/{room.pk}/mute", "/api/v1/rooms/999999/mute"):
        unmuted = outsider.delete(path)
        assert (unmuted.status_code, error_of(unmuted)) == (404, "not_member")
    member, _ = api("doctor")
    for payload in ({"scope": "room"}, {"until": "2001-01-01T00:00:00Z"}, {"volume": 0}):
        response = member.put(f"/api/v1/rooms/{room.pk}/mute", payload, format="json")
        assert (response.status_code, error_of(response)) == (400, "bad_request")
    bad_scope = member.delete(f"/api/v1/rooms/{room.pk}/mute?scope=everyone")
    assert bad_scope.status_code == 400
    assert RoomMute.objects.count() == 0


def test_rate_limited_per_device_with_retry_after(api, push_on, settings):
    settings.RELAIS_PUSH = {**settings.RELAIS_PUSH, "RATE_DEVICE": "3/minute"}
    phone, _ = api("nurse", "phone")
    tablet, _ = api("nurse", "tablet")
    for _ in range(3):
        assert phone.get("/api/v1/push/vapid-key").status_code == 200
    limited = phone.get("/api/v1/push/vapid-key")
    assert (limited.status_code, error_of(limited)) == (429, "rate_limited")
    assert 0 < int(limited["Retry-After"]) <= 60
    assert limited.json()["error"]["message_fr"] == "Trop de requêtes ; ralentissez."
    assert tablet.get("/api/v1/push/vapid-key").status_code == 200  # another device


def test_rate_limited_per_ip_across_devices(api, push_on, settings):
    settings.RELAIS_PUSH = {**settings.RELAIS_PUSH, "RATE_IP": "4/minute"}
    clients = [api("nurse", f"device-{n}")[0] for n in range(5)]
    statuses = [client.get("/api/v1/push/mutes").status_code for client in clients]
    assert statuses == [200, 200, 200, 200, 429]
    other_ip = clients[4].get("/api/v1/push/mutes", REMOTE_ADDR="192.0.2.8")
    assert other_ip.status_code == 200
