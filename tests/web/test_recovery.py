"""A practitioner who lost every device gets their identity and their history back in a
new browser with the recovery code (docs/protocol.md §10.9): the browser opens the
identity backup, checks the identity key against the key-transparency log, certifies
itself, restores the history keys its lost device backed up, and reads the rooms'
history, its own messages included. A wrong code changes nothing on the server; a
backup the server altered or substituted is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Browser, Page, expect

from chat.models import Device, RoomStateEvent, ToDeviceMessage
from e2ee import recovery
from e2ee.keys import raw_private
from keylog.models import LogEntry
from keyring.models import HistoryKey, IdentityBackup, PublishedKexKey
from tests.e2e.sdk import new_client, next_message, open_client
from tests.web.conftest import PASSPHRASE, PHONE, log_in, new_device, screenshot
from tests.web.test_chat import DOCTOR, NURSE, bubble, send
from tests.web.test_dishonest_server import create_care_team

pytestmark = pytest.mark.e2e


async def start_recovery(page: Page, base_url: str, national_id: str) -> None:
    """A new browser logs in for a practitioner who has an identity, and chooses the
    recovery code instead of linking."""
    await page.goto(base_url + "/")
    await page.get_by_label("Numéro RPPS").fill(national_id)
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.get_by_role("button", name="Se connecter (développement)").click()
    await page.locator("#link-short-code").wait_for()
    await page.get_by_role("button", name="Récupérer avec le code de récupération").click()


async def type_code(page: Page, code: str, *, label: str = "Code de récupération") -> None:
    await page.get_by_label(label).fill(code)
    await page.locator("#recover-submit").click()


async def first_browser_code(browser: Browser, base_url: str, national_id: str) -> str:
    """The practitioner's first browser shows the recovery code once, then is lost."""
    context = await new_device(browser)
    code = await log_in(await context.new_page(), base_url, national_id)
    await context.close()
    return code


async def backed_up(national_id: str, count: int) -> None:
    """Until the server holds ``count`` history keys of the practitioner (the browser
    uploads each new one as it makes or receives it)."""

    def held() -> int:
        return HistoryKey.objects.filter(practitioner_id=national_id).count()

    async with asyncio.timeout(20):
        while await sync_to_async(held)() < count:  # noqa: ASYNC110 (the server's database)
            await asyncio.sleep(0.1)


def server_state(national_id: str) -> dict[str, Any]:
    """What a recovery would write: log entries, certified devices and their keys, the
    backups, room-state events, to-device messages from the practitioner's devices."""
    return {
        "log": LogEntry.objects.count(),
        "certified": sorted(
            Device.objects.filter(practitioner_id=national_id)
            .exclude(public_keys={})
            .values_list("pk", flat=True)
        ),
        "kex": PublishedKexKey.objects.count(),
        "backup": bytes(IdentityBackup.objects.get(practitioner_id=national_id).sealed),
        "history": HistoryKey.objects.count(),
        "events": RoomStateEvent.objects.count(),
        "sent": ToDeviceMessage.objects.filter(sender_practitioner_id=national_id).count(),
    }


async def test_the_recovery_code_restores_a_browser_that_reads_the_history(
    web_server, browser, tmp_path
):
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    lost = await new_device(browser)
    try:
        page = await lost.new_page()
        code = await log_in(page, web_server.http_url, NURSE)
        await create_care_team(page, "Suivi de M. R.", [DOCTOR])
        await page.locator("#composer").wait_for()
        await send(page, "Écrit par le navigateur perdu")
        assert (await asyncio.wait_for(next_message(doctor), 20)).text == (
            "Écrit par le navigateur perdu"
        )
        room = next(iter(doctor.rooms))
        await doctor.send_text(room, "Réponse du médecin avant la perte")
        await expect(bubble(page, "Réponse du médecin")).to_be_visible()
        await backed_up(NURSE, 2)  # its own sender key and the doctor's
        before = (await doctor.safety_number(NURSE)).digits
        await lost.close()  # every device of the nurse is lost

        context = await new_device(browser, viewport=PHONE)
        again = await context.new_page()
        await start_recovery(again, web_server.http_url, NURSE)
        await screenshot(again, "recover-phone")
        await type_code(again, code.lower().replace("-", " "))  # as typed from paper
        await again.locator("#room-list button.room").first.click()
        # Its own message from the lost browser, and the doctor's: both from the backup.
        await expect(
            again.locator("#messages li.own", has_text="Écrit par le navigateur perdu")
        ).to_be_visible()
        await expect(bubble(again, "Réponse du médecin avant la perte")).to_be_visible()
        await screenshot(again, "recovered-history-phone")

        await doctor.send_text(room, "Après la récupération")
        await expect(bubble(again, "Après la récupération")).to_be_visible()
        await send(again, "Depuis le navigateur récupéré")
        received = await asyncio.wait_for(next_message(doctor), 20)
        assert (received.text, received.sender[0]) == ("Depuis le navigateur récupéré", NURSE)
        # The same identity key: the doctor's safety number with the nurse is unchanged.
        assert (await doctor.safety_number(NURSE)).digits == before
        await context.close()
    finally:
        await doctor.close()


async def test_the_python_sdk_recovers_from_what_a_browser_backed_up(web_server, browser, tmp_path):
    """The browser's backup is the SDK's: the identity backup and the history keys a
    browser sealed are opened by the SDK's recovery, which reads the history."""
    doctor = await new_client(web_server.http_url, tmp_path, DOCTOR, "doctor")
    lost = await new_device(browser)
    try:
        page = await lost.new_page()
        code = await log_in(page, web_server.http_url, NURSE)
        await create_care_team(page, "Suivi de M. R.", [DOCTOR])
        await page.locator("#composer").wait_for()
        await send(page, "Du navigateur perdu")
        assert (await asyncio.wait_for(next_message(doctor), 20)).text == "Du navigateur perdu"
        await doctor.send_text(next(iter(doctor.rooms)), "Du médecin")
        await expect(bubble(page, "Du médecin")).to_be_visible()
        await backed_up(NURSE, 2)
        await lost.close()

        restored = await open_client(
            web_server.http_url, tmp_path, NURSE, "nurse-new", recovery_code=code
        )
        try:
            texts: set[str] = set()
            async with asyncio.timeout(20):
                while len(texts) < 2:
                    texts.add((await next_message(restored)).text)
            assert texts == {"Du navigateur perdu", "Du médecin"}
        finally:
            await restored.close()
    finally:
        await doctor.close()


async def test_a_wrong_code_is_a_clear_error_and_changes_nothing_on_the_server(web_server, browser):
    code = await first_browser_code(browser, web_server.http_url, NURSE)
    context = await new_device(browser, viewport=PHONE)
    page = await context.new_page()
    await start_recovery(page, web_server.http_url, NURSE)
    before = await sync_to_async(server_state)(NURSE)
    error = page.locator("#recover-error")

    await type_code(page, str(recovery.RecoveryCode.generate()))
    await expect(error).to_contain_text("Code de récupération incorrect")
    await expect(error).to_contain_text("Rien n")
    await expect(error).to_contain_text("a été modifié")
    await screenshot(page, "recover-wrong-code-phone")
    await type_code(page, "pas un code")
    await expect(error).to_contain_text("pas un code de récupération : il a 32 lettres")
    await page.get_by_label("Langue").select_option("en")
    await type_code(page, str(recovery.RecoveryCode.generate()), label="Recovery code")
    await expect(error).to_contain_text("Wrong recovery code")
    assert await sync_to_async(server_state)(NURSE) == before

    # The right code still works on the same screen.
    await type_code(page, code, label="Recovery code")
    await page.locator("#room-list").wait_for()
    assert await sync_to_async(server_state)(NURSE) != before
    await context.close()


def tamper(national_id: str, code_text: str, how: str) -> None:
    """The server alters the identity backup, or puts one of its own making in its place
    (sealed to the recovery key's public half, as a server that learned it could)."""
    backup = IdentityBackup.objects.get(practitioner_id=national_id)
    if how == "altered":
        sealed = bytearray(bytes(backup.sealed))
        sealed[-1] ^= 1
        backup.sealed = bytes(sealed)
    else:
        owner = national_id if how == "rogue_identity" else DOCTOR
        backup.sealed = recovery.seal(
            recovery.RecoveryCode.parse(code_text).public_key(),
            recovery.identity_backup(
                national_id=owner,
                identity_private=raw_private(Ed25519PrivateKey.generate()),
                account_secret=bytes(32),
            ),
        )
    backup.save()


@pytest.mark.parametrize(
    ("how", "refusal"),
    [
        ("altered", "sauvegarde endommagée"),
        ("rogue_identity", "pas celle que le journal de transparence publie"),
        ("another_practitioner", "Sécurité : cette sauvegarde n"),
    ],
)
async def test_a_backup_the_server_altered_or_substituted_is_refused(
    web_server, browser, how, refusal
):
    code = await first_browser_code(browser, web_server.http_url, NURSE)
    await sync_to_async(tamper)(NURSE, code, how)
    context = await new_device(browser)
    page = await context.new_page()
    await start_recovery(page, web_server.http_url, NURSE)
    before = await sync_to_async(server_state)(NURSE)
    await type_code(page, code)
    await expect(page.locator("#recover-error")).to_contain_text(refusal)
    assert await sync_to_async(server_state)(NURSE) == before
    await context.close()
