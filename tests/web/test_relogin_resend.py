"""A message the server stored from this browser's old device, whose acknowledgement
was lost just before the device's token died, is not stored a second time by the new
device the browser logs in again as (docs/web.md, "When the session ends"): the catch-up
after the new login brings the old device's envelope back with its client message id,
the browser recognises its own message from a device number it held before, and its
outbox does not send it again. The other member reads it once; the browser shows it
once, sent.

"answered": a reply from the other member reached the browser after the lost
acknowledgement, so the room's position the browser holds is past the message: the
catch-up after the new login starts from where the browser stood when the message first
went out."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from playwright.async_api import WebSocketRoute, expect

from chat.models import Envelope
from tests.e2e.sdk import new_client, next_message
from tests.web.conftest import log_in, new_device
from tests.web.test_chat import bubble, send
from tests.web.test_session_expiry import browser_devices, expire_token, unlock

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"
LOST = "Envoyé, accusé de réception perdu"


async def envelopes_with_id(room: int, client_id: str) -> list[int]:
    """The sender devices of the stored envelopes carrying ``client_id``."""

    def read() -> list[int]:
        rows = Envelope.objects.filter(room_id=room, client_id=client_id).order_by("seq")
        return [e.sender_device_id for e in rows]

    devices: list[int] = await database_sync_to_async(read)()
    return devices


@pytest.mark.parametrize("how", ["alone", "answered"])
async def test_a_message_stored_before_the_token_died_is_not_sent_again_by_the_new_device(
    web_server, browser, tmp_path, how
):
    context = await new_device(browser)
    drop_acks = asyncio.Event()
    ack_lost = asyncio.Event()
    sends: list[tuple[str, str]] = []  # (client message id, socket) of every "send"
    connections: list[WebSocketRoute] = []

    async def relay(route: WebSocketRoute) -> None:
        """The real server's socket; once asked, the next acknowledgement never reaches
        the page."""
        connections.append(route)
        name = f"connection {len(connections)}"
        server = route.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "ack" and drop_acks.is_set() and not ack_lost.is_set():
                ack_lost.set()
                return
            route.send(message)

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send":
                sends.append((frame["id"], name))
            server.send(message)

        server.on_message(to_page)
        route.on_message(to_server)

    await context.route_web_socket("**/ws/v1/", relay)
    page = await context.new_page()
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        await log_in(page, web_server.http_url, NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Bonjour")
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, "Bonjour")).to_be_visible()
        [(old_device, _)] = await browser_devices()

        # The server stores the message and tells the page so; the page never hears.
        drop_acks.set()
        await send(page, LOST)
        await asyncio.wait_for(ack_lost.wait(), 20)
        assert (await next_message(pharmacist)).text == LOST
        [(lost_id, _)] = sends
        assert await envelopes_with_id(room, lost_id) == [old_device]
        if how == "answered":
            await pharmacist.send_text(room, "Bien reçu")
            await expect(bubble(page, "Bien reçu")).to_be_visible()
        await expect(bubble(page, LOST)).to_have_attribute("data-state", "pending")

        # The tab is closed and the token runs out before the page heard of it.
        await page.close()
        await expire_token(old_device)
        page = await unlock(context, web_server.http_url)
        await expect(page.locator('#session[data-session="ended"]')).to_be_visible()
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, LOST)).to_have_attribute("data-state", "pending")

        # Logged in again as a new device: the catch-up shows the message stored.
        await page.locator("#relogin").click()
        await page.locator("#dev-login").click()
        await page.locator("#room-list").wait_for()
        await expect(page.locator('#connection[data-state="online"]')).to_be_visible()
        [old, (new_device_id, new_revoked)] = await browser_devices()
        assert old == (old_device, True)
        assert not new_revoked
        await page.locator("#room-list button.room").first.click()
        await expect(bubble(page, LOST)).not_to_have_attribute("data-state", "pending")
        await expect(bubble(page, LOST)).to_have_count(1)

        # The next message is the pharmacist's next one: the lost one came once.
        await send(page, "Après la reconnexion")
        after = await next_message(pharmacist)
        assert after.text == "Après la reconnexion"
        assert after.sender == (NURSE, new_device_id)
        assert await envelopes_with_id(room, lost_id) == [old_device]
        assert [client_id for client_id, _ in sends].count(lost_id) == 1
        expected = ["Bonjour", LOST] + (["Bien reçu"] if how == "answered" else [])
        expected.append("Après la reconnexion")
        await expect(page.locator("#messages li")).to_have_count(len(expected))
        for text in expected:
            await expect(bubble(page, text)).to_have_count(1)
    finally:
        await pharmacist.close()
        await context.close()
