"""The operator is the adversary (docs/e2ee.md): what the server forges, the browser
refuses as the Python SDK does (tests/e2e/test_attacks.py plays the same attacks)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as sync_to_async
from playwright.async_api import Page, expect

from chat.models import Device, Envelope, Room, ToDeviceMessage
from tests.e2e.sdk import new_client, next_message
from tests.e2e.test_attacks import forge_member, rogue_device, swap_certificate
from tests.e2e.test_dishonest_operator import rogue_identity
from tests.web.conftest import PASSPHRASE, PHONE, screenshot
from tests.web.test_chat import DOCTOR, NURSE, bubble, send

pytestmark = pytest.mark.e2e


async def create_care_team(page: Page, title: str, members: list[str]) -> None:
    await page.get_by_role("button", name="Nouvelle équipe de soins").click()
    await page.locator("#team-title").fill(title)
    await page.get_by_label("Membres", exact=True).fill(", ".join(members))
    await screenshot(page, f"care-team-{page.viewport_size['width'] if page.viewport_size else 0}")
    await page.get_by_role("button", name="Créer").click()


@pytest.mark.parametrize(
    ("how", "refusal"),
    [("signed_by_intruder", "not_authorised"), ("forged_admin_signature", "bad_signature")],
)
async def test_a_member_inserted_by_the_server_is_refused(
    app_page, web_server, tmp_path, how, refusal
):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    try:
        nurse = await app_page(NURSE)
        await create_care_team(nurse, "Équipe Mme D.", [DOCTOR])
        await nurse.locator("#composer").wait_for()
        await expect(nurse.get_by_role("heading", name="Équipe Mme D.")).to_be_visible()
        await send(nurse, "avant")
        assert (await next_message(doctor)).text == "avant"
        room = await sync_to_async(lambda: Room.objects.get().pk)()

        intruder = await sync_to_async(forge_member)(room, how)
        await send(nurse, "le secret que l'intrus voudrait lire")
        await expect(bubble(nurse, "le secret")).to_have_attribute("data-state", "failed")
        await expect(nurse.locator(f'.alert[data-kind="{refusal}"]').first).to_be_visible()
        await screenshot(nurse, f"refused-member-{how}")
        # No key went to the intruding device, and nothing more was stored.
        shares = ToDeviceMessage.objects.filter(recipient_id=intruder)
        assert await sync_to_async(shares.count)() == 0
        assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 1
    finally:
        await doctor.close()


async def test_a_device_key_substituted_by_the_server_is_refused(app_page, web_server, tmp_path):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    try:
        nurse = await app_page(NURSE)
        await sync_to_async(swap_certificate)(DOCTOR)
        await create_care_team(nurse, "Équipe Mme D.", [DOCTOR])
        refusal = nurse.get_by_role("alert")
        await expect(refusal).to_contain_text("refused")
        assert await sync_to_async(Room.objects.count)() == 0
    finally:
        await doctor.close()


async def test_a_device_the_server_adds_for_me_is_an_alert(app_page, web_server):
    nurse = await app_page(NURSE)
    rogue, _ = await sync_to_async(rogue_device)(NURSE)
    # The app audits the practitioner's devices in the log each time it connects.
    await nurse.reload()
    await nurse.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await nurse.get_by_role("button", name="Déverrouiller").click()
    alert = nurse.locator('.alert[data-kind="unknown_device"]')
    await expect(alert).to_contain_text(f"#{rogue}")
    await screenshot(nurse, "own-device-alert-desktop")
    # Not hers: she revokes it from the devices page.
    await nurse.get_by_role("button", name="Appareils").click()
    row = nurse.locator(f'#device-list [data-device="{rogue}"]')
    await screenshot(nurse, "devices-desktop")
    await row.get_by_role("button", name=f"Révoquer #{rogue}").click()
    await expect(nurse.locator(f'#device-list [data-device="{rogue}"]')).to_contain_text("révoqué")
    revoked = Device.objects.filter(pk=rogue, revoked_at__isnull=False)
    assert await sync_to_async(revoked.count)() == 1


async def test_safety_numbers_match_the_sdk_and_a_verified_contact_key_change_blocks(
    app_page, web_server, tmp_path
):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    try:
        nurse = await app_page(NURSE, viewport=PHONE)
        await create_care_team(nurse, "Suivi Mme D.", [DOCTOR])
        await nurse.locator("#composer").wait_for()
        await nurse.get_by_role("button", name="Numéro de sécurité").click()
        digits = await nurse.locator("#safety-digits").text_content()
        # Both implementations compute the same 60 digits from the log's keys.
        assert digits == (await doctor.safety_number(NURSE)).digits
        await expect(nurse.get_by_role("img", name="Code QR")).to_be_visible()
        await screenshot(nurse, "safety-phone")
        await nurse.get_by_role("button", name="Marquer comme vérifié").click()
        await expect(nurse.locator("#verified")).to_be_visible()

        # The operator gives the doctor another identity key in the log.
        await sync_to_async(rogue_identity)(DOCTOR)
        await nurse.get_by_role("button", name="Retour").click()
        await create_care_team(nurse, "Autre équipe", [DOCTOR])
        await expect(nurse.locator(".error")).to_contain_text("changed")
        await nurse.get_by_role("button", name="Retour").click()
        warning = nurse.locator('.alert[data-kind="key_changed"]')
        await expect(warning).to_contain_text("ont changé")
        await screenshot(nurse, "key-changed-phone")
        assert await sync_to_async(Room.objects.count)() == 1
    finally:
        await doctor.close()
