"""A care-team room's title (its encrypted profile, docs/protocol.md §10.5) reaches a
practitioner's linked and recovered browsers (§10.9): the profile key travels with the
history keys, in the transfer to a linked device and in the backup sealed to the
recovery code. Each test checks the title before anyone in the room sends again, so no
new key share could have brought it. The browser and the Python SDK read what the
other sent or backed up. A profile key the room's state does not name is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from playwright.async_api import Locator, Page, expect

from client import registration
from client.history import RoomProfileKey, seal_transfer
from client.session import RelaisClient
from client.store import KeyStore
from e2ee.encoding import b64u
from e2ee.profile import ProfileKey
from keyring.models import HistoryKey
from tests.e2e.sdk import PASSPHRASE as STORE_PASSPHRASE
from tests.e2e.sdk import TIMEOUT, new_client, open_client
from tests.web.conftest import link_from_sdk, log_in, new_device
from tests.web.test_chat import DOCTOR, NURSE
from tests.web.test_dishonest_server import create_care_team
from tests.web.test_linking import link_from_browser
from tests.web.test_recovery import start_recovery, type_code
from tests.web.vault_pages import read_vault

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


async def refusals_in_vault(page: Page) -> dict[str, Any]:
    """Once the browser's vault, as stored, holds an alert: its alerts (kind, heading)
    and each room's profile key ids. (``wait_for_function`` takes a pending promise for
    a true value, so the vault is read in a loop.)"""
    async with asyncio.timeout(20):
        while not (vault := await read_vault(page))["alerts"]:  # noqa: ASYNC110 (IndexedDB)
            await asyncio.sleep(0.25)
    return {
        "alerts": [[a["kind"], a["detail"].split(":")[0]] for a in vault["alerts"]],
        "profile_keys": [list(r["profileKeys"]) for r in vault["rooms"].values()],
    }


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
        await link_from_sdk(page, web_server.http_url, NURSE, computer)
        await expect(room_titled(page, TITLE)).to_be_visible()

        # A transfer signed by the computer that names, for the room, a profile key id
        # its state does not have: refused with an alert; the title stays.
        await computer.refresh_state(room)
        devices = computer.rooms[room].state.members[NURSE].devices
        (linked,) = set(devices) - {computer.device_id}
        computer.directory.forget(NURSE)
        mine = await computer.directory.identity_of(NURSE)
        forged = RoomProfileKey(
            room=computer.rooms[room].state.room,
            version=1,
            key=ProfileKey(key_id=bytes(16), key=bytes(32)),
        )
        sealed = seal_transfer(
            keys=[],
            sender=computer.me,
            key_pair=computer.key_pair,
            recipient=(NURSE, linked),
            recipient_kex=mine.devices[linked].keys.kex_key,
            profile_keys=[forged],
        )
        await computer.api.call(
            "POST",
            "devices/messages",
            json={"messages": [{"device": linked, "body": b64u(sealed)}]},
        )
        refused = await refusals_in_vault(page)
        assert refused["alerts"] == [["unknown_key", "history keys refused"]]
        named = computer.rooms[room].state.profile
        assert refused["profile_keys"] == [[b64u(named.key_id)]]
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
