"""Pro Santé Connect edge cases: pages instead of JSON for the browser, a landing page
that only says Relais' own words, https endpoints only, and every refusal of a session
refresh ends the session (only an outage leaves it as it is).

The discovery document and the token endpoint with unusual answers come from a small
HTTP server on loopback written for these cases; the normal flows run against the real
provider (test_psc_login.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from chat.errors import ErrorCode, RelaisError
from chat.services.devices import authenticate_token, do_issue_device_token
from identity.client import PscClient
from identity.conf import psc_settings
from identity.models import PscSession
from identity.sealing import seal
from identity.services.login import TOKENS_PURPOSE
from identity.services.sessions import do_check_psc_session
from tests.identity.browser import BROWSER_ACCEPT
from tests.identity.conftest import psc_config

pytestmark = pytest.mark.django_db(transaction=True)


class Scripted(BaseHTTPRequestHandler):
    """Answers the discovery document and the token endpoint as told by the test."""

    script: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:
        return

    def _answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/.well-known/wallet-openid-configuration"):
            self._answer(200, self.script["discovery"])
        else:
            self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, body = self.script["token"]
        if isinstance(body, bytes):
            self._answer(status, body, "text/html")
        else:
            self._answer(status, body)


@pytest.fixture
def scripted(settings) -> Iterator[dict[str, Any]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer = f"http://127.0.0.1:{server.server_address[1]}/auth/realms/esante-wallet"
    Scripted.script = {
        "discovery": {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/certs",
            "end_session_endpoint": f"{issuer}/logout",
        },
        "token": (200, {}),
    }

    class Fake:
        issuer = ""

    Fake.issuer = issuer
    settings.RELAIS_PSC = psc_config(Fake)  # type: ignore[arg-type]
    PscClient._metadata_cache.clear()
    PscClient._jwks_cache.clear()
    yield Scripted.script
    server.shutdown()
    PscClient._metadata_cache.clear()


def browser() -> Client:
    return Client(HTTP_ACCEPT=BROWSER_ACCEPT)


def test_start_errors_are_a_page_for_a_browser_and_json_for_a_client(settings):
    settings.RELAIS_PSC = {**settings.RELAIS_PSC, "CLIENT_ID": "", "CLIENT_SECRET": ""}
    page = browser().get("/api/v1/auth/psc/start", {"code_challenge": "x" * 43})
    assert page.status_code == 404
    assert page["Content-Type"] == "text/html; charset=utf-8"
    text = unescape(page.content.decode())
    assert "La connexion Pro Santé Connect n'est pas configurée" in text
    assert "Pro Santé Connect login is not configured" in text
    assert "<code>psc_not_configured</code>" in text
    assert page["Content-Security-Policy"].startswith("default-src 'none'")
    api = Client().get("/api/v1/auth/psc/start", {"code_challenge": "x" * 43})
    assert api.json()["error"]["code"] == "psc_not_configured"


def test_a_callback_that_matches_no_login_is_a_page(scripted):
    page = browser().get("/api/v1/auth/psc/callback", {"state": "nothing", "code": "x"})
    assert page.status_code == 400
    assert "<code>psc_state_mismatch</code>" in page.content.decode()


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        (
            {
                "error": "psc_acr_insufficient",
                "message": "Call 0800 000 000 to finish your login",
                "message_fr": "Appelez le 0800 000 000 pour terminer",
            },
            "la carte CPS ou l'application e-CPS",
        ),
        ({"error": "<b>anything</b>", "message": "Send your code to evil@example.org"}, None),
        ({"code": "Send your code to evil@example.org"}, None),
    ],
)
def test_the_finish_page_says_only_relais_own_words(query, shown):
    text = unescape(browser().get("/api/v1/auth/psc/finish", query).content.decode())
    for name in ("message", "message_fr", "code"):
        assert query.get(name, "\x00") not in text
    assert "0800" not in text
    assert "evil@example.org" not in text
    assert (shown or "Pro Santé Connect a refusé la connexion") in text


def test_the_finish_page_shows_a_real_one_time_code():
    code = "Zq3-" + "a" * 39
    text = browser().get("/api/v1/auth/psc/finish", {"code": code}).content.decode()
    assert f"<pre>{code}</pre>" in text


@pytest.mark.parametrize(
    "endpoint",
    ["token_endpoint", "userinfo_endpoint", "jwks_uri", "authorization_endpoint"],
)
@pytest.mark.parametrize("url", ["http://psc.example/endpoint", "ftp://127.0.0.1/x", "/relative"])
def test_endpoints_of_the_discovery_document_must_be_https(scripted, endpoint, url):
    scripted["discovery"][endpoint] = url
    with pytest.raises(RelaisError) as refused:
        PscClient(psc_settings()).metadata()
    assert refused.value.code == ErrorCode.PSC_PROVIDER_ERROR
    assert endpoint in refused.value.message


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "invalid_grant"}),
        (401, {"error": "invalid_client"}),
        (400, {"error": "unauthorized_client"}),
        (400, {"error": "invalid_request", "error_description": "Session not active"}),
        (400, {"error": "invalid_scope"}),
        (400, {"error": "access_denied"}),
    ],
)
def test_every_refusal_of_a_refresh_ends_the_psc_session(scripted, practitioners, status, body):
    scripted["token"] = (status, body)
    session = _session(practitioners["doctor"])
    assert do_check_psc_session(session=session, settings=psc_settings()) is False
    session.refresh_from_db()
    assert session.ended_at is not None
    assert authenticate_token(token=session.token) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"error": "temporarily_unavailable"}),
        (500, {"error": "server_error"}),
        (502, b"<html>Bad Gateway</html>"),
    ],
)
def test_an_outage_leaves_the_psc_session_as_it_is(scripted, practitioners, status, body):
    scripted["token"] = (status, body)
    session = _session(practitioners["doctor"])
    with pytest.raises(RelaisError) as outage:
        do_check_psc_session(session=session, settings=psc_settings())
    assert outage.value.code == ErrorCode.PSC_PROVIDER_ERROR
    session.refresh_from_db()
    assert session.ended_at is None
    assert authenticate_token(token=session.token) is not None  # type: ignore[attr-defined]


def _session(practitioner) -> PscSession:
    device, token = do_issue_device_token(practitioner=practitioner, device_name="phone")
    now = timezone.now()
    session = PscSession.objects.create(
        device=device,
        practitioner=practitioner,
        subject="f:test:" + practitioner.national_id,
        sealed_tokens=seal({"refresh_token": "r-1", "id_token": ""}, purpose=TOKENS_PURPOSE),
        created_at=now,
        checked_at=now,
    )
    session.token = token  # type: ignore[attr-defined]
    return session
