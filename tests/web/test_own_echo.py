"""A message of this browser that comes back to it is the one it shows, matched by its
client message id (docs/protocol.md §2, §3), not by its text: a photo sent without a
caption, whose acknowledgement was lost, shows once after the reconnection. The
catch-up brings its envelope back; the browser decrypts its own envelope (with the
history key of its own sender key), recognises the message, and its outbox does not
send it a second time."""

from __future__ import annotations

import asyncio
import json

import pytest
from playwright.async_api import WebSocketRoute, expect

from tests.attachments.photos import phone_jpeg
from tests.e2e.sdk import new_client
from tests.web.conftest import PHONE, log_in, new_device

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"


async def test_a_captionless_photo_whose_ack_was_lost_shows_once_after_the_catch_up(
    web_server, browser, tmp_path
):
    context = await new_device(browser, viewport=PHONE)
    ack_lost = asyncio.Event()
    connections: list[WebSocketRoute] = []
    sent: list[str] = []  # the client message id of every envelope the page sends

    async def relay(route: WebSocketRoute) -> None:
        """The real server's socket, but the first acknowledgement of an attachment's
        message never reaches the page; the connection is then cut."""
        connections.append(route)
        server = route.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "ack" and not ack_lost.is_set():
                ack_lost.set()  # the page sends nothing else: this is the photo's
                return
            route.send(message)

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send":
                sent.append(frame["id"])
            server.send(message)

        server.on_message(to_page)
        route.on_message(to_server)

    await context.route_web_socket("**/ws/v1/", relay)
    page = await context.new_page()
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        await log_in(page, web_server.http_url, NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "La photo, sans légende")
        await page.locator("#room-list button.room").first.click()
        await page.locator("#messages li", has_text="sans légende").wait_for()

        await page.get_by_label("Prendre ou choisir une photo").set_input_files(
            {"name": "IMG_1.JPG", "mimeType": "image/jpeg", "buffer": phone_jpeg()}
        )
        await page.locator("img[data-preview=photo]").wait_for()
        await page.locator("button[data-attach=send]").click()
        photos = page.locator("#messages li.own [data-attachment]")
        await expect(page.locator("#messages li").last).to_have_attribute("data-state", "pending")
        await asyncio.wait_for(ack_lost.wait(), 20)

        # The server stored it; the page never heard. The connection is cut: the page
        # reconnects and its catch-up brings the message back.
        await connections[0].close()
        await expect(page.locator("#messages li").last).not_to_have_attribute(
            "data-state", "pending"
        )
        await page.locator('#connection[data-state="online"]').wait_for()
        await pharmacist.send_text(room, "Bien reçue")
        await page.locator("#messages li", has_text="Bien reçue").wait_for()
        await expect(page.locator("#messages li")).to_have_count(3)
        assert await photos.count() == 1
        seqs = await page.locator("#messages li").evaluate_all(
            "items => items.map(i => Number(i.dataset.seq))"
        )
        assert seqs == [1, 2, 3]
        # Recognised in the catch-up (its own envelope decrypted): never sent twice.
        assert len(sent) == 1
    finally:
        await pharmacist.close()
        await context.close()
