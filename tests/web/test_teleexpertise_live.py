"""The browser's téléexpertise around its envelopes: a step of the SDK shows from the
server's live ``teleexpertise`` frame alone (§12.4), the photos of a request whose call
fails are withdrawn from the server (§12.3), and the request's room names the archiver of
the requérant's organisation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Route, WebSocketRoute, expect

from tests.e2e.teleexpertise_helpers import DOCTOR, NURSE, te_client
from tests.e2e.test_archiver import (
    NAME,
    ORGANISATION,
    archiver_client,
    create_archiver,
    messages_of,
)
from tests.web.conftest import log_in, new_device
from tests.web.teleexpertise_pages import (
    fill_request,
    open_teleexpertise,
    request_call_unavailable,
    sdk_request,
    uploads_of,
)

pytestmark = pytest.mark.e2e


async def test_a_step_of_the_sdk_shows_from_its_live_frame_alone(web_server, browser, tmp_path):
    """The room's envelopes never reach the page once the request is listed, and the
    list cannot be read again: only the server's frame can say the case was cancelled."""
    muted: set[int] = set()
    held: list[dict[str, Any]] = []
    envelope_held = asyncio.Event()

    async def relay(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") in ("message", "backlog") and frame.get("room") in muted:
                held.append(frame)
                envelope_held.set()
                return
            route.send(message)

        server.on_message(to_page)
        route.on_message(server.send)

    context = await new_device(browser)
    await context.route_web_socket("**/ws/v1/", relay)
    page = await context.new_page()
    nurse, nurse_te = await te_client(web_server, tmp_path, NURSE, "nurse")
    try:
        await log_in(page, web_server.http_url, DOCTOR)
        sent = await sdk_request(nurse_te)
        await open_teleexpertise(page)
        await page.get_by_role("button", name="Demandes reçues").click()
        case = page.locator(f'#te-cases [data-room="{sent.room_id}"]')
        await expect(case).to_have_attribute("data-state", "requested")

        muted.add(sent.room_id)
        lists: list[str] = []

        async def unreachable(route: Route) -> None:
            lists.append(route.request.url)
            await route.abort()

        await page.route(lambda url: "/api/v1/teleexpertise?role=" in url, unreachable)
        cancelled = await nurse_te.cancel(sent.room_id, "")
        await expect(case).to_have_attribute("data-state", "cancelled")
        await expect(case.locator(".te-state")).to_have_text("annulée")
        # The cancel's envelope was stored and held back; the page tried to read the
        # list again on the frame, and could not.
        async with asyncio.timeout(20):
            await envelope_held.wait()
        assert [f.get("seq") for f in held if f["type"] == "message"] == [cancelled.seq]
        assert lists
    finally:
        await nurse.close()
        await context.close()


async def test_the_photos_of_a_request_whose_call_fails_are_withdrawn(
    app_page, web_server, tmp_path
):
    nurse = await app_page(NURSE)
    doctor, _ = await te_client(web_server, tmp_path, DOCTOR, "doctor")  # the requis' device
    at_the_call: list[int] = []

    await request_call_unavailable(nurse, at_the_call, NURSE)
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-message")).to_contain_text("indisponible")
        assert at_the_call == [1]  # the photo was on the server when the call was made
        assert await uploads_of(NURSE) == 0
        # What was typed stays, to send again.
        await expect(nurse.get_by_label("Motif")).to_have_value("Plaie qui s'aggrave")
    finally:
        await doctor.close()


async def test_the_request_room_names_the_organisation_s_archiver(
    app_page, web_server, server_env, tmp_path
):
    """The requérant names their organisation on the form: the room's verified state
    names its archiver device, which the SDK proves in the log and which reads the
    request."""
    token_file = tmp_path / "archiver.json"
    create_archiver(server_env, token_file)
    archiver = await archiver_client(web_server, tmp_path, token_file)
    nurse = await app_page(NURSE)
    doctor, _ = await te_client(web_server, tmp_path, DOCTOR, "doctor")
    try:
        await open_teleexpertise(nurse)
        await fill_request(nurse)
        await nurse.get_by_label("Le patient a donné son consentement").check()
        await nurse.get_by_label("Organisme qui archive le salon").fill("org:0000000000")
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-message")).to_contain_text("no_archiver")
        assert not doctor.rooms
        await nurse.get_by_label("Organisme qui archive le salon").fill(ORGANISATION)
        await nurse.get_by_role("button", name="Envoyer la demande").click()
        await expect(nurse.locator("#te-state")).to_have_text("demandée")

        async with asyncio.timeout(20):
            room = await doctor.wait_for_room(lambda r: r.state.kind == "teleexpertise")
        named = doctor.rooms[room].archiver
        assert named is not None
        assert (named.national_id, named.device) == (ORGANISATION, archiver.device_id)
        proven = await doctor.archiver_of(room)
        assert proven is not None
        assert (proven.structure_id, proven.name) == ("1750000123", NAME)
        await archiver.connect()
        (request,) = await messages_of(archiver, 1)
        assert (request.room, request.sender[0]) == (room, NURSE)
    finally:
        await doctor.close()
        await archiver.close()
