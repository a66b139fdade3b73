from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from identity.client import PscClient
from tests.identity.browser import RELAIS, Browser, Page
from tests.identity.psc_provider import CLIENT_SECRET, PscProvider, start_provider

APP_URI = "fr.relais.app:/login"


@pytest.fixture(scope="module")
def psc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PscProvider]:
    log = tmp_path_factory.mktemp("psc") / "provider.log"
    provider = start_provider(log_path=log, relais_origins=[RELAIS])
    yield provider
    provider.stop()


def psc_config(provider: PscProvider, **overrides: Any) -> dict[str, Any]:
    config = {
        "ENVIRONMENT": "production",
        "ISSUER": provider.issuer,
        "AUTHORIZATION_ENDPOINT": "",
        "CLIENT_ID": "relais",
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URI": "",
        "POST_LOGOUT_REDIRECT_URI": "",
        "CLIENT_REDIRECT_URIS": [APP_URI],
        "SESSION_CHECK_SECONDS": 300,
        "UNKNOWN_PRACTITIONER": "create",
        "HTTP_TIMEOUT_SECONDS": 10,
        "LOGIN_TIMEOUT_SECONDS": 600,
        "LOGIN_CODE_SECONDS": 120,
    }
    config.update(overrides)
    return config


@pytest.fixture
def psc(psc_provider: PscProvider, settings: Any) -> Callable[..., None]:
    """Point Relais at the loopback provider; call it again to change a setting."""
    PscClient._metadata_cache.clear()
    PscClient._jwks_cache.clear()

    def configure(**overrides: Any) -> None:
        settings.RELAIS_PSC = psc_config(psc_provider, **overrides)

    configure()
    return configure


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class LoginRun:
    """One login driven through the real provider; every hop can be inspected."""

    def __init__(self, provider: PscProvider, browser: Browser | None = None) -> None:
        self.provider = provider
        self.browser = browser or Browser()
        self.verifier, self.challenge = pkce_pair()
        self.authorization: Page | None = None

    def start(self, **params: str) -> Page:
        query = {"code_challenge": self.challenge, "redirect_uri": APP_URI, "state": "app-1"}
        query.update(params)
        origin = self.browser.relais_origin
        page = self.browser.get(f"{origin}/api/v1/auth/psc/start?{urlencode(query)}")
        self.authorization = page
        return page

    def authenticate(self, page: Page, *, login: str, acr: str = "eidas1") -> Page:
        """From the authorization URL to the redirect back to Relais (not followed)."""
        relais = self.browser.relais_origin
        page = self.browser.follow(self.browser.get(page.location), until=relais)
        assert page.status == 200, (page.status, page.text[:300])
        assert "/interaction/" in page.url
        uid = page.url.rsplit("/", 1)[1]
        answer = self.browser.post_form(
            f"{self.provider.origin}/interaction/{uid}/login", {"login": login, "acr": acr}
        )
        return self.browser.follow(answer, until=relais)

    def back_to_relais(self, page: Page) -> Page:
        """Relais' callback; returns its answer (a redirect to the app, or an error)."""
        callback = f"{self.browser.relais_origin}/api/v1/auth/psc/callback"
        assert page.location.startswith(callback), page.location
        return self.browser.get(page.location)

    def run(self, *, login: str, acr: str = "eidas1") -> Page:
        return self.back_to_relais(self.authenticate(self.start(), login=login, acr=acr))
