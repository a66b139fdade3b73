"""A browser that loses its network sends what was typed meanwhile once it is back, and
catches up on what it missed: nothing lost, nothing twice (docs/protocol.md §5)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.web.test_chat import DOCTOR, NURSE, bubble, open_direct_room, send

pytestmark = pytest.mark.e2e


async def test_a_cut_network_loses_and_duplicates_nothing(app_page):
    doctor = await app_page(DOCTOR)
    nurse = await app_page(NURSE)
    await open_direct_room(doctor, "Martin", NURSE)
    await send(doctor, "Premier message")
    await nurse.locator("#room-list button.room").first.click()
    await expect(bubble(nurse, "Premier message")).to_be_visible()

    await nurse.context.set_offline(True)
    await expect(nurse.locator("#connection")).to_have_attribute("data-state", "offline")
    # Typed offline: shown at once as pending, not sent.
    await send(nurse, "Écrit hors ligne 1")
    await send(nurse, "Écrit hors ligne 2")
    for text in ["Écrit hors ligne 1", "Écrit hors ligne 2"]:
        await expect(bubble(nurse, text)).to_have_attribute("data-state", "pending")
    # Meanwhile the doctor writes three messages the nurse cannot receive live.
    for number in (1, 2, 3):
        await send(doctor, f"Pendant la coupure {number}")
    for number in (1, 2, 3):
        await expect(bubble(doctor, f"Pendant la coupure {number}")).to_have_attribute(
            "data-state", "sent"
        )
    assert await bubble(nurse, "Pendant la coupure").count() == 0

    await nurse.context.set_offline(False)
    await expect(nurse.locator("#connection")).to_have_attribute("data-state", "online")
    for number in (1, 2, 3):
        await expect(bubble(nurse, f"Pendant la coupure {number}")).to_be_visible()
    for text in ["Écrit hors ligne 1", "Écrit hors ligne 2"]:
        await expect(bubble(doctor, text)).to_be_visible()
        await expect(bubble(nurse, text)).not_to_have_attribute("data-state", "pending")
    # Each message exactly once on each side, in one order.
    expected = 1 + 3 + 2
    await expect(doctor.locator("#messages li")).to_have_count(expected)
    await expect(nurse.locator("#messages li")).to_have_count(expected)
    seqs = await nurse.locator("#messages li").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert sorted(seqs) == list(range(1, expected + 1))
