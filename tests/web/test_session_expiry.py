"""A browser whose device token the server no longer takes (docs/web.md, "When the
session ends"), found when the app is unlocked: a token that expired while the page was
closed, or a device logged out from another one ("log out everywhere else", the reason
the end of a Pro Santé Connect session also records), says the session ended and logs
in again as a new device of the same identity, keeping its history and sending what was
typed meanwhile, once; a device revoked as lost from another device says it was
removed, keeps its history readable and sends nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from playwright.async_api import BrowserContext, Page, expect

from chat.models import Device, Envelope
from client.api import RestApi
from client.session import RelaisClient
from tests.e2e.sdk import new_client, next_message
from tests.web.conftest import PASSPHRASE, log_in, new_device
from tests.web.test_chat import bubble, send

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"


async def browser_devices() -> list[tuple[int, bool]]:
    """The nurse's browser devices, oldest first: (id, revoked)."""

    def read() -> list[tuple[int, bool]]:
        rows = Device.objects.filter(practitioner_id=NURSE, name="Navigateur").order_by("pk")
        return [(d.pk, d.revoked_at is not None) for d in rows]

    devices: list[tuple[int, bool]] = await database_sync_to_async(read)()
    return devices


async def expire_token(device: int) -> None:
    """What the server's clock does to a token unused for RELAIS_TOKEN_IDLE_DAYS."""

    def write() -> None:
        past = timezone.now() - timedelta(seconds=1)
        assert Device.objects.filter(pk=device).update(token_expires_at=past) == 1

    await database_sync_to_async(write)()


async def log_out_elsewhere(base_url: str) -> None:
    """The nurse logs in on a phone and logs out every other device of hers."""
    phone = RestApi(base_url)
    try:
        login = await phone.dev_login(NURSE, "Téléphone")
        phone.token = login["token"]
        await phone.call("POST", "devices/revoke-others", json={})
    finally:
        await phone.close()


def no_raw_error(text: str) -> bool:
    """Nothing a user should never see: a traceback, or an answer's JSON."""
    return "Traceback" not in text and '{"' not in text


async def envelopes_from(practitioner: str, room: int) -> list[tuple[int, str]]:
    def read() -> list[tuple[int, str]]:
        rows = Envelope.objects.filter(room_id=room, sender_practitioner_id=practitioner)
        return [(e.sender_device_id, e.client_id) for e in rows.order_by("seq")]

    rows: list[tuple[int, str]] = await database_sync_to_async(read)()
    return rows


async def unlock(context: BrowserContext, base_url: str) -> Page:
    """The app opened again, as after closing the tab: the passphrase unlocks it."""
    page = await context.new_page()
    await page.goto(base_url + "/")
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.locator("#unlock").click()
    await page.locator("#room-list").wait_for()
    return page


async def in_english_then_french(page: Page, english: str) -> None:
    """The session's message in English once the app's language is English."""
    await page.locator("select.language").first.select_option("en")
    await expect(page.locator("#session")).to_contain_text(english)
    await page.locator("select.language").first.select_option("fr")


async def the_new_device_took_over(
    page: Page,
    pharmacist: RelaisClient,
    room: int,
    old_device: int,
    *,
    history: tuple[str, str],
    typed: str,
) -> int:
    """After logging in again: the rooms list with no banner, online; the message typed
    while the session was over sent once, from the new device; the old device revoked
    ("replaced"); the ``history`` kept; and the new device reads what comes next. The
    new device's number."""
    await page.locator("#room-list").wait_for()
    await expect(page.locator("#session")).to_have_count(0)
    await expect(page.locator('#connection[data-state="online"]')).to_be_visible()
    received = await next_message(pharmacist)
    assert received.text == typed
    [old, (new_device_id, new_revoked)] = await browser_devices()
    assert old == (old_device, True)
    assert not new_revoked
    assert received.sender == (NURSE, new_device_id)

    await page.locator("#room-list button.room").first.click()
    for text in history:
        await expect(bubble(page, text)).to_be_visible()
    pending = bubble(page, typed)
    await expect(pending).not_to_have_attribute("data-state", "pending")
    await expect(pending).to_have_count(1)
    # Sent once: one envelope of the old device, one of the new.
    rows = await envelopes_from(NURSE, room)
    assert [device for device, _ in rows] == [old_device, new_device_id]
    # The new device gets the pharmacist's keys and reads what comes next.
    await pharmacist.send_text(room, "Reçu après la reconnexion")
    await expect(bubble(page, "Reçu après la reconnexion")).to_be_visible()
    await expect(page.locator("#messages li")).to_have_count(4)
    return new_device_id


@pytest.mark.parametrize("how", ["expired", "logged_out_elsewhere"])
async def test_a_session_that_ended_logs_in_again_and_keeps_history_and_outbox(
    web_server, browser, tmp_path, how
):
    context = await new_device(browser)
    page = await context.new_page()
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        await log_in(page, web_server.http_url, NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Bonjour, avant l'expiration")
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour, avant l'expiration")).to_be_visible()
        await send(page, "Réponse avant l'expiration")
        assert (await next_message(pharmacist)).text == "Réponse avant l'expiration"
        await expect(bubble(page, "Réponse avant l'expiration")).not_to_have_attribute(
            "data-state", "pending"
        )
        [(old_device, old_revoked)] = await browser_devices()
        assert not old_revoked

        # The tab is closed; meanwhile the token runs out, or another device logs it out.
        await page.close()
        if how == "expired":
            await expire_token(old_device)
        else:
            await log_out_elsewhere(web_server.http_url)
        page = await unlock(context, web_server.http_url)
        banner = page.locator('#session[data-session="ended"]')
        await expect(banner).to_contain_text("Votre session a pris fin")
        await expect(banner).to_contain_text("nouvel appareil")
        await expect(page.get_by_role("button", name="Se reconnecter")).to_be_visible()
        await in_english_then_french(page, "Your session has ended")

        # The history is read from this browser; a message typed now waits.
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour, avant l'expiration")).to_be_visible()
        await expect(bubble(page, "Réponse avant l'expiration")).to_be_visible()
        await send(page, "Écrit pendant la session expirée")
        pending = bubble(page, "Écrit pendant la session expirée")
        await expect(pending).to_have_attribute("data-state", "pending")
        assert await page.locator("#connection").get_attribute("data-state") == "offline"
        assert no_raw_error(await page.locator("body").inner_text())

        # Log in again from the banner: a new device of the same identity.
        await page.locator("#relogin").click()
        await page.locator("#dev-login").click()
        await the_new_device_took_over(
            page,
            pharmacist,
            room,
            old_device,
            history=("Bonjour, avant l'expiration", "Réponse avant l'expiration"),
            typed="Écrit pendant la session expirée",
        )
    finally:
        await pharmacist.close()
        await context.close()


async def test_a_device_revoked_elsewhere_keeps_its_history_and_sends_nothing(
    web_server, browser, tmp_path
):
    context = await new_device(browser)
    page = await context.new_page()
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    phone = RestApi(web_server.http_url)
    try:
        await log_in(page, web_server.http_url, NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Message lisible hors ligne")
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Message lisible hors ligne")).to_be_visible()
        [(browser_device, browser_revoked)] = await browser_devices()
        assert not browser_revoked

        # The tab is closed; from another device, the nurse revokes this one as lost.
        await page.close()
        login = await phone.dev_login(NURSE, "Téléphone")
        phone.token = login["token"]
        await phone.call("DELETE", f"devices/{browser_device}", json={"reason": "lost"})

        page = await unlock(context, web_server.http_url)
        banner = page.locator('#session[data-session="removed"]')
        await expect(banner).to_contain_text("Cet appareil a été retiré de votre compte")
        await expect(page.locator("#relogin")).to_have_count(0)
        await in_english_then_french(page, "This device was removed from your account")

        # The history stays readable; nothing can be sent.
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Message lisible hors ligne")).to_be_visible()
        await expect(page.locator("#composer")).to_be_hidden()
        assert no_raw_error(await page.locator("body").inner_text())
        await expect(page.locator('#session[data-session="removed"]')).to_be_visible()
        # The browser made no device of its own.
        assert await browser_devices() == [(browser_device, True)]
    finally:
        await phone.close()
        await pharmacist.close()
        await context.close()
