"""Logout: RP-initiated through Relais, and a PSC-side logout noticed with the refresh
token (the device token is revoked and its WebSocket closed)."""

from __future__ import annotations

import time
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from rest_framework.test import APIClient

from e2ee.keys import DeviceKeyPair
from identity.clock import use_clock
from identity.models import PscSession
from keylog.services import chain_of
from tests.identities import certify_over_rest
from tests.identity.browser import RELAIS, form_action, form_fields
from tests.identity.conftest import LoginRun
from tests.wsclient import Client as WsClient

pytestmark = pytest.mark.django_db(transaction=True)

DOCTOR = "810001987659"


def logged_in(run: LoginRun) -> dict:
    code = run.run(login=DOCTOR).query()["code"]
    response = APIClient().post(
        "/api/v1/auth/psc/token", {"code": code, "code_verifier": run.verifier}, format="json"
    )
    assert response.status_code == 201, response.content
    body: dict = response.json()
    return body


def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def confirm_provider_logout(run: LoginRun, url: str):
    """Answer "yes" on the provider's logout page; return the provider's answer."""
    page = run.browser.get(url)
    assert page.status == 200, (page.status, page.text[:300])
    fields = form_fields(page.text)
    fields["logout"] = "yes"
    return run.browser.post_form(form_action(page.text, url), fields)


def sso_skips_the_login_form(run: LoginRun) -> bool:
    """Start another login in the same browser: does the provider still know us?"""
    page = run.browser.follow(run.browser.get(run.start().location), until=RELAIS)
    return page.location.startswith(f"{RELAIS}/api/v1/auth/psc/callback")


def check_sessions(seconds_ahead: float) -> str:
    out = StringIO()
    with use_clock(lambda: time.time() + seconds_ahead):
        call_command("check_psc_sessions", stdout=out)
    return out.getvalue()


def test_rp_initiated_logout_ends_both_sessions(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    body = logged_in(run)
    assert sso_skips_the_login_form(run)  # PSC's SSO session is alive

    response = api(body["token"]).post("/api/v1/auth/psc/logout")
    url = response.json()["end_session_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(f"{psc_provider.issuer}/protocol/openid-connect/logout?")
    assert query["post_logout_redirect_uri"] == f"{RELAIS}/api/v1/auth/psc/logged-out"
    assert query["id_token_hint"].count(".") == 2
    assert query["state"]
    assert api(body["token"]).get("/api/v1/rooms").status_code == 401  # Relais side: done
    assert PscSession.objects.get(device_id=body["device"]).end_reason == "logout"

    answer = confirm_provider_logout(run, url)
    assert answer.location.startswith(f"{RELAIS}/api/v1/auth/psc/logged-out?state=")
    landing = run.browser.get(answer.location)
    assert landing.status == 200
    assert "déconnecté" in landing.text
    assert not sso_skips_the_login_form(run)  # PSC's session ended too

    forged = run.browser.get(f"{RELAIS}/api/v1/auth/psc/logged-out?state=forged")
    assert forged.status == 400


async def test_a_logout_at_psc_is_noticed_with_the_refresh_token(
    psc, psc_provider, practitioners, runtime
):
    run = LoginRun(psc_provider)
    body = await database_sync_to_async(logged_in)(run)
    keys = DeviceKeyPair.generate()
    certified = await database_sync_to_async(
        lambda: certify_over_rest(api(body["token"]), DOCTOR, body["device"], keys)
    )()
    assert certified.status_code == 201, certified.content
    ws = WsClient(token=body["token"])
    await ws.start()

    # Not due yet: nothing is checked.
    assert "0 alive, 0 ended" in await database_sync_to_async(check_sessions)(0)

    # The user logs out on PSC's side (another application, the e-CPS app...).
    answer = await database_sync_to_async(confirm_provider_logout)(
        run, f"{psc_provider.issuer}/protocol/openid-connect/logout"
    )
    assert answer.location.endswith("/protocol/openid-connect/logout/success")

    report = await database_sync_to_async(check_sessions)(301)
    assert "0 alive, 1 ended" in report
    assert await ws.expect_close() == 4010  # the device was revoked
    rooms = await database_sync_to_async(lambda: api(body["token"]).get("/api/v1/rooms"))()
    assert rooms.status_code == 401
    session = await database_sync_to_async(PscSession.objects.get)(device_id=body["device"])
    assert (session.end_reason, bytes(session.sealed_tokens)) == ("psc_logout", b"")
    # The device's keys are revoked in the log too: nobody shares a key with it again.
    chain = await database_sync_to_async(chain_of)(DOCTOR)
    assert (body["device"], keys.public.sign_key) in chain.revoked
    assert body["device"] not in chain.devices


def test_a_live_psc_session_stays_and_its_refresh_token_rotates(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    body = logged_in(run)
    before = PscSession.objects.get(device_id=body["device"])
    assert "1 alive, 0 ended" in check_sessions(301)
    after = PscSession.objects.get(device_id=body["device"])
    assert after.checked_at > before.checked_at
    assert bytes(after.sealed_tokens) != bytes(before.sealed_tokens)
    client = api(body["token"])
    assert client.get("/api/v1/auth/psc/session", {"check": "1"}).status_code == 200
    assert client.get("/api/v1/rooms").status_code == 200


def test_the_session_endpoint_notices_a_psc_logout_at_once(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    body = logged_in(run)
    confirm_provider_logout(run, f"{psc_provider.issuer}/protocol/openid-connect/logout")
    answer = api(body["token"]).get("/api/v1/auth/psc/session", {"check": "1"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "psc_session_ended"
    assert answer.json()["error"]["message_fr"].startswith("Votre session Pro Santé Connect")
