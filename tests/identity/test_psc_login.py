"""Pro Santé Connect login against a real OpenID Connect provider on loopback.

The provider (panva's oidc-provider, see ``provider/server.mjs``) has PSC's discovery
path, its separate ``wallet`` authorization host, its claims and its ``acr`` levels.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from chat.models import Device
from directory.models import Practitioner, Source
from identity.clock import use_clock
from identity.models import LoginAttempt, PscSession
from identity.sealing import unseal
from identity.services.login import TOKENS_PURPOSE
from tests.identity.browser import RELAIS
from tests.identity.conftest import APP_URI, LoginRun
from tests.wsclient import Client as WsClient

pytestmark = pytest.mark.django_db(transaction=True)

DOCTOR = "810001987659"  # a demo practitioner with two activities at PSC
NURSE = "810003456786"
UNKNOWN = "819996543211"  # valid RPPS, absent from the local directory
EDIT_ID = "ANS20231122132732"  # sandbox test identity
BAD_LUHN = "810000000001"


def redeem(code: str, verifier: str, **extra: str) -> tuple[int, dict]:
    response = APIClient().post(
        "/api/v1/auth/psc/token", {"code": code, "code_verifier": verifier, **extra}, format="json"
    )
    return response.status_code, response.json()


def error_of(page) -> str:
    """The error code Relais sent back to the app."""
    assert page.status == 302, (page.status, page.text)
    assert page.location.startswith(APP_URI)
    query = page.query()
    assert query["message"]
    assert query["message_fr"]
    return str(query["error"])


def test_the_authorization_request_is_psc_shaped(psc, psc_provider, practitioners):
    page = LoginRun(psc_provider).start()
    assert page.status == 302
    url = urlsplit(page.location)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{psc_provider.wallet_origin}/auth"
    assert query["scope"] == "openid scope_all"
    assert query["acr_values"] == "eidas1"
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["nonce"]) == 64
    assert len(query["state"]) >= 43
    assert query["client_id"] == "relais"
    # the standard discovery path does not exist at PSC, nor here
    standard = requests.get(f"{psc_provider.origin}/.well-known/openid-configuration", timeout=5)
    assert standard.status_code == 404


async def test_success_ends_with_a_device_token_that_opens_a_websocket(
    psc, psc_provider, practitioners, runtime
):
    run = LoginRun(psc_provider)
    back = await database_sync_to_async(run.run)(login=DOCTOR)
    assert back.status == 302
    assert back.location.startswith(f"{APP_URI}?code=")
    assert back.query()["state"] == "app-1"
    status, body = await database_sync_to_async(redeem)(
        back.query()["code"], run.verifier, device_name="Pixel"
    )
    assert status == 201, body
    assert body["practitioner"]["national_id"] == DOCTOR
    assert [a["structure_name"] for a in body["activities"]] == [
        "CABINET DU DR DURAND",
        "HOSPICES CIVILS DE LYON",
    ]
    assert body["activity"] is None  # two activities: the user chooses

    ws = WsClient(token=body["token"])
    ready = await ws.start()
    assert ready["type"] == "ready"
    await ws.close()

    def stored() -> tuple[str, set[str], int, str]:
        session = PscSession.objects.get(device_id=body["device"])
        tokens = unseal(bytes(session.sealed_tokens), purpose=TOKENS_PURPOSE)
        device = Device.objects.get(pk=body["device"])
        return session.subject, set(tokens), LoginAttempt.objects.count(), device.name

    subject, kept, attempts, name = await database_sync_to_async(stored)()
    assert subject.endswith(f":{DOCTOR}")
    assert kept == {"refresh_token", "id_token"}  # never the access token
    assert (attempts, name) == (0, "Pixel")


def test_the_user_picks_the_activity_they_act_in(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    code = run.run(login=DOCTOR).query()["code"]
    _, body = redeem(code, run.verifier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    chosen = client.post("/api/v1/auth/psc/activity", {"index": 1}, format="json")
    assert chosen.json()["activity"]["finess"] == "690781810"
    session = client.get("/api/v1/auth/psc/session").json()
    assert session["activity"]["structure_name"] == "HOSPICES CIVILS DE LYON"
    wrong = client.post("/api/v1/auth/psc/activity", {"index": 5}, format="json")
    assert wrong.status_code == 400


def test_userinfo_as_a_signed_jwt_is_verified_and_used(
    psc, psc_provider, practitioners, monkeypatch
):
    psc(CLIENT_ID="relais-jwt")
    content_types: list[str] = []
    real_get = requests.get

    def observed_get(url, **kwargs):
        response = real_get(url, **kwargs)
        if url.endswith("/userinfo"):
            content_types.append(response.headers["Content-Type"])
        return response

    monkeypatch.setattr(requests, "get", observed_get)  # observes; the call is real
    run = LoginRun(psc_provider)
    code = run.run(login=NURSE).query()["code"]
    status, body = redeem(code, run.verifier)
    assert status == 201
    assert content_types
    assert content_types[0].startswith("application/jwt")
    assert body["practitioner"]["national_id"] == NURSE
    assert body["activity"]["structure_name"] == "CABINET MARTIN"  # only one: chosen


def test_a_tampered_state_is_refused(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    to_relais = run.authenticate(run.start(), login=DOCTOR)
    forged = to_relais.location.replace("state=", "state=x", 1)
    answer = run.browser.get(forged)
    assert answer.status == 400
    body = answer.text
    assert body.startswith("<!DOCTYPE html>")  # a page for the browser, not JSON
    assert "<code>psc_state_mismatch</code>" in body
    assert "navigateur" in body  # the French message
    assert "this browser" in body  # and the English one


def test_a_callback_in_another_browser_is_refused(psc, psc_provider, practitioners):
    """Login CSRF: the code and state are right, but the browser did not start it."""
    run = LoginRun(psc_provider)
    to_relais = run.authenticate(run.start(), login=DOCTOR)
    other = LoginRun(psc_provider)
    answer = other.browser.get(to_relais.location)
    assert answer.status == 400
    assert "psc_state_mismatch" in answer.text
    assert not Device.objects.exists()


def test_a_wrong_nonce_is_refused(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    start = run.start()
    query = parse_qs(urlsplit(start.location).query)
    start.location = start.location.replace(query["nonce"][0], "0" * 64)  # rewritten in transit
    answer = run.back_to_relais(run.authenticate(start, login=DOCTOR))
    assert error_of(answer) == "psc_nonce_mismatch"
    assert not Device.objects.exists()
    assert LoginAttempt.objects.count() == 0  # the attempt cannot be retried


@pytest.mark.parametrize("acr", ["", "eidas0", "basic"])
def test_a_missing_or_too_low_acr_is_refused(psc, psc_provider, practitioners, acr):
    run = LoginRun(psc_provider)
    answer = run.run(login=DOCTOR, acr=acr)
    assert error_of(answer) == "psc_acr_insufficient"
    assert "eIDAS" in answer.query()["message"]
    assert "CPS" in answer.query()["message_fr"]


@pytest.mark.parametrize("acr", ["eidas2", "eidas3"])
def test_higher_acr_levels_are_accepted(psc, psc_provider, practitioners, acr):
    run = LoginRun(psc_provider)
    assert "code" in run.run(login=DOCTOR, acr=acr).query()


def test_an_expired_id_token_is_refused(psc, psc_provider, practitioners):
    """Relais' clock is 400 s ahead: the provider's 300 s ID token has expired."""
    import time

    run = LoginRun(psc_provider)
    to_relais = run.authenticate(run.start(), login=DOCTOR)
    with use_clock(lambda: time.time() + 400):
        answer = run.back_to_relais(to_relais)
    assert error_of(answer) == "psc_token_expired"


def test_an_unknown_rpps_is_created_from_psc_claims_by_default(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    status, _body = redeem(run.run(login=UNKNOWN).query()["code"], run.verifier)
    assert status == 201
    created = Practitioner.objects.get(national_id=UNKNOWN)
    assert (created.source, created.first_name, created.last_name) == (
        Source.PSC,
        "Inès",
        "NOUVELLE",
    )
    assert (created.profession_code, created.name_key) == ("50", "nouvelle ines")
    place = created.activities.get()
    assert (place.postcode, place.structure_name) == ("69003", "CABINET NOUVELLE")


def test_an_unknown_rpps_is_refused_when_configured(psc, psc_provider, practitioners):
    psc(UNKNOWN_PRACTITIONER="refuse")
    answer = LoginRun(psc_provider).run(login=UNKNOWN)
    assert error_of(answer) == "not_in_directory"
    assert not Practitioner.objects.filter(national_id=UNKNOWN).exists()


def test_a_practitioner_who_left_the_directory_is_refused(psc, psc_provider, practitioners):
    Practitioner.objects.filter(national_id=DOCTOR).update(is_active=False)
    assert error_of(LoginRun(psc_provider).run(login=DOCTOR)) == "not_in_directory"


def test_sandbox_identities_are_accepted_in_the_sandbox_only(psc, psc_provider, practitioners):
    assert error_of(LoginRun(psc_provider).run(login=EDIT_ID)) == "psc_identity_refused"
    assert error_of(LoginRun(psc_provider).run(login=BAD_LUHN)) == "psc_identity_refused"
    psc(ENVIRONMENT="sandbox")
    for login in (EDIT_ID, BAD_LUHN):
        run = LoginRun(psc_provider)
        status, body = redeem(run.run(login=login).query()["code"], run.verifier)
        assert status == 201
        assert body["practitioner"]["national_id"] == login
        assert Practitioner.objects.get(national_id=login).check_digit_valid is False


def test_the_login_code_is_single_use_and_bound_to_the_app(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    code = run.run(login=NURSE).query()["code"]
    other_verifier = LoginRun(psc_provider).verifier
    status, body = redeem(code, other_verifier)
    assert (status, body["error"]["code"]) == (400, "psc_login_expired")
    status, body = redeem(code, run.verifier)  # burnt by the failed try
    assert (status, body["error"]["code"]) == (400, "psc_login_expired")
    second = LoginRun(psc_provider)
    code = second.run(login=NURSE).query()["code"]
    assert redeem(code, second.verifier)[0] == 201
    assert redeem(code, second.verifier)[0] == 400


def test_a_login_code_expires(psc, psc_provider, practitioners):
    import time

    run = LoginRun(psc_provider)
    code = run.run(login=NURSE).query()["code"]
    with use_clock(lambda: time.time() + 121):
        status, body = redeem(code, run.verifier)
    assert (status, body["error"]["code"]) == (400, "psc_login_expired")


def test_only_registered_client_uris_are_redirected_to(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    page = run.start(redirect_uri="https://evil.example/steal")
    assert page.status == 400
    assert "redirect_uri is not a registered client URI" in page.text
    default = LoginRun(psc_provider)
    start = default.browser.get(
        f"{RELAIS}/api/v1/auth/psc/start?code_challenge={default.challenge}"
    )
    back = default.back_to_relais(default.authenticate(start, login=NURSE))
    assert back.location.startswith(f"{RELAIS}/api/v1/auth/psc/finish?code=")
    finish = default.browser.get(back.location)
    assert finish.status == 200
    assert back.query()["code"] in finish.text


def test_a_cancelled_login_comes_back_as_an_error(psc, psc_provider, practitioners):
    run = LoginRun(psc_provider)
    start = run.start()
    state = parse_qs(urlsplit(start.location).query)["state"][0]
    answer = run.browser.get(f"{RELAIS}/api/v1/auth/psc/callback?error=access_denied&state={state}")
    assert error_of(answer) == "psc_provider_error"


def test_without_configuration_psc_login_is_unavailable(settings, practitioners):
    settings.RELAIS_PSC = {**settings.RELAIS_PSC, "CLIENT_ID": "", "CLIENT_SECRET": ""}
    response = APIClient().get("/api/v1/auth/psc/start", {"code_challenge": "x" * 43})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "psc_not_configured"
