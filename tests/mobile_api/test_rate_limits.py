"""REST rate limits: per device and per client address, on login, sends, uploads and
search; 429 with Retry-After and the error envelope; shared by server processes."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys

import pytest
import requests
from rest_framework.test import APIClient

from chat.clock import ManualClock
from chat.models import Room
from mobile_api.throttling import SharedRateThrottle, parse_rate
from tests.mobile_api.conftest import BEHIND_NGINX
from tests.mobile_api.users import creation, login
from tests.server.test_settings import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rates(settings):
    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **rates,
            },
        }

    return set_rates


@pytest.fixture
def clock(monkeypatch) -> ManualClock:
    # At the start of a minute, so windows are easy to reason about.
    manual = ManualClock(start_ms=1_800_000_000_000)
    monkeypatch.setattr(SharedRateThrottle, "clock", manual)
    return manual


def search(client: APIClient, **extra):
    return client.get("/api/v1/directory/practitioners", {"q": "dur"}, **extra)


def assert_limited(response, *, at_most: int) -> None:
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message_fr"] == "Trop de requêtes ; ralentissez."
    assert 1 <= int(response["Retry-After"]) == error["retry_after"] <= at_most


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic x"])
def test_requests_without_a_valid_token_are_limited_per_address(
    practitioners, rates, clock, authorization
):
    """docs/api.md: every request without a token counts against ``anon``; a refused
    token too, or guessing tokens would be free."""
    member = login(practitioners["nurse"].national_id, certify=False)
    rates(anon="3/minute")
    client = APIClient(REMOTE_ADDR="192.0.2.8")
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    for _ in range(3):
        assert client.get("/api/v1/me").status_code == 401
    assert_limited(client.get("/api/v1/rooms"), at_most=120)
    # Another address has its own budget; a valid token is not counted here.
    assert client.get("/api/v1/me", REMOTE_ADDR="192.0.2.9").status_code == 401
    assert member.client.get("/api/v1/me", REMOTE_ADDR="192.0.2.8").status_code == 200


def test_search_is_limited_per_device(practitioners, rates, clock):
    rates(search_device="3/minute")
    phone = login(practitioners["nurse"].national_id, certify=False)
    laptop = login(practitioners["nurse"].national_id, certify=False)
    for _ in range(3):
        assert search(phone.client).status_code == 200
    assert_limited(search(phone.client), at_most=120)
    assert search(laptop.client).status_code == 200  # another device, its own budget
    assert phone.client.get("/api/v1/rooms").status_code == 200  # other operations go on


def test_search_is_limited_per_address(practitioners, rates, clock):
    rates(search_ip="4/minute")
    phone = login(practitioners["nurse"].national_id, certify=False)
    laptop = login(practitioners["doctor"].national_id, certify=False)
    for client in (phone.client, laptop.client, phone.client, laptop.client):
        assert search(client).status_code == 200
    assert_limited(search(laptop.client), at_most=120)
    # Someone behind another address is not affected.
    assert search(phone.client, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_login_is_limited_per_address_whatever_x_forwarded_for_says(practitioners, rates, clock):
    rates(login_ip="2/minute")
    client = APIClient()

    def dev_login(**extra):
        return client.post(
            "/api/v1/auth/dev-login", {"national_id": "810003456786"}, format="json", **extra
        )

    assert dev_login().status_code == 201
    assert dev_login(HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 201
    # Regression: X-Forwarded-For was trusted as given, so a client could pick a new
    # address per request. The address is the one the ASGI server resolved.
    assert_limited(dev_login(HTTP_X_FORWARDED_FOR="192.0.2.2"), at_most=120)
    assert dev_login(REMOTE_ADDR="192.0.2.3").status_code == 201


def test_sends_are_limited_per_device(practitioners, rates, clock):
    rates(send_device="2/minute")
    nurse = login(practitioners["nurse"].national_id)
    doctor = login(practitioners["doctor"].national_id)
    event = creation(nurse, "direct", [(doctor, "member")])
    room = nurse.client.post("/api/v1/rooms", {"event": event}, format="json").json()["id"]
    body = base64.urlsafe_b64encode(b"x").decode().rstrip("=")
    url = f"/api/v1/rooms/{room}/messages"
    for number in range(2):
        sent = nurse.client.post(url, {"id": f"m{number}", "body": body}, format="json")
        assert sent.status_code == 201
    assert_limited(nurse.client.post(url, {"id": "m2", "body": body}, format="json"), at_most=120)
    assert Room.objects.get(pk=room).last_seq == 2  # the refused send stored nothing
    assert nurse.client.get(url).status_code == 200  # reading history is not a send
    assert doctor.client.post(url, {"id": "d0", "body": body}, format="json").status_code == 201


def test_uploads_are_limited_per_device(practitioners, rates, clock):
    rates(upload_device="1/minute")
    nurse = login(practitioners["nurse"].national_id)
    doctor = login(practitioners["doctor"].national_id)
    event = creation(nurse, "direct", [(doctor, "member")])
    room = nurse.client.post("/api/v1/rooms", {"event": event}, format="json").json()["id"]
    start = {"room": room, "message_id": "photo-1", "size": 1000}
    assert nurse.client.post("/api/v1/attachments/uploads", start, format="json").status_code == 201
    again = {**start, "message_id": "photo-2"}
    assert_limited(
        nurse.client.post("/api/v1/attachments/uploads", again, format="json"), at_most=120
    )


def test_the_window_slides_and_refused_requests_do_not_count(practitioners, rates, clock):
    rates(search_device="2/minute")
    phone = login(practitioners["nurse"].national_id, certify=False)
    assert search(phone.client).status_code == 200
    assert search(phone.client).status_code == 200
    refused = search(phone.client)
    # Both requests of this minute weigh until half of the next one has passed.
    assert_limited(refused, at_most=90)
    assert int(refused["Retry-After"]) == 90
    for _ in range(5):  # hammering while refused costs nothing more
        assert search(phone.client).status_code == 429
    clock.advance(89)
    assert search(phone.client).status_code == 429
    clock.advance(1)
    assert search(phone.client).status_code == 200
    assert search(phone.client).status_code == 429


def test_rates_are_read_as_documented():
    assert parse_rate("30/minute") == (30, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("1000/hour") == (1000, 3600)
    assert parse_rate("2/day") == (2, 86400)
    for bad in ["30", "x/minute", "0/minute", "3/fortnight", ""]:
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate(bad)


def test_the_cache_is_redis_when_configured_and_local_otherwise():
    code = (
        "from django.conf import settings; c = settings.CACHES['default']; "
        "print(c['BACKEND'], c.get('LOCATION', ''), c.get('KEY_PREFIX', ''))"
    )

    def cache_with(env: dict[str, str]) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "RELAIS_DEBUG": "1", **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    assert cache_with({"RELAIS_REDIS_URL": "redis://127.0.0.1:6379/3"}) == (
        "django.core.cache.backends.redis.RedisCache redis://127.0.0.1:6379/3 relais-cache"
    )
    assert cache_with({}).startswith("django.core.cache.backends.locmem.LocMemCache")


def test_limits_are_shared_by_server_processes(start_api_server):
    """Two real server processes on one Redis: one budget per client address."""
    env = {"RELAIS_RATE_LOGIN_IP": "3/minute"}
    first, second = start_api_server(**env), start_api_server(**env)
    address = f"192.0.2.{secrets.randbelow(200) + 20}"
    headers = {**BEHIND_NGINX, "X-Forwarded-For": address}

    def start_login(server) -> requests.Response:
        return requests.get(
            f"{server.http_url}/api/v1/auth/psc/start",
            params={"code_challenge": "x" * 43},
            headers=headers,
            timeout=10,
            allow_redirects=False,
        )

    # PSC is not configured here: each attempt is answered 404, and counted.
    answers = [start_login(server).status_code for server in (first, second, first)]
    assert answers == [404, 404, 404]
    limited = start_login(second)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    other = {**BEHIND_NGINX, "X-Forwarded-For": "198.51.100.9"}
    assert (
        requests.get(
            f"{first.http_url}/api/v1/auth/psc/start",
            params={"code_challenge": "x" * 43},
            headers=other,
            timeout=10,
        ).status_code
        == 404
    )
