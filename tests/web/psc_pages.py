"""Pro Santé Connect for the browser tests: a production-like server process (no
development login) with PSC pointed at the loopback provider (tests/identity/provider),
the provider's "card reader" page driven in Chromium, and SDK devices logged in through
PSC too (tests/identity/conftest.py: LoginRun)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from client.session import RelaisClient
from tests.e2e.sdk import token_client
from tests.e2e.server import ROOT, ServerProcess, free_port, production_env
from tests.identity.browser import Browser
from tests.identity.conftest import APP_URI, LoginRun
from tests.identity.psc_provider import CLIENT_SECRET, PscProvider, start_provider
from tests.web.conftest import PASSPHRASE

PSC_BUTTON = "Se connecter avec Pro Santé Connect"


@dataclass
class PscWeb:
    server: ServerProcess
    provider: PscProvider

    @property
    def base_url(self) -> str:
        return self.server.http_url


@contextmanager
def psc_web_server(tmp_path: Path) -> Iterator[PscWeb]:
    """A Relais server as in production (DEBUG off: no development login) whose PSC is
    the loopback provider, with the web app's page ``/`` registered as a way back. Call
    it in a test using the database (``production_env``)."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    provider = start_provider(log_path=tmp_path / "psc.log", relais_origins=[origin])
    env = production_env(
        RELAIS_SECURE_SSL_REDIRECT="0",
        RELAIS_PSC_ISSUER=provider.issuer,
        RELAIS_PSC_CLIENT_ID="relais",
        RELAIS_PSC_CLIENT_SECRET=CLIENT_SECRET,
        RELAIS_PSC_CLIENT_REDIRECT_URIS=f"{origin}/,{APP_URI}",
    )
    server = ServerProcess(env=env, log_path=tmp_path / "server.log", port=port)
    try:
        server.start()
        yield PscWeb(server=server, provider=provider)
    finally:
        server.stop()
        provider.stop()


async def at_provider(page: Page, national_id: str) -> None:
    """On the provider's page (its wallet host sent the browser there): pick the test
    identity, as a CPS card or the e-CPS app would prove it, and log in."""
    await page.wait_for_url("**/interaction/**")
    await expect(page.get_by_role("heading")).to_contain_text("Pro Santé Connect")
    await page.locator('select[name="login"]').select_option(national_id)
    await page.get_by_role("button", name="Se connecter avec la carte CPS").click()


async def start_psc(page: Page, base_url: str) -> None:
    """The login screen of a server with PSC only: the passphrase, then PSC's button."""
    await page.goto(base_url + "/")
    await expect(page.locator("#psc-login")).to_have_text(PSC_BUTTON)
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.locator("#psc-login").click()


async def psc_log_in(page: Page, base_url: str, national_id: str) -> str:
    """A practitioner's first device through PSC: the recovery code shown once, then
    the rooms list (for a practitioner with one place of practice). The code."""
    await start_psc(page, base_url)
    await at_provider(page, national_id)
    code = await page.locator("#recovery-code").text_content()
    await page.locator("#recovery-done").click()
    await page.locator("#room-list").wait_for()
    await page.locator('#connection[data-state="online"]').wait_for()
    return code or ""


def _redeem(origin: str, code: str, verifier: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{origin}/api/v1/auth/psc/token",
        data=json.dumps({"code": code, "code_verifier": verifier}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def psc_token(psc: PscWeb, national_id: str) -> dict[str, Any]:
    """A device token through the whole PSC login of an app (its own browser session at
    the provider, the app URI as the way back)."""
    run = LoginRun(psc.provider, Browser(relais_origin=psc.base_url))
    back = run.run(login=national_id)
    assert back.location.startswith(f"{APP_URI}?code="), back
    return _redeem(psc.base_url, back.query()["code"], run.verifier)


async def psc_sdk_client(psc: PscWeb, directory: Path, national_id: str, name: str) -> RelaisClient:
    """A connected Python SDK device logged in through PSC."""
    login = await asyncio.to_thread(psc_token, psc, national_id)
    return await token_client(
        psc.base_url,
        directory,
        national_id=national_id,
        name=name,
        device=login["device"],
        token=login["token"],
    )


def check_psc_sessions(psc: PscWeb) -> str:
    """One round of the production service that asks PSC whether each session is alive
    (``manage.py check_psc_sessions``, with the server's settings; every session due)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    env = {**clean, **psc.server.env, "RELAIS_PSC_SESSION_CHECK_SECONDS": "0"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check_psc_sessions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def log_out_at_provider(page: Page, psc: PscWeb) -> None:
    """The practitioner ends their PSC session at PSC itself (another application, the
    e-CPS app...): the provider's logout page, in this browser."""
    await page.goto(f"{psc.provider.issuer}/protocol/openid-connect/logout")
    await page.get_by_role("button", name="Yes, sign me out").click()
    await page.wait_for_url("**/logout/success**")
