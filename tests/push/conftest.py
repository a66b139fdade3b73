"""Fixtures for Web Push: a VAPID key, push turned on, a real local push service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.clock import ManualClock
from chat.services.devices import DeviceIdentity
from push.conf import PushSettings, push_settings
from push.feed import close_feed
from push.services import check_subscription, do_register_subscription
from push.vapid import VapidKey, generate_key
from tests.push.receiver import BrowserSubscription, PushReceiver
from tests.signed_rooms import create_room as do_create_room

SUBJECT = "mailto:securite@relais.example"


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock that starts at the real time: stream entry ids carry real time."""
    return ManualClock(start_ms=time.time_ns() // 1_000_000)


@pytest.fixture
def vapid_key() -> VapidKey:
    return generate_key()


@pytest.fixture
def push_on(settings: Any, vapid_key: VapidKey) -> PushSettings:
    """Push enabled with quick, deterministic retry settings."""
    settings.RELAIS_PUSH = {
        **settings.RELAIS_PUSH,
        "VAPID_PRIVATE_KEY": vapid_key.private_key_text,
        "VAPID_SUBJECT": SUBJECT,
        "ENDPOINT_HOSTS": ["127.0.0.1"],
        "ALLOW_HTTP_ENDPOINTS": True,
        "REQUEST_TIMEOUT_SECONDS": 5,
        "MAX_ATTEMPTS": 4,
        "BACKOFF_BASE_SECONDS": 2,
        "BACKOFF_MAX_SECONDS": 60,
    }
    return push_settings()


@pytest.fixture
async def receiver(vapid_key: VapidKey, clock: Any) -> AsyncIterator[PushReceiver]:
    service = PushReceiver(vapid_public_key=vapid_key.public_key, clock=clock)
    await service.start()
    yield service
    await service.close()


@pytest.fixture
async def no_feed_left() -> AsyncIterator[None]:
    """Close the push feed the test loop may have started."""
    yield
    await close_feed()


@pytest.fixture
def care_team(practitioners, device_token):
    """A care team (nurse, doctor, pharmacist) and a device per person; the physio is
    not a member."""
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="care_team",
        member_ids=[practitioners["doctor"].national_id, practitioners["pharmacist"].national_id],
    )
    devices = {
        name: device_token(practitioners[person], name)
        for name, person in [
            ("nurse_phone", "nurse"),
            ("nurse_tablet", "nurse"),
            ("doctor_phone", "doctor"),
            ("doctor_tablet", "doctor"),
            ("pharmacist_phone", "pharmacist"),
            ("physio_phone", "physio"),
        ]
    }
    practitioner_of = {name: practitioners[name.split("_")[0]].national_id for name in devices}
    return room, devices, practitioner_of


def identity_of(care_team, name: str) -> DeviceIdentity:
    _, devices, practitioner_of = care_team
    return DeviceIdentity(device_id=devices[name][0], practitioner_id=practitioner_of[name])


def register(
    receiver: PushReceiver, identity: DeviceIdentity, settings: PushSettings
) -> BrowserSubscription:
    browser = receiver.subscribe()
    data = browser.to_json()
    checked = check_subscription(
        endpoint=data["endpoint"],
        p256dh=data["keys"]["p256dh"],
        auth=data["keys"]["auth"],
        expires_at=None,
        settings=settings,
    )
    do_register_subscription(identity=identity, subscription=checked)
    return browser


async def aregister(receiver, identity, settings):
    return await database_sync_to_async(register)(receiver, identity, settings)
