"""A message that reaches the browser before the key to read it is not lost when the
page reloads before the key comes (docs/web.md, "Messages whose key is late"): the
envelope waits in the vault, and is shown once when its key share arrives."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Route, expect

from tests.e2e.sdk import new_client
from tests.web.test_chat import NURSE, PHARMACIST, bubble
from tests.web.test_log_monitor import unlock
from tests.web.vault_pages import read_vault, wait_vault

pytestmark = pytest.mark.e2e
FETCHING_SHARES = re.compile(r"/api/v1/devices/messages\?")


async def test_a_message_whose_key_comes_after_a_reload_is_shown_once(
    app_page, web_server, tmp_path
):
    nurse = await app_page(NURSE)
    withheld: list[str] = []

    # The key shares for this browser are held back (the operator delays them, or the
    # network loses them): each answer listing them is emptied. They stay queued on the
    # server, never acknowledged.
    async def withhold(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        withheld.extend(item["kind"] for item in body["messages"])
        await route.fulfill(response=response, json={"messages": []})

    await nurse.context.route(FETCHING_SHARES, withhold)
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Arrivé avant sa clé")
        # The browser received the envelope, could not open it, and saved: its room's
        # catch-up now starts after it.
        await wait_vault(nurse, f"vault.rooms['{room}']?.lastSeq === 1")
        assert withheld  # the share reached the server and was held back from the page
        await nurse.locator("#room-list button.room").first.click()
        await expect(nurse.locator("#composer")).to_be_visible()
        assert await bubble(nurse, "Arrivé avant sa clé").count() == 0

        # The page reloads before the key comes; the key is still held back.
        await nurse.reload()
        await unlock(nurse)
        await nurse.locator('#connection[data-state="online"]').wait_for()
        await nurse.locator("#room-list button.room").first.click()
        await expect(nurse.locator("#composer")).to_be_visible()
        assert await bubble(nurse, "Arrivé avant sa clé").count() == 0

        # The key comes: the next connection fetches what waits for the device.
        await nurse.context.unroute(FETCHING_SHARES)
        await nurse.context.set_offline(True)
        await expect(nurse.locator("#connection")).to_have_attribute("data-state", "offline")
        await nurse.context.set_offline(False)
        await expect(bubble(nurse, "Arrivé avant sa clé")).to_be_visible()
        await expect(nurse.locator("#messages li")).to_have_count(1)
        await expect(nurse.locator("#messages li")).to_have_attribute("data-seq", "1")

        # Opened, it waits no more: another reload shows it once, from the history.
        await wait_vault(nurse, f"vault.rooms['{room}'].pending.length === 0")
        await nurse.reload()
        await unlock(nurse)
        await nurse.locator("#room-list button.room").first.click()
        await expect(bubble(nurse, "Arrivé avant sa clé")).to_be_visible()
        await expect(nurse.locator("#messages li")).to_have_count(1)
        assert (await read_vault(nurse))["rooms"][str(room)]["pending"] == []
    finally:
        await pharmacist.close()
