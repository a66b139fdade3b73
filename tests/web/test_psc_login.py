"""Pro Santé Connect in a real browser (docs/web.md, "Login"): a server as in production
(no development login) whose PSC is the loopback OpenID Connect provider; headless
Chromium goes from the app's login screen to the provider's pages and back to `/` with
a one-time code, which the app redeems with its PKCE verifier. The device token works
end to end (a message both ways with the Python SDK, itself logged in through PSC); a
practitioner PSC gives several places of practice chooses one; a login cancelled at
the provider, or an answer whose `state` was changed on the way back, is refused in the
user's words; a session PSC ended logs in again through PSC, keeping the history and
sending the pending message once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
from channels.db import database_sync_to_async
from playwright.async_api import Browser, Page, Route, expect

from chat.models import Device
from identity.models import PscSession
from tests.e2e.sdk import next_message
from tests.web.conftest import DESKTOP, PASSPHRASE, TIMEOUT_MS, new_device
from tests.web.psc_pages import (
    PSC_BUTTON,
    PscWeb,
    at_provider,
    check_psc_sessions,
    log_out_at_provider,
    psc_log_in,
    psc_sdk_client,
    psc_web_server,
    start_psc,
)
from tests.web.test_chat import bubble, send
from tests.web.test_session_expiry import (
    NURSE,
    PHARMACIST,
    browser_devices,
    in_english_then_french,
    no_raw_error,
    the_new_device_took_over,
    unlock,
)

pytestmark = pytest.mark.e2e
APOSTROPHE = "\u2019"  # the typographic apostrophe of the app's French texts
DOCTOR = "810001987659"  # two places of practice at PSC (tests/identity/psc_provider.py)


@pytest.fixture
def psc_web(
    web_build: None, transactional_db: None, practitioners: Any, tmp_path: Path
) -> Iterator[PscWeb]:
    with psc_web_server(tmp_path) as running:
        yield running


async def devices_of(national_id: str) -> list[int]:
    def read() -> list[int]:
        return list(
            Device.objects.filter(practitioner_id=national_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    devices: list[int] = await database_sync_to_async(read)()
    return devices


async def chosen_activity(device: int) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        activity: dict[str, Any] | None = PscSession.objects.get(device_id=device).activity
        return activity

    activity: dict[str, Any] | None = await database_sync_to_async(read)()
    return activity


# Every address in the page's Cache Storage.
CACHED_URLS = """async () => {
  const urls = [];
  for (const name of await caches.keys())
    for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
  return urls;
}"""


async def test_psc_login_chooses_the_place_of_practice_and_the_token_works(
    psc_web: PscWeb, browser: Browser, tmp_path: Path
) -> None:
    base = psc_web.base_url
    context = await new_device(browser)
    page = await context.new_page()
    pharmacist = await psc_sdk_client(psc_web, tmp_path, PHARMACIST, "pharmacist")
    try:
        # Production-like: only Pro Santé Connect is offered.
        await page.goto(base + "/")
        await expect(page.locator("#psc-login")).to_have_text(PSC_BUTTON)
        await expect(page.locator("#dev-login")).to_have_count(0)
        await expect(page.locator("#national-id")).to_have_count(0)
        await start_psc(page, base)
        await at_provider(page, DOCTOR)

        # Back at the app: PSC gives Dr Durand two places; this device acts in one.
        await expect(page.locator("#login-title")).to_have_text(f"Votre lieu d{APOSTROPHE}exercice")
        await expect(page.locator("#app")).to_contain_text("pour Paul Durand.")
        choices = page.locator("#activity-list button")
        await expect(choices).to_have_count(2)
        await expect(choices.nth(0)).to_contain_text("CABINET DU DR DURAND")
        await page.locator("select.language").first.select_option("en")
        await expect(page.locator("#login-title")).to_have_text("Your place of practice")
        await expect(choices.nth(1)).to_contain_text("postcode 69003")
        await page.locator("select.language").first.select_option("fr")
        assert urlsplit(page.url).query == ""  # the one-time code left the address bar
        await choices.filter(has_text="HOSPICES CIVILS DE LYON").click()

        code = await page.locator("#recovery-code").text_content()
        assert code is not None
        assert len(code.replace("-", "")) >= 20
        await page.locator("#recovery-done").click()
        await page.locator("#room-list").wait_for()
        await expect(page.locator("#signed-in-as")).to_have_text("Connecté en tant que Paul Durand")
        # The service worker kept the page it served on the way back under "/" alone,
        # without the one-time code of its address.
        cached = await page.evaluate(CACHED_URLS)
        assert base + "/" in cached
        assert not [url for url in cached if "code=" in url], cached
        await expect(page.locator('#connection[data-state="online"]')).to_be_visible()
        [device] = await devices_of(DOCTOR)
        activity = await chosen_activity(device)
        assert activity is not None
        assert activity["structure_name"] == "HOSPICES CIVILS DE LYON"

        # The device token works end to end: a message each way with the SDK.
        room = await pharmacist.create_room(kind="direct", members=[DOCTOR])
        await pharmacist.send_text(room, "Bonjour docteur, par Pro Santé Connect")
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour docteur, par Pro Santé Connect")).to_be_visible()
        await send(page, "Bien reçu, merci")
        received = await next_message(pharmacist)
        assert received.text == "Bien reçu, merci"
        assert received.sender == (DOCTOR, device)
        assert no_raw_error(await page.locator("body").inner_text())
    finally:
        await pharmacist.close()
        await context.close()


async def cancel_at_provider(page: Page) -> None:
    await page.wait_for_url("**/interaction/**")
    await page.get_by_role("button", name="Annuler").click()


async def expect_refused(page: Page, text: str) -> None:
    """Back on the login screen: the message, the PSC button again, a clean URL."""
    await expect(page.locator("#login-title")).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_text(text)
    await expect(page.locator("#psc-login")).to_be_visible()
    assert urlsplit(page.url).query == ""
    assert no_raw_error(await page.locator("body").inner_text())


async def test_psc_refusals_are_said_in_the_users_words(psc_web: PscWeb, browser: Browser) -> None:
    base = psc_web.base_url
    # No service worker: the route below stands for whoever changes the answer on its
    # way back to the page (a worker would fetch "/" itself, out of the route's sight).
    context = await browser.new_context(viewport=DESKTOP, locale="fr-FR", service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    try:
        # The practitioner cancels at the provider.
        await start_psc(page, base)
        await cancel_at_provider(page)
        await expect_refused(
            page,
            f"La connexion Pro Santé Connect n{APOSTROPHE}a pas abouti : elle a été "
            f"annulée, ou Pro Santé Connect l{APOSTROPHE}a refusée. Vous pouvez recommencer.",
        )
        await page.locator("select.language").first.select_option("en")
        await page.get_by_label("Passphrase").fill(PASSPHRASE)
        await page.locator("#psc-login").click()
        await cancel_at_provider(page)
        await expect_refused(
            page,
            "The Pro Santé Connect login did not complete: it was cancelled, or Pro Santé "
            "Connect refused it. You can start again.",
        )
        await page.locator("select.language").first.select_option("fr")

        # The answer's state is changed on the way back to the page: the one-time code
        # is never redeemed. (Playwright routes only the first request of a navigation:
        # the route follows its redirects itself, with the context's cookies, and
        # changes the one to the page.)
        tampered: list[str] = []

        async def change_state(route: Route) -> None:
            url = route.request.url
            answer = await route.fetch(max_redirects=0)
            for _ in range(15):
                if answer.status not in (302, 303) or "location" not in answer.headers:
                    break
                url = urljoin(url, answer.headers["location"])
                if url.startswith(f"{base}/?"):
                    query = parse_qs(urlsplit(url).query)
                    assert "code" in query, url
                    query["state"] = ["changé"]
                    tampered.append(url)
                    changed = f"{base}/?{urlencode(query, doseq=True)}"
                    await route.fulfill(status=302, headers={"Location": changed})
                    return
                answer = await context.request.get(url, max_redirects=0)
            if url == route.request.url:
                await route.fulfill(response=answer)
            else:  # a page on the way (the provider's form): shown at its own address
                await route.fulfill(status=302, headers={"Location": url})

        await page.route("**/api/v1/auth/psc/start?**", change_state)
        await page.route("**/interaction/*/login", change_state)
        await start_psc(page, base)
        await at_provider(page, NURSE)
        await expect_refused(
            page,
            "Cette réponse de connexion ne correspond pas à la connexion commencée dans cet "
            "onglet : elle est refusée. Recommencez la connexion.",
        )
        assert len(tampered) == 1
        # In English too (the provider remembers the practitioner: no form this time).
        await page.locator("select.language").first.select_option("en")
        await page.get_by_label("Passphrase").fill(PASSPHRASE)
        await page.locator("#psc-login").click()
        await expect_refused(
            page,
            "This login answer does not match the login started in this tab: it was refused. "
            "Start the login again.",
        )
        assert len(tampered) == 2
        assert await devices_of(NURSE) == []  # no code was redeemed: no device
    finally:
        await context.close()


async def test_a_session_psc_ended_logs_in_again_through_psc(
    psc_web: PscWeb, browser: Browser, tmp_path: Path
) -> None:
    base = psc_web.base_url
    context = await new_device(browser)
    page = await context.new_page()
    pharmacist = await psc_sdk_client(psc_web, tmp_path, PHARMACIST, "pharmacist")
    try:
        await psc_log_in(page, base, NURSE)
        await expect(page.locator("#signed-in-as")).to_have_text(
            "Connecté en tant que Claire Martin"
        )
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Bonjour, avant la fin de session")
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour, avant la fin de session")).to_be_visible()
        await send(page, "Réponse avant la fin de session")
        assert (await next_message(pharmacist)).text == "Réponse avant la fin de session"
        await expect(bubble(page, "Réponse avant la fin de session")).not_to_have_attribute(
            "data-state", "pending"
        )
        [(old_device, old_revoked)] = await browser_devices()
        assert not old_revoked

        # The tab is closed; the nurse logs out at PSC itself, and Relais' service that
        # asks PSC about every session notices it.
        await page.close()
        provider_page = await context.new_page()
        await log_out_at_provider(provider_page, psc_web)
        await provider_page.close()
        assert "1 alive, 1 ended" in check_psc_sessions(psc_web)
        assert await browser_devices() == [(old_device, True)]

        page = await unlock(context, base)
        banner = page.locator('#session[data-session="ended"]')
        await expect(banner).to_contain_text("Votre session a pris fin")
        await in_english_then_french(page, "Your session has ended")

        # The devices screen says why it lists nothing, and offers to log in again.
        await page.locator("#devices").click()
        await expect(page.locator("#screen-title")).to_have_text("Appareils")
        await expect(page.locator('#session[data-session="ended"]')).to_contain_text(
            "Votre session a pris fin"
        )
        await expect(page.locator("#devices-unavailable")).to_have_text(
            f"La liste des appareils n{APOSTROPHE}est pas disponible tant que vous "
            f"n{APOSTROPHE}êtes pas reconnecté."
        )
        await expect(page.locator("#relogin")).to_be_visible()
        await page.locator("select.language").first.select_option("en")
        await expect(page.locator("#devices-unavailable")).to_contain_text(
            "The list of devices is not available"
        )
        await expect(page.locator("#session")).to_contain_text("Your session has ended")
        await page.locator("select.language").first.select_option("fr")
        assert no_raw_error(await page.locator("body").inner_text())
        await page.get_by_role("button", name="Retour").click()

        # A message typed now waits.
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour, avant la fin de session")).to_be_visible()
        await send(page, "Écrit après la fin de session")
        pending = bubble(page, "Écrit après la fin de session")
        await expect(pending).to_have_attribute("data-state", "pending")

        # "Se reconnecter" goes through PSC (whose session ended: its form again), then
        # the passphrase opens the vault once more to finish.
        await page.locator("#relogin").click()
        await page.locator("#psc-login").click()
        await at_provider(page, NURSE)
        await expect(page.locator("#unlock-note")).to_have_text(
            "Reconnexion : saisissez votre phrase de passe pour la terminer."
        )
        await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
        await page.locator("#unlock").click()
        new_device_id = await the_new_device_took_over(
            page,
            pharmacist,
            room,
            old_device,
            history=("Bonjour, avant la fin de session", "Réponse avant la fin de session"),
            typed="Écrit après la fin de session",
        )

        # The devices screen lists the devices again.
        await page.get_by_role("button", name="Retour").click()
        await page.locator("#devices").click()
        await expect(page.locator(f'#device-list [data-device="{new_device_id}"]')).to_contain_text(
            "cet appareil"
        )
    finally:
        await pharmacist.close()
        await context.close()
