"""The decrypted history lives in sealed chunks beside the vault (docs/web.md, "Where
keys live"): after a reload it is read back from them, in order, without asking the
server again; an older sealed copy of a chunk put back by someone with access to the
browser's storage is refused, not shown as the current history."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket, expect

from tests.e2e.sdk import new_client
from tests.web.test_chat import NURSE, PHARMACIST, bubble
from tests.web.test_log_monitor import unlock
from tests.web.vault_pages import chunk_record, copy_record, put_record, wait_vault

pytestmark = pytest.mark.e2e
CHUNK_MESSAGES = 200  # web/src/client/chunks.ts
FIRST = CHUNK_MESSAGES + 3  # two chunks: a full one and the start of the next


def text(number: int) -> str:
    return f"Message {number:03d}"


class Frames:
    """The frames the page's WebSockets send and receive from now on, parsed, and
    whether the server said a catch-up is complete (``synced``)."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.synced = asyncio.Event()
        page.on("websocket", self.on_socket)

    def on_socket(self, socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        socket.on("framereceived", self.on_received)

    def on_received(self, payload: str | bytes) -> None:
        frame = json.loads(payload)
        self.received.append(frame)
        if frame["type"] == "synced":
            self.synced.set()


async def shown_seqs(page: Page) -> list[int]:
    seqs: list[int] = await page.locator("#messages li").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    return seqs


async def open_room(page: Page) -> None:
    await page.locator("#room-list button.room").first.click()
    await expect(page.locator("#composer")).to_be_visible()


async def test_history_comes_back_from_its_chunks_and_an_older_chunk_is_refused(
    app_page, web_server, tmp_path
):
    nurse = await app_page(NURSE)
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        # The app is closed while the pharmacist writes more than a chunk holds.
        await nurse.goto("about:blank")
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        for number in range(1, FIRST + 1):
            await pharmacist.send_text(room, text(number))
        await nurse.goto(web_server.http_url + "/")
        await unlock(nurse)
        await open_room(nurse)
        await expect(nurse.locator("#messages li")).to_have_count(FIRST)
        await wait_vault(
            nurse,
            f"vault.rooms['{room}'].lastSeq === {FIRST}"
            f" && Object.keys(vault.chunks['{room}'].chunks).sort().join() === '0,1'",
        )

        # Reopened, the history is read back from the chunks: the catch-up asks only
        # for what follows the last message, and the server sends none of them again.
        frames = Frames(nurse)
        await nurse.reload()
        await unlock(nurse)
        await nurse.locator('#connection[data-state="online"]').wait_for()
        await open_room(nurse)
        await expect(nurse.locator("#messages li")).to_have_count(FIRST)
        assert await shown_seqs(nurse) == list(range(1, FIRST + 1))
        await expect(nurse.locator("#messages li").first).to_contain_text(text(1))
        await expect(nurse.locator("#messages li").last).to_contain_text(text(FIRST))
        await asyncio.wait_for(frames.synced.wait(), timeout=20)
        syncs = [f["rooms"] for f in frames.sent if f["type"] == "sync"]
        assert syncs == [{str(room): FIRST}]
        resent = [m for f in frames.received if f["type"] == "backlog" for m in f["messages"]]
        resent += [f for f in frames.received if f["type"] == "message"]
        assert resent == []

        # Someone with access to the browser's storage copies the last chunk as it is
        # now (messages 201 to 203), and puts the copy back after two more came.
        key = chunk_record(room, 1)
        older = await copy_record(nurse, key)
        await pharmacist.send_text(room, text(FIRST + 1))
        await pharmacist.send_text(room, text(FIRST + 2))
        await expect(bubble(nurse, text(FIRST + 2))).to_be_visible()
        await wait_vault(nurse, f"vault.rooms['{room}'].lastSeq === {FIRST + 2}")
        assert (await copy_record(nurse, key))["nonce"] != older["nonce"]  # sealed afresh
        await nurse.reload()  # the unlock screen: the app writes nothing before unlock
        await put_record(nurse, key, older)
        assert await copy_record(nurse, key) == older

        # The app refuses the older copy: an alert, and none of its messages shown as
        # the room's history.
        await unlock(nurse)
        alert = nurse.locator('.alert[data-kind="history_damaged"]')
        await expect(alert).to_contain_text("pas pu être relus")
        await open_room(nurse)
        await expect(nurse.locator("#messages li")).to_have_count(CHUNK_MESSAGES)
        assert await shown_seqs(nurse) == list(range(1, CHUNK_MESSAGES + 1))
        for number in range(CHUNK_MESSAGES + 1, FIRST + 3):
            assert await bubble(nurse, text(number)).count() == 0
        await expect(nurse.locator('.alert[data-kind="history_damaged"]')).to_be_visible()
    finally:
        await pharmacist.close()
