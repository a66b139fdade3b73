"""A second browser of the same practitioner is linked from the first by a short code
(docs/protocol.md §10.4.4): it takes the identity, joins the rooms by itself, and
chats as the first does."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.e2e.sdk import new_client, next_message
from tests.web.conftest import PASSPHRASE, PHONE, new_device, screenshot
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

        # The second browser joins the care team by itself and reads new messages.
        await second.locator("#room-list button.room").first.click()
        await doctor.refresh_rooms()
        room_id = next(iter(doctor.rooms))
        await doctor.send_text(room_id, "Pour les deux appareils de Claire")
        await expect(bubble(second, "Pour les deux appareils")).to_be_visible()
        await send(second, "Depuis mon téléphone")
        received = await asyncio.wait_for(next_message(doctor), timeout=20)
        assert (received.text, received.sender[0]) == ("Depuis mon téléphone", NURSE)
        await context.close()
    finally:
        await doctor.close()
