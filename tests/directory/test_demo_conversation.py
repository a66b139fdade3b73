"""``seed_demo``'s demo conversation: real end-to-end encrypted envelopes the REST API
shows as they are, made once."""

from __future__ import annotations

import base64
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from chat.models import Envelope, Room
from chat.services.devices import do_issue_device_token
from directory.demo_conversation import DEVICE_NAME, DOCTOR, MESSAGES, PHYSIO
from directory.models import Practitioner
from e2ee.envelopes import parse_envelope

pytestmark = pytest.mark.django_db(transaction=True)


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_makes_one_encrypted_conversation_the_api_shows():
    out = seed()
    assert "Demo conversation: room" in out
    assert "3 end-to-end encrypted messages" in out
    seed()  # again, as every `make run` does
    rooms = Room.objects.filter(created_by_id=DOCTOR, kind="direct")
    assert rooms.count() == 1
    room = rooms.get()
    assert set(room.memberships.values_list("practitioner_id", flat=True)) == {DOCTOR, PHYSIO}

    _, token = do_issue_device_token(
        practitioner=Practitioner.objects.get(pk=DOCTOR), device_name="curl"
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    listing = api.get("/api/v1/rooms").json()
    assert [r["id"] for r in listing["rooms"]] == [room.pk]
    page = api.get(f"/api/v1/rooms/{room.pk}/messages").json()
    messages = page["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    for message, (author, text) in zip(messages, MESSAGES, strict=True):
        assert message["sender"]["practitioner"] == author
        body = base64.urlsafe_b64decode(message["body"] + "==")
        envelope = parse_envelope(body)  # a well-formed, signed envelope of the protocol
        assert envelope.sender == (author, message["sender"]["device"])
        assert text.encode() not in body
        assert b"genou" not in body
    devices = {m["sender"]["device"] for m in messages}
    assert len(devices) == 2
    assert Envelope.objects.filter(room=room).count() == 3
    assert (
        set(
            Practitioner.objects.get(pk=DOCTOR)
            .devices.filter(name=DEVICE_NAME)
            .values_list("pk", flat=True)
        )
        <= devices
    )
