"""A care-team room's title (its encrypted profile, docs/protocol.md §10.5) reaches a
practitioner's linked and recovered browsers (§10.9): the profile key travels with the
history keys, in the transfer to a linked device and in the backup sealed to the
recovery code. Each test checks the title before anyone in the room sends again, so no
new key share could have brought it. The browser and the Python SDK read what the
other sent or backed up."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async as sync_to_async
from playwright.async_api import Locator, Page, expect

from client import registration
from client.session import RelaisClient
from client.store import KeyStore
from keyring.models import HistoryKey
from tests.e2e.sdk import PASSPHRASE as STORE_PASSPHRASE
from tests.e2e.sdk import TIMEOUT, new_client, open_client
from tests.web.conftest import PASSPHRASE, log_in, new_device
from tests.web.test_chat import DOCTOR, NURSE
from tests.web.test_dishonest_server import create_care_team
from tests.web.test_linking import link_from_browser
from tests.web.test_recovery import start_recovery, type_code

pytestmark = pytest.mark.e2e
TITLE = "Suivi de Mme D. — plaie du talon"


def room_titled(page: Page, title: str) -> Locator:
    return page.locator("#room-list button.room", has_text=title)


async def backup_records(national_id: str, count: int) -> None:
    """Until the server holds ``count`` backed-up records (history keys and profile
    keys) of the practitioner."""

    def held() -> int:
        return HistoryKey.objects.filter(practitioner_id=national_id).count()

    async with asyncio.timeout(20):
        while await sync_to_async(held)() < count:  # noqa: ASYNC110 (the server's database)
            await asyncio.sleep(0.1)


async def shows_title(client: RelaisClient, title: str) -> None:
    """Until the SDK device reads a room whose profile has this title."""

    def titled(room: object) -> bool:
        profile = client.room_profile(room.room_id)  # type: ignore[attr-defined]
        return profile is not None and profile.content.get("title") == title

    async with asyncio.timeout(TIMEOUT):
        await client.wait_for_room(titled)


async def test_an_sdk_device_links_a_browser_that_shows_the_title(web_server, browser, tmp_path):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    computer = await open_client(web_server.http_url, tmp_path, NURSE, "computer")
    context = await new_device(browser)
    try:
        room = await computer.create_room(kind="care_team", members=[DOCTOR])
        await computer.set_room_profile(room, {"title": TITLE})

        page = await context.new_page()
        await page.goto(web_server.http_url + "/")
        await page.get_by_label("Numéro RPPS").fill(NURSE)
        await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
        await page.get_by_role("button", name="Se connecter (développement)").click()
        code = await page.locator("#link-short-code").text_content()
        assert code is not None

        async def yes(device: int, name: str) -> bool:
            return True

        await registration.approve_link(computer, code, confirm=yes)
        await expect(room_titled(page, TITLE)).to_be_visible()
    finally:
        await context.close()
        await computer.close()
        await doctor.close()


async def test_a_browser_links_an_sdk_device_that_shows_the_title(app_page, web_server, tmp_path):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    laptop = RelaisClient(
        server=web_server.http_url,
        store=KeyStore.open(tmp_path / "laptop.store", STORE_PASSPHRASE, n=2**10),
    )
    try:
        first = await app_page(NURSE)
        await create_care_team(first, TITLE, [DOCTOR])
        await first.locator("#composer").wait_for()

        login = await laptop.api.dev_login(NURSE, "laptop")
        pending = await registration.start_link(
            laptop, token=login["token"], device=login["device"], national_id=NURSE
        )
        await first.get_by_role("button", name="Retour").click()
        await link_from_browser(first, pending.code.short_code)
        await registration.finish_link(laptop, pending, wait_seconds=20)
        await laptop.connect()
        await shows_title(laptop, TITLE)
    finally:
        await laptop.close()
        await doctor.close()


async def test_a_recovered_browser_and_a_recovered_sdk_device_show_the_title(
    web_server, browser, tmp_path
):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    lost = await new_device(browser)
    try:
        page = await lost.new_page()
        code = await log_in(page, web_server.http_url, NURSE)  # her first device
        await create_care_team(page, TITLE, [DOCTOR])
        await page.locator("#composer").wait_for()
        # The care team's profile key, and the history key of its first sender key
        # (made to share the profile key with the doctor).
        await backup_records(NURSE, 2)
        await lost.close()  # every device of the nurse is lost

        context = await new_device(browser)
        again = await context.new_page()
        await start_recovery(again, web_server.http_url, NURSE)
        await type_code(again, code)
        await expect(room_titled(again, TITLE)).to_be_visible()
        await context.close()

        restored = await open_client(
            web_server.http_url, tmp_path, NURSE, "nurse-sdk", recovery_code=code
        )
        try:
            await shows_title(restored, TITLE)
        finally:
            await restored.close()
    finally:
        await doctor.close()
