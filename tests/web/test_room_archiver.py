"""The room's information panel says who archives it: the archiver the verified room
state names, proven in the log as an organisation's archiver device, with the
organisation's name from the directory (as the SDK's ``archiver_notice``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from channels.db import database_sync_to_async as sync_to_async
from playwright.async_api import Page, expect

from chat.models import Envelope, ToDeviceMessage
from client.archiver import ArchiverClient
from client.session import RelaisClient
from tests.e2e.sdk import new_client
from tests.e2e.test_archiver import (
    NAME,
    ORGANISATION,
    archiver_client,
    create_archiver,
    messages_of,
    present_a_false_archiver,
    uncertified_archiver,
)
from tests.web.conftest import screenshot
from tests.web.test_chat import bubble, send

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"


@asynccontextmanager
async def archived_room_open(
    app_page, web_server, server_env, tmp_path, text: str
) -> AsyncIterator[tuple[ArchiverClient, Page, RelaisClient, int]]:
    """The organisation's archiver (not connected yet), the doctor's browser with the
    information panel of the nurse's archived room open once ``text`` is shown there,
    the nurse and the room; the nurse and the archiver are closed on the way out."""
    token_file = tmp_path / "archiver.json"
    create_archiver(server_env, token_file)
    archiver = await archiver_client(web_server, tmp_path, token_file)
    doctor = await app_page(DOCTOR)
    nurse = await new_client(web_server.http_url, tmp_path, NURSE, "nurse")
    try:
        room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
        await nurse.send_text(room, text)
        await doctor.locator("#room-list button.room").first.click()
        await doctor.locator("#messages li", has_text=text).wait_for()
        await doctor.get_by_text("Informations sur la conversation").click()
        yield archiver, doctor, nurse, room
    finally:
        await nurse.close()
        await archiver.close()


async def test_the_info_panel_names_the_organisation_that_archives_the_room(
    app_page, web_server, server_env, tmp_path
):
    async with archived_room_open(
        app_page, web_server, server_env, tmp_path, "Pansement refait, plaie propre."
    ) as (archiver, doctor, _, _):
        line = doctor.locator("#archiver")
        await expect(line).to_have_text(
            f"Archivée par {NAME} (structure 1750000123) : l'archiveur de cet organisme "
            "reçoit les messages de la conversation"
        )
        await screenshot(doctor, "conversation-archiver-desktop")

        # The browser shares its sender key with the archiver device the log proved,
        # as with any member's device: the archiver reads what the browser sends.
        await send(doctor, "Vu, je passe jeudi.")
        await expect(bubble(doctor, "je passe jeudi")).to_have_attribute("data-state", "sent")
        await archiver.connect()
        received = await messages_of(archiver, 2)
        assert [(m.seq, m.sender[0], m.text) for m in received] == [
            (1, NURSE, "Pansement refait, plaie propre."),
            (2, DOCTOR, "Vu, je passe jeudi."),
        ]


async def test_the_info_panel_says_archives_also_go_to_each_member(
    app_page, web_server, server_env, tmp_path
):
    async with archived_room_open(
        app_page, web_server, server_env, tmp_path, "Pansement refait."
    ) as (_, doctor, nurse, room):
        await expect(doctor.locator("#archiver")).to_contain_text(f"Archivée par {NAME}")
        await expect(doctor.locator("#archive-recipients")).to_have_count(0)
        # The admin turns the policy on: the browser verifies the signed event and says so.
        await nurse.set_archive_to_members(room, True)
        await nurse.send_text(room, "Les archives iront aussi à vos adresses MSSanté.")
        await doctor.locator("#messages li", has_text="adresses MSSanté").wait_for()
        await expect(doctor.locator("#archive-recipients")).to_have_text(
            "Archives aussi envoyées à l'adresse MSSanté de chaque membre"
        )


async def test_a_room_without_archiver_says_so(app_page, web_server, tmp_path):
    doctor = await app_page(DOCTOR)
    nurse = await new_client(web_server.http_url, tmp_path, NURSE, "nurse")
    try:
        room = await nurse.create_room(kind="direct", members=[DOCTOR])
        await nurse.send_text(room, "Bonjour")
        await doctor.locator("#room-list button.room").first.click()
        await doctor.get_by_text("Informations sur la conversation").click()
        await expect(doctor.locator("#archiver")).to_have_text("Conversation non archivée")
    finally:
        await nurse.close()


async def test_an_archiver_the_log_does_not_prove_is_a_warning_and_gets_nothing(
    app_page, web_server, tmp_path
):
    """The server names, in a signed state event it forges with a member's key, a real
    archiver device of the organisation but with keys the log never saw."""
    doctor = await app_page(DOCTOR)
    nurse = await new_client(web_server.http_url, tmp_path, NURSE, "nurse")
    try:
        room = await nurse.create_room(kind="care_team", members=[DOCTOR])
        await nurse.send_text(room, "avant")
        await doctor.locator("#room-list button.room").first.click()
        await doctor.locator("#messages li", has_text="avant").wait_for()
        false_archiver = await sync_to_async(uncertified_archiver)()
        await sync_to_async(present_a_false_archiver)(room, nurse, false_archiver)

        await send(doctor, "le secret que l'archiveur usurpé voudrait lire")
        await expect(bubble(doctor, "voudrait lire")).to_have_attribute("data-state", "failed")
        await doctor.get_by_text("Informations sur la conversation").click()
        line = doctor.locator("#archiver")
        await expect(line).to_contain_text("Sécurité : l'archiveur de la conversation est refusé")
        await expect(line).to_have_attribute("role", "alert")
        received = await sync_to_async(
            ToDeviceMessage.objects.filter(recipient_id=false_archiver.device).count
        )()
        assert received == 0
        assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 1
    finally:
        await nurse.close()
