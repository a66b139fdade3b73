"""Browser tests: Debian's headless Chromium, driven by Playwright, against a real
server process (docs/web.md, "Tests").

Fixtures:
- ``web_server``: a server process with the development login, on the test database;
- ``browser``: headless Chromium (the Debian package's binary, not Playwright's);
- ``app_page``: ``await app_page(national_id)`` is a page of a new browser context
  (another device), logged in through the development login and on the rooms list;
- ``vectors_page``: a page that runs the shared test vectors in the browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from client import registration
from client.session import RelaisClient
from tests.e2e.server import ServerProcess, production_env
from tests.web.build import CHROMIUM, TEST_BUNDLES, ensure_built

PASSPHRASE = "phrase de passe du test"
TIMEOUT_MS = 20_000
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
# Assertions wait for the page as long as actions do: the machine running the suite may
# be busy with other test processes.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def web_build() -> None:
    ensure_built()


@pytest.fixture
def server_env(transactional_db: None) -> dict[str, str]:
    """Production-like settings on the test database and the test Redis."""
    return production_env()


@pytest.fixture
def web_server(
    web_build: None, server_env: dict[str, str], tmp_path: Path, practitioners: Any
) -> Any:
    process = ServerProcess(
        env={**server_env, "RELAIS_DEBUG": "1"}, log_path=tmp_path / "server.log"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        await chromium.close()


async def new_device(browser: Browser, *, viewport: ViewportSize | None = None) -> BrowserContext:
    """A browser context: a device of its own (its own IndexedDB, its own keys)."""
    context = await browser.new_context(viewport=viewport or DESKTOP, locale="fr-FR")
    context.set_default_timeout(TIMEOUT_MS)
    return context


async def log_in(page: Page, base_url: str, national_id: str) -> str:
    """The development login of a practitioner's first device, as a user does it: it
    makes their identity, shows the recovery code once, then the rooms list. The code."""
    await page.goto(base_url + "/")
    await page.get_by_label("Numéro RPPS").fill(national_id)
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.get_by_role("button", name="Se connecter (développement)").click()
    code = await page.locator("#recovery-code").text_content()
    await page.locator("#recovery-done").click()
    await page.locator("#room-list").wait_for()
    await page.locator('#connection[data-state="online"]').wait_for()
    return code or ""


async def link_from_sdk(page: Page, base_url: str, national_id: str, device: RelaisClient) -> None:
    """A new browser of a practitioner who has an identity logs in; their SDK ``device``
    approves the link code the page shows, and forwards its history keys."""
    await page.goto(base_url + "/")
    await page.get_by_label("Numéro RPPS").fill(national_id)
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.get_by_role("button", name="Se connecter (développement)").click()
    code = await page.locator("#link-short-code").text_content()
    assert code is not None

    async def yes(device: int, name: str) -> bool:
        return True

    await registration.approve_link(device, code, confirm=yes)


@pytest.fixture
async def app_page(
    web_server: ServerProcess, browser: Browser
) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    contexts: list[BrowserContext] = []

    async def open_page(national_id: str, *, viewport: ViewportSize | None = None) -> Page:
        context = await new_device(browser, viewport=viewport)
        contexts.append(context)
        page = await context.new_page()
        await log_in(page, web_server.http_url, national_id)
        return page

    yield open_page
    for context in contexts:
        await context.close()


# The vectors page needs no server: Playwright answers its two requests, on a loopback
# origin (a secure context, as the app's, so WebCrypto is there).
VECTORS_PAGE = "http://localhost/__tests__/vectors.html"


@pytest.fixture
async def vectors_page(web_build: None, browser: Browser) -> AsyncIterator[Page]:
    """A page that loads the vectors runner, a bundle the tests build and serve
    themselves: it is never shipped with the app."""
    context = await new_device(browser)
    bundle = (TEST_BUNDLES / "vectors.js").read_bytes()

    async def serve(route: Route) -> None:
        if route.request.url.endswith(".js"):
            await route.fulfill(body=bundle, content_type="text/javascript")
        else:
            await route.fulfill(
                body='<!DOCTYPE html><meta charset="utf-8"><title>vectors</title>'
                '<script type="module" src="/__tests__/vectors.js"></script>',
                content_type="text/html",
            )

    await context.route("http://localhost/__tests__/**", serve)
    page = await context.new_page()
    await page.goto(VECTORS_PAGE)
    await page.wait_for_function("() => globalThis.relaisVectors !== undefined")
    yield page
    await context.close()


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path
