"""Téléexpertise rooms for the server-side tests: signed rooms (tests.signed_rooms) and
REST clients holding device tokens."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import Room
from chat.services.devices import do_issue_device_token
from directory.models import Practitioner
from tests.signed_rooms import certified_device, create_room


@dataclass
class Member:
    practitioner: Practitioner
    device: int
    client: APIClient

    @property
    def national_id(self) -> str:
        return self.practitioner.national_id


def opaque(text: str) -> str:
    """An envelope body: the server never decodes it beyond its size."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def in_hours(hours: float) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


@pytest.fixture
def member(practitioners):
    def make(name: str) -> Member:
        practitioner = practitioners[name]
        certified_device(practitioner)
        device, token = do_issue_device_token(practitioner=practitioner, device_name="phone")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return Member(practitioner=practitioner, device=device.pk, client=client)

    return make


@pytest.fixture
def te_room():
    def make(requerant: Member, requis: Member, kind: str = "teleexpertise") -> Room:
        return create_room(
            creator=requerant.practitioner, kind=kind, member_ids=[requis.national_id]
        )

    return make


def request_body(room: Room, requis: Member, *, message_id: str = "req-1", hours: float = 48):
    return {
        "room": room.pk,
        "requis": requis.national_id,
        "deadline": in_hours(hours),
        "id": message_id,
        "body": opaque("the encrypted request"),
    }


def step(member: Member, room: Room, action: str, message_id: str, **extra):
    return member.client.post(
        f"/api/v1/teleexpertise/{room.pk}/steps",
        {"action": action, "id": message_id, "body": opaque(action), **extra},
        format="json",
    )
