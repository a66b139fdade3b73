"""The attachments test page: a page of its own that loads the attachments bundle
(web/tests/attachments_page.ts: the attachment vectors' runner and the module itself),
built and served by the tests, never shipped with the app. On a server's origin it
talks to that server's REST API as the app does."""

from __future__ import annotations

from playwright.async_api import Browser, BrowserContext, Page, Route

from tests.web.build import TEST_BUNDLES
from tests.web.conftest import new_device

PAGE_PATH = "/__tests__/attachments.html"
PAGE = (
    '<!DOCTYPE html><html lang="fr"><meta charset="utf-8"><title>attachments</title>'
    '<link rel="stylesheet" href="/__tests__/attachments.css">'
    '<body class="screen"><script type="module" src="/__tests__/attachments.js"></script>'
    "</body></html>"
)


async def open_attachments_page(
    browser: Browser, origin: str = "http://localhost"
) -> tuple[BrowserContext, Page]:
    """A new device (browser context) on ``origin`` with the attachments page open.
    Loopback origins are secure contexts, so WebCrypto is there."""
    context = await new_device(browser)
    script = (TEST_BUNDLES / "attachments.js").read_bytes()
    styles = (TEST_BUNDLES / "attachments.css").read_bytes()

    async def serve(route: Route) -> None:
        if route.request.url.endswith(".js"):
            await route.fulfill(body=script, content_type="text/javascript")
        elif route.request.url.endswith(".css"):
            await route.fulfill(body=styles, content_type="text/css")
        else:
            await route.fulfill(body=PAGE, content_type="text/html")

    await context.route(f"{origin}/__tests__/**", serve)
    page = await context.new_page()
    await page.goto(origin + PAGE_PATH)
    await page.wait_for_function("() => globalThis.relaisAttachments !== undefined")
    return context, page
