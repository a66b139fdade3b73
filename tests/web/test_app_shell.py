"""The app is served at / with a strict Content-Security-Policy, and a newcomer logs in
through the development login."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message

import pytest
from playwright.async_api import ConsoleMessage

from tests.web.conftest import DESKTOP, PASSPHRASE, PHONE, new_device, screenshot

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"


def fetch(url: str) -> tuple[int, Message, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, response.read()


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_the_app_is_served_at_the_root_with_a_strict_policy(web_server):
    status, headers, body = fetch(web_server.http_url + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    policy = csp_directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert policy["style-src"] == ["'self'"]
    host = web_server.http_url.removeprefix("http://")
    assert policy["connect-src"] == ["'self'", f"ws://{host}"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert headers["Referrer-Policy"] == "no-referrer"
    page = body.decode()
    # Every script is a file of this server; the only inline one is inert data (JSON).
    assert '<script type="module" src="/app/dist/main.js?v=' in page
    assert page.count("<script") == 2
    assert '<script id="relais-config" type="application/json">' in page
    assert "https://" not in page


def test_manifest_icons_and_service_worker(web_server):
    _, _, body = fetch(web_server.http_url + "/manifest.webmanifest")
    manifest = json.loads(body)
    assert manifest["start_url"] == "/"
    assert manifest["lang"] == "fr"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        _, headers, body = fetch(web_server.http_url + icon["src"])
        assert headers["Content-Type"] == "image/png"
        assert body.startswith(b"\x89PNG")
    _, headers, _ = fetch(web_server.http_url + "/sw.js")
    assert headers["Content-Type"] == "text/javascript"
    assert headers["Service-Worker-Allowed"] == "/"


def test_only_built_files_and_icons_are_served_under_app(web_server):
    for path in ["/app/../server/settings.py", "/app/dist/../../../views.py", "/app/x.py"]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(web_server.http_url + path)
        assert refused.value.code == 404


def violations_of(found: list[str]):
    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    return record


async def test_the_development_login_lands_on_the_rooms_list(web_server, browser):
    # Two practitioners: each one's first device makes their identity.
    for name, viewport, practitioner in [
        ("login-phone", PHONE, NURSE),
        ("login-desktop", DESKTOP, DOCTOR),
    ]:
        context = await new_device(browser, viewport=viewport)
        page = await context.new_page()
        violations: list[str] = []
        page.on("console", violations_of(violations))
        await page.goto(web_server.http_url + "/")
        await page.get_by_role("button", name="Se connecter (développement)").wait_for()
        await screenshot(page, name)
        await page.get_by_label("Numéro RPPS").fill(practitioner)
        await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
        await page.get_by_role("button", name="Se connecter (développement)").click()
        # The first device makes the identity and shows the recovery code once.
        code = await page.locator("#recovery-code").text_content()
        assert code is not None
        assert len(code.replace("-", "")) == 32
        await screenshot(page, f"recovery-{name.split('-')[1]}")
        await page.locator("#recovery-done").click()
        await page.get_by_role("heading", name="Conversations").wait_for()
        assert await page.locator("#room-list").is_visible()
        await page.locator('#connection[data-state="online"]').wait_for()
        assert violations == []
        await context.close()
