"""Two browsers chat end to end through a real server, and a browser and the Python SDK
chat both ways; the server stores only ciphertext."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, expect

from tests.e2e.sdk import new_client, next_message
from tests.e2e.teleexpertise_helpers import plaintext_found
from tests.web.conftest import DESKTOP, PHONE, screenshot

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHARMACIST = "810003456786", "810001987659", "810002765435"


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Envoyer").click()


def bubble(page: Page, text: str):
    return page.locator("#messages li", has_text=text)


async def open_direct_room(
    page: Page, query: str, national_id: str, screenshot_as: str | None = None
) -> None:
    """Start a conversation from a directory search (the lower national id creates the
    direct room: docs/protocol.md §10.11)."""
    await page.get_by_role("button", name="Nouvelle conversation").click()
    await page.get_by_label("Rechercher un professionnel").fill(query)
    await page.get_by_role("button", name="Rechercher", exact=True).click()
    result = page.locator(f'#results [data-national-id="{national_id}"]')
    await result.wait_for()
    if screenshot_as:
        await screenshot(page, screenshot_as)
    await result.click()
    await page.locator("#composer").wait_for()


async def test_two_browsers_chat_end_to_end_and_the_server_holds_no_plaintext(
    app_page, web_server, tmp_path
):
    doctor = await app_page(DOCTOR, viewport=DESKTOP)
    nurse = await app_page(NURSE, viewport=PHONE)
    await open_direct_room(doctor, "Martin", NURSE, screenshot_as="search-desktop")
    await send(doctor, "Bonjour, comment va la plaie de Mme D. ?")
    await expect(bubble(doctor, "comment va la plaie")).to_have_attribute(
        "data-state", "delivered", timeout=20_000
    )

    # The nurse's rooms list shows the new room with one unread message.
    room = nurse.locator("#room-list button.room").first
    await expect(room.locator(".badge")).to_have_text("1")
    await screenshot(nurse, "rooms-phone")
    await room.click()
    await expect(bubble(nurse, "Bonjour, comment va la plaie de Mme D. ?")).to_be_visible()
    # She read it: the doctor's message says so.
    await expect(bubble(doctor, "comment va la plaie")).to_have_attribute("data-state", "read")
    await send(nurse, "Propre, pas de fièvre. Pansement refait à 10 h.")
    await expect(bubble(doctor, "Propre, pas de fièvre.")).to_be_visible()
    await expect(bubble(nurse, "Propre, pas de fièvre.")).to_have_attribute("data-state", "read")
    await screenshot(nurse, "conversation-phone")
    await screenshot(doctor, "conversation-desktop")
    # Each message shows once on each side.
    assert await doctor.locator("#messages li").count() == 2
    assert await nurse.locator("#messages li").count() == 2
    await doctor.get_by_role("button", name="Retour").click()
    await doctor.locator("#room-list button.room").first.wait_for()
    await screenshot(doctor, "rooms-desktop")
    # Nothing of the conversation is on the server: database rows, Redis, logs.
    needles = ["comment va la plaie", "pas de fièvre", "Pansement refait"]
    assert await plaintext_found(needles, [tmp_path / "server.log"]) == []


async def test_a_browser_and_the_python_sdk_chat_both_ways(app_page, web_server, tmp_path):
    nurse_page = await app_page(NURSE)
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        # The SDK's national id sorts first: it creates the direct room (§10.11).
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Ordonnance de Mme D. reçue, je prépare.")
        await nurse_page.locator("#room-list button.room").first.click()
        await expect(bubble(nurse_page, "Ordonnance de Mme D. reçue")).to_be_visible()
        await send(nurse_page, "Merci ! Je passe la prendre à 17 h.")
        received = await asyncio.wait_for(next_message(pharmacist), timeout=20)
        assert received.text == "Merci ! Je passe la prendre à 17 h."
        assert received.sender[0] == NURSE
        await expect(bubble(nurse_page, "Je passe la prendre")).to_have_attribute(
            "data-state", "sent"
        )
    finally:
        await pharmacist.close()
