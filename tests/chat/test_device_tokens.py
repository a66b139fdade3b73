"""Device tokens expire when unused (RELAIS_TOKEN_IDLE_DAYS, default 30): each use pushes
the expiry back, so a phone used every week never logs in again and a lost one stops
working on its own. An archiver's token does not expire (it runs unattended)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import Device
from chat.services.devices import SLIDE_EVERY, authenticate_token
from chat.services.organisations import do_create_archiver

IDLE = timedelta(days=30)


class Clock:
    """The time ``chat.services.devices`` reads, moved by the test."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    moved = Clock()
    with mock.patch("chat.services.devices.timezone.now", moved):
        yield moved


def test_a_token_unused_for_the_idle_period_stops_working(practitioners, device_token, clock):
    device_id, token = device_token(practitioners["nurse"])
    clock.advance(IDLE - timedelta(seconds=1))
    assert authenticate_token(token=token) is not None  # used just in time: pushed back
    clock.advance(IDLE - timedelta(seconds=1))
    assert authenticate_token(token=token) is not None
    clock.advance(IDLE + timedelta(seconds=1))
    assert authenticate_token(token=token) is None
    assert Device.objects.get(pk=device_id).revoked_at is None  # expired, not revoked


def test_the_expiry_moves_at_most_once_a_day(practitioners, device_token, clock):
    device_id, token = device_token(practitioners["nurse"])
    first = Device.objects.get(pk=device_id).token_expires_at
    assert first == clock.now + IDLE
    clock.advance(SLIDE_EVERY / 2)
    assert authenticate_token(token=token) is not None
    assert Device.objects.get(pk=device_id).token_expires_at == first
    clock.advance(SLIDE_EVERY)
    assert authenticate_token(token=token) is not None
    assert Device.objects.get(pk=device_id).token_expires_at == clock.now + IDLE


def test_an_expired_token_gets_401_over_rest(practitioners, device_token, clock):
    _device_id, token = device_token(practitioners["nurse"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/rooms").status_code == 200
    clock.advance(IDLE + timedelta(seconds=1))
    assert api.get("/api/v1/rooms").status_code == 401


def test_the_idle_period_is_a_setting(practitioners, device_token, clock, settings):
    settings.RELAIS = {**settings.RELAIS, "TOKEN_IDLE_SECONDS": 3600}
    _device_id, token = device_token(practitioners["nurse"])
    clock.advance(timedelta(hours=1, seconds=1))
    assert authenticate_token(token=token) is None


def test_an_archiver_token_does_not_expire(practitioners, clock):
    created = do_create_archiver(
        structure_id="1750000123", name="Centre de santé", device_name="archiver"
    )
    assert created.device.token_expires_at is None
    clock.advance(timedelta(days=3650))
    assert authenticate_token(token=created.token) is not None
