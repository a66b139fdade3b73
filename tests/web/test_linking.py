"""A second browser of the same practitioner is linked from the first by a short code
(docs/protocol.md §10.4.4): it takes the identity, joins the rooms by itself, reads the
history from before it was linked (the history keys the first device sends it, §10.9),
and chats as the first does. The same with the Python SDK on either side of the link."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from client import registration
from client.session import RelaisClient
from client.store import KeyStore
from tests.e2e.sdk import PASSPHRASE as STORE_PASSPHRASE
from tests.e2e.sdk import new_client, next_message, open_client
from tests.web.conftest import PASSPHRASE, PHONE, link_from_sdk, new_device, screenshot
from tests.web.test_chat import DOCTOR, NURSE, bubble, send
from tests.web.test_dishonest_server import create_care_team

pytestmark = pytest.mark.e2e


async def test_a_second_browser_is_linked_by_code_and_chats(
    app_page, web_server, browser, tmp_path
):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    try:
        first = await app_page(NURSE)
        await create_care_team(first, "Suivi Mme D.", [DOCTOR])
        await first.locator("#composer").wait_for()
        await send(first, "Avant la liaison, du premier navigateur")
        assert (await asyncio.wait_for(next_message(doctor), 20)).text.startswith("Avant")
        room_id = next(iter(doctor.rooms))
        await doctor.send_text(room_id, "Avant la liaison, du médecin")
        await expect(bubble(first, "Avant la liaison, du médecin")).to_be_visible()

        # The second browser logs in: the practitioner has an identity, so it shows a
        # link code instead of making one.
        context = await new_device(browser, viewport=PHONE)
        second = await context.new_page()
        await second.goto(web_server.http_url + "/")
        await second.get_by_label("Numéro RPPS").fill(NURSE)
        await second.get_by_label("Phrase de passe").fill(PASSPHRASE)
        await second.get_by_role("button", name="Se connecter (développement)").click()
        code = await second.locator("#link-short-code").text_content()
        assert code is not None
        await expect(second.get_by_role("img")).to_be_visible()
        await screenshot(second, "link-code-phone")

        # The first browser takes the code and approves.
        await first.get_by_role("button", name="Retour").click()
        await first.get_by_role("button", name="Appareils").click()
        await first.get_by_role("button", name="Lier un appareil").click()
        await first.get_by_label("Code affiché par le nouvel appareil").fill(code.lower())
        await first.get_by_role("button", name="Vérifier le code").click()
        await first.locator("#link-approve").click()

        # The second browser joins the care team by itself, reads what was written
        # before it was linked (its practitioner's own message too), and new messages.
        await second.locator("#room-list button.room").first.click()
        await expect(
            second.locator("#messages li.own", has_text="Avant la liaison, du premier navigateur")
        ).to_be_visible()
        await expect(bubble(second, "Avant la liaison, du médecin")).to_be_visible()
        await doctor.refresh_rooms()
        await doctor.send_text(room_id, "Pour les deux appareils de Claire")
        await expect(bubble(second, "Pour les deux appareils")).to_be_visible()
        await send(second, "Depuis mon téléphone")
        received = await asyncio.wait_for(next_message(doctor), timeout=20)
        assert (received.text, received.sender[0]) == ("Depuis mon téléphone", NURSE)
        await context.close()
    finally:
        await doctor.close()


async def link_from_browser(page, code: str) -> None:
    """On a browser of the practitioner: Appareils, Lier un appareil, the code, approve."""
    await page.get_by_role("button", name="Appareils").click()
    await page.get_by_role("button", name="Lier un appareil").click()
    await page.get_by_label("Code affiché par le nouvel appareil").fill(code)
    await page.get_by_role("button", name="Vérifier le code").click()
    await page.locator("#link-approve").click()
    await page.locator("#device-list").wait_for()


async def test_a_browser_links_an_sdk_device_that_reads_the_history(app_page, web_server, tmp_path):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    laptop = RelaisClient(
        server=web_server.http_url,
        store=KeyStore.open(tmp_path / "laptop.store", STORE_PASSPHRASE, n=2**10),
    )
    try:
        first = await app_page(NURSE)
        await create_care_team(first, "Suivi Mme D.", [DOCTOR])
        await first.locator("#composer").wait_for()
        await send(first, "Du navigateur, avant la liaison")
        assert (await asyncio.wait_for(next_message(doctor), 20)).text.startswith("Du nav")
        await doctor.send_text(next(iter(doctor.rooms)), "Du médecin, avant la liaison")
        await expect(bubble(first, "Du médecin, avant la liaison")).to_be_visible()

        login = await laptop.api.dev_login(NURSE, "laptop")
        pending = await registration.start_link(
            laptop, token=login["token"], device=login["device"], national_id=NURSE
        )
        await first.get_by_role("button", name="Retour").click()
        await link_from_browser(first, pending.code.short_code)
        await registration.finish_link(laptop, pending, wait_seconds=20)
        await laptop.connect()
        texts: set[str] = set()
        async with asyncio.timeout(20):
            while len(texts) < 2:
                texts.add((await next_message(laptop)).text)
        assert texts == {"Du navigateur, avant la liaison", "Du médecin, avant la liaison"}
    finally:
        await laptop.close()
        await doctor.close()


async def test_an_sdk_device_links_a_browser_that_reads_the_history(web_server, browser, tmp_path):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    computer = await open_client(web_server.http_url, tmp_path, NURSE, "computer")
    context = await new_device(browser)
    try:
        room = await computer.create_room(kind="care_team", members=[DOCTOR])
        await computer.send_text(room, "De l'ordinateur, avant la liaison")
        assert (await asyncio.wait_for(next_message(doctor), 20)).text.startswith("De l'ord")
        await doctor.send_text(room, "Du médecin, avant la liaison")
        assert (await asyncio.wait_for(next_message(computer), 20)).text.startswith("Du méd")

        page = await context.new_page()
        await link_from_sdk(page, web_server.http_url, NURSE, computer)
        await page.locator("#room-list button.room").first.click()
        await expect(
            page.locator("#messages li.own", has_text="De l'ordinateur, avant la liaison")
        ).to_be_visible()
        await expect(bubble(page, "Du médecin, avant la liaison")).to_be_visible()
    finally:
        await context.close()
        await computer.close()
        await doctor.close()
