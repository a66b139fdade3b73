"""Sending over REST is a WebSocket send without the socket: same idempotency,
membership check, durability and fan-out (mobile_api/sending.py).

The WebSocket clients are real ones on the real ASGI application; the REST calls go
through Django's ASGI handler (as under uvicorn: the view runs in a worker thread and
hands the send to the event loop's store and hub) or through the synchronous handler
(no event loop to join: a store of its own, then publication after commit).
"""

from __future__ import annotations

import base64
import json

import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.test import AsyncClient
from rest_framework.test import APIClient

from chat.models import Envelope
from tests.signed_rooms import certified_device
from tests.signed_rooms import create_room as do_create_room
from tests.wsclient import Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fanout_mode")]


def body(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def care_room(practitioners):
    return do_create_room(
        creator=practitioners["nurse"],
        kind="care_team",
        member_ids=[practitioners["doctor"].national_id],
    )


@pytest.fixture
def tokens(practitioners, device_token):
    for practitioner in practitioners.values():
        certified_device(practitioner)
    return {
        "nurse": device_token(practitioners["nurse"]),
        "nurse_laptop": device_token(practitioners["nurse"], "laptop"),
        "doctor": device_token(practitioners["doctor"]),
        "physio": device_token(practitioners["physio"]),
    }


async def rest_send(token: str, room_id: int, client_id: str, text: str):
    """POST over Django's ASGI handler, in the test's event loop."""
    return await AsyncClient().post(
        f"/api/v1/rooms/{room_id}/messages",
        json.dumps({"id": client_id, "body": body(text)}),
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )


async def test_a_websocket_client_receives_rest_sends_in_order_without_duplicates(
    runtime, care_room, tokens
):
    doctor = Client(token=tokens["doctor"][1])
    phone = Client(token=tokens["nurse"][1])
    await doctor.start()
    await phone.start()
    laptop = tokens["nurse_laptop"][1]  # a REST-only client of the same nurse

    # The phone sends over the WebSocket while the laptop sends over REST, interleaved,
    # and the laptop retries one of its sends (a lost answer).
    sent: list[str] = []
    phone_frames: list[dict] = []
    for number in range(6):
        if number % 2:
            await phone.send(
                {"type": "send", "room": care_room.pk, "id": f"ws-{number}", "body": body("x")}
            )
            while (frame := await phone.receive())["type"] != "ack":
                phone_frames.append(frame)
            assert frame["seq"] == number + 1
            sent.append(f"ws-{number}")
        else:
            answer = await rest_send(laptop, care_room.pk, f"rest-{number}", f"m{number}")
            assert answer.status_code == 201, answer.content
            assert answer.json()["seq"] == number + 1
            sent.append(f"rest-{number}")
    retried = await rest_send(laptop, care_room.pk, "rest-2", "m2")
    assert retried.status_code == 200
    assert (retried.json()["seq"], retried.json()["duplicate"]) == (3, True)

    received = [await doctor.receive_type("message") for _ in sent]
    assert [(m["seq"], m["id"]) for m in received] == [
        (seq, client_id) for seq, client_id in enumerate(sent, start=1)
    ]
    assert received[0]["body"] == body("m0")
    assert received[0]["sender"] == {
        "device": tokens["nurse_laptop"][0],
        "practitioner": "810003456786",
    }
    assert await doctor.frames_until_pong() == []  # nothing twice, nothing more
    # The phone gets the laptop's messages (another device) in order, each once, and
    # never its own back (it has their acks).
    phone_frames += await phone.frames_until_pong()
    assert [(m["type"], m["seq"], m["id"]) for m in phone_frames] == [
        ("message", 1, "rest-0"),
        ("message", 3, "rest-2"),
        ("message", 5, "rest-4"),
    ]
    stored = await sync_to_async(
        lambda: list(
            Envelope.objects.filter(room=care_room)
            .order_by("seq")
            .values_list("client_id", flat=True)
        )
    )()
    assert stored == sent
    for client in (doctor, phone):
        await client.close()


async def test_without_an_event_loop_to_join_the_send_is_still_published(
    runtime, care_room, tokens
):
    doctor = Client(token=tokens["doctor"][1])
    await doctor.start()

    def post_synchronously():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['nurse'][1]}")
        return client.post(
            f"/api/v1/rooms/{care_room.pk}/messages",
            {"id": "sync-1", "body": body("plaie")},
            format="json",
        )

    answer = await sync_to_async(post_synchronously)()
    assert answer.status_code == 201, answer.content
    message = await doctor.receive_type("message")
    assert (message["seq"], message["id"], message["body"]) == (1, "sync-1", body("plaie"))
    assert await doctor.frames_until_pong() == []
    await doctor.close()


async def test_a_non_member_cannot_send_and_nothing_is_stored(runtime, care_room, tokens):
    answer = await rest_send(tokens["physio"][1], care_room.pk, "intruder-1", "hello")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_member")
    missing_room = await rest_send(tokens["nurse"][1], 2**40, "m-1", "hello")
    assert (missing_room.status_code, missing_room.json()["error"]["code"]) == (404, "not_member")
    assert await sync_to_async(Envelope.objects.count)() == 0


async def test_bad_sends_are_refused_with_their_codes(runtime, care_room, tokens, settings):
    settings.RELAIS = {**settings.RELAIS, "MAX_BODY_BYTES": 16}
    token = tokens["nurse"][1]
    too_large = await rest_send(token, care_room.pk, "big-1", "x" * 17)
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "body_too_large")
    assert too_large.json()["error"]["message_fr"].startswith("Le message dépasse")
    client = AsyncClient()
    for payload, field in [
        ({"id": "bad id", "body": ""}, "id"),
        ({"id": "m-1", "body": "not base64!"}, "body"),
        ({"id": "x" * 65, "body": ""}, "id"),
        ({"body": ""}, "id"),
    ]:
        answer = await client.post(
            f"/api/v1/rooms/{care_room.pk}/messages",
            json.dumps(payload),
            content_type="application/json",
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 400, payload
        assert field in answer.json()["error"]["fields"]
    empty = await rest_send(token, care_room.pk, "m-2", "")
    assert empty.status_code == 201
    # base64url of a length no bytes have
    bad_length = await client.post(
        f"/api/v1/rooms/{care_room.pk}/messages",
        json.dumps({"id": "m-3", "body": "abcde"}),
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )
    assert bad_length.status_code == 400
    assert "body" in bad_length.json()["error"]["fields"]
    assert await sync_to_async(Envelope.objects.count)() == 1
