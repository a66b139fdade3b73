"""Fixtures of the WebSocket tests: a care-team room and a device token per person."""

from __future__ import annotations

import base64

import pytest

from tests.signed_rooms import certified_device
from tests.signed_rooms import create_room as do_create_room


def body(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def care_room(practitioners):
    return do_create_room(
        creator=practitioners["nurse"],
        kind="care_team",
        member_ids=[practitioners["doctor"].national_id, practitioners["pharmacist"].national_id],
    )


@pytest.fixture
def tokens(practitioners, device_token):
    # Certify everyone's signing device first: a device certified later is announced to
    # the practitioner's connected devices (tested in tests/keylog).
    for practitioner in practitioners.values():
        certified_device(practitioner)
    return {
        "nurse": device_token(practitioners["nurse"]),
        "nurse_tablet": device_token(practitioners["nurse"], "tablet"),
        "doctor": device_token(practitioners["doctor"]),
        "pharmacist": device_token(practitioners["pharmacist"]),
        "physio": device_token(practitioners["physio"]),
    }
