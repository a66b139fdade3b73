"""The browser watches the key-transparency log as the Python SDK does (docs/web.md,
docs/protocol.md §10.4 and §10.6.4): the operator, played by this test with the log key
and Playwright routes that rewrite the server's answers, shows the browser a forked
head, hides a device it added from the lookups, and gives a contact a forked view of
the log; the browser finds each. Its key-agreement key rotates weekly, and shares keep
arriving across the rotation."""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Page, Response, Route, expect

from chat.models import Device, Envelope, Room
from e2ee.encoding import b64u
from e2ee.keys import raw_public
from e2ee.tree_heads import cosign, parse_tree_head, sign_tree_head
from keylog.keys import log_public, log_signing_key
from keyring.models import PublishedKexKey
from tests.e2e.sdk import new_client, next_message
from tests.e2e.test_attacks import rogue_device
from tests.web.conftest import PASSPHRASE, log_in, new_device, screenshot
from tests.web.test_chat import NURSE, PHARMACIST, bubble, send
from tests.web.test_dishonest_server import create_care_team
from tests.web.vault_pages import READ_VAULT, until_true

pytestmark = pytest.mark.e2e
DAY_MS = 24 * 3600 * 1000


def forged_head(value: Any) -> dict[str, Any]:
    """A head of the same size and time as ``value``, over another tree, signed with the
    log key: what an operator shows one device to split its view from the others'."""
    head = parse_tree_head(value, log_public=log_public())
    forged = sign_tree_head(
        log_key=log_signing_key(), size=head.size, root=os.urandom(32), timestamp=head.timestamp
    )
    return forged.to_json(log_public=log_public())


async def unlock_again(page: Page) -> None:
    """Close and reopen the app: the unlock runs the monitor and the key rotation."""
    await page.reload()
    await unlock(page)


async def unlock(page: Page) -> None:
    await page.get_by_label("Phrase de passe").fill(PASSPHRASE)
    await page.get_by_role("button", name="Déverrouiller").click()
    await page.locator("#room-list").wait_for()


async def open_room_with(page: Page, text: str) -> None:
    await page.locator("#room-list button.room").first.click()
    await expect(bubble(page, text)).to_be_visible()


async def sending_is_blocked(page: Page, pharmacist_room: int) -> None:
    """What the forked view would prove is not used: the browser sends nothing more."""
    stored = await sync_to_async(Envelope.objects.filter(room_id=pharmacist_room).count)()
    await send(page, "message après la bifurcation")
    await expect(bubble(page, "après la bifurcation")).to_have_attribute("data-state", "failed")
    assert await sync_to_async(Envelope.objects.filter(room_id=pharmacist_room).count)() == stored


async def test_a_forked_head_served_to_the_browser_blocks_it(app_page, web_server, tmp_path):
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        nurse = await app_page(NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Ordonnance reçue")
        await open_room_with(nurse, "Ordonnance reçue")

        # From now on the operator answers this browser with another tree of the size
        # it serves everyone else.
        async def fork(route: Route) -> None:
            response = await route.fetch()
            body = await response.json()
            body["tree_head"] = await sync_to_async(forged_head)(body["tree_head"])
            await route.fulfill(response=response, json=body)

        await nurse.context.route("**/api/v1/keys/log", fork)
        await unlock_again(nurse)
        alert = nurse.locator('.alert[data-kind="log_fork"]')
        await expect(alert).to_contain_text("Le journal des clés est incohérent")
        # Blocking: it cannot be dismissed, and it outlives the server's honest answers.
        await expect(alert.get_by_role("button", name="Ignorer")).to_have_count(0)
        await screenshot(nurse, "log-fork-alert-desktop")
        await nurse.context.unroute("**/api/v1/keys/log")
        await unlock_again(nurse)
        await expect(alert).to_be_visible()
        await nurse.locator("#room-list button.room").first.click()
        await sending_is_blocked(nurse, room)
    finally:
        await pharmacist.close()


async def test_a_device_hidden_from_lookups_is_found_by_the_monitor(app_page, web_server):
    nurse = await app_page(NURSE)
    rogue, _ = await sync_to_async(rogue_device)(NURSE)
    hidden: list[int] = []

    # The operator leaves its device out of every lookup of the nurse (the newest
    # entries of a label are what a lookup cannot prove complete); only the monitor,
    # which reads every entry of the log, can see it.
    async def hide(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        entries = body["entries"]
        kept = [e for e in entries if json.loads(e["entry"])["entry"].get("device") != rogue]
        hidden.append(len(entries) - len(kept))
        body["entries"] = kept
        await route.fulfill(response=response, json=body)

    await nurse.context.route(f"**/api/v1/keys/practitioners/{NURSE}", hide)
    await unlock_again(nurse)
    alert = nurse.locator('.alert[data-kind="unknown_device"]')
    await expect(alert).to_contain_text(f"#{rogue}")
    assert all(count == 1 for count in hidden)  # every lookup answered left it out
    # The audited head is kept: the next pass downloads only what is new, and the
    # device is reported once, not at every pass.
    await unlock_again(nurse)
    await expect(nurse.locator('.alert[data-kind="unknown_device"]')).to_have_count(1)


async def test_a_contact_showing_a_forked_head_alerts_and_blocks(app_page, web_server, tmp_path):
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        nurse = await app_page(NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Ordonnance reçue")
        await open_room_with(nurse, "Ordonnance reçue")
        await expect(nurse.locator('.alert[data-kind="log_fork"]')).to_have_count(0)

        # The operator showed the pharmacist's device another tree: its envelopes carry
        # that head (gossip), signed inside by the pharmacist's device.
        view = pharmacist.directory.log
        assert view.largest is not None
        view.data["largest"] = {
            "tree_head": await sync_to_async(forged_head)(view.data["largest"]["tree_head"]),
            "cosignatures": [],
        }
        await pharmacist.send_text(room, "Le patient passe demain")
        alert = nurse.locator('.alert[data-kind="log_fork"]')
        await expect(alert).to_contain_text("Le journal des clés est incohérent")
        await screenshot(nurse, "log-fork-gossip-desktop")
        await sending_is_blocked(nurse, room)
    finally:
        await pharmacist.close()


def cosigned(witness: Ed25519PrivateKey, value: Any) -> dict[str, Any]:
    head = parse_tree_head(value, log_public=log_public())
    return cosign(witness_key=witness, log_public=log_public(), head=head)


async def test_heads_need_the_cosignature_of_the_witness_the_browser_pinned(
    web_server, browser, tmp_path
):
    """The log names a witness when the browser first meets it (here a witness this test
    runs, whose cosignatures it adds to the log's answers); from then on a head it has
    not cosigned is refused, and nothing is looked up with it."""
    witness = Ed25519PrivateKey.generate()
    cosigning = {"on": True}

    async def witnessed(route: Route) -> None:
        response = await route.fetch()
        if response.status != 200:
            await route.fulfill(response=response)
            return
        body = await response.json()
        if route.request.url.endswith("/api/v1/keys/log"):
            body["witnesses"] = [b64u(raw_public(witness))]
        if cosigning["on"]:
            for holder in (body, body.get("latest") or {}):
                if "tree_head" in holder:
                    signature = await sync_to_async(cosigned)(witness, holder["tree_head"])
                    holder["cosignatures"] = [*holder.get("cosignatures", []), signature]
        await route.fulfill(response=response, json=body)

    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    context = await new_device(browser)
    try:
        await context.route(re.compile(r"/api/v1/keys/"), witnessed)
        nurse = await context.new_page()
        await log_in(nurse, web_server.http_url, NURSE)
        await create_care_team(nurse, "Équipe cosignée", [PHARMACIST])
        await nurse.locator("#composer").wait_for()
        assert await sync_to_async(Room.objects.count)() == 1

        # The witness stops cosigning (it refused a head): the browser uses no lookup.
        cosigning["on"] = False
        await nurse.get_by_role("button", name="Retour").click()
        await create_care_team(nurse, "Équipe sans témoin", [PHARMACIST])
        await expect(nurse.locator(".error")).to_contain_text("witnesses required")
        assert await sync_to_async(Room.objects.count)() == 1
    finally:
        await context.close()
        await pharmacist.close()


# The private key-agreement keys' serials, from the vault as stored.
VAULT_KEX = (
    f"async (passphrase) => (await ({READ_VAULT})(passphrase)).kex.map((k) => k.serial).sort()"
)


async def wait_vault_kex(page: Page, serials: list[int]) -> None:
    """Until the vault, read as the app reads it, holds the private key-agreement keys
    ``serials`` and no other."""
    expected = json.dumps(serials, separators=(",", ":"))  # as JSON.stringify writes it
    await until_true(
        page,
        f"async () => JSON.stringify(await ({VAULT_KEX})({json.dumps(PASSPHRASE)}))"
        f" === {json.dumps(expected)}",
    )


def publishing_kex(response: Response) -> bool:
    return response.url.endswith("/api/v1/devices/kex") and response.request.method == "PUT"


async def test_the_key_agreement_key_rotates_weekly_and_shares_still_arrive(
    app_page, web_server, tmp_path
):
    nurse = await app_page(NURSE)
    device = await sync_to_async(lambda: Device.objects.get(practitioner_id=NURSE).pk)()
    serials_used: list[int] = []

    # The serial of the key each share reaching the browser is sealed to.
    async def shares(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        for item in body["messages"]:
            if item["kind"] != "notice":
                raw = base64.urlsafe_b64decode(item["body"].rstrip("=") + "==")
                serials_used.append(json.loads(raw)["kex_serial"])
        await route.fulfill(response=response, json=body)

    await nurse.context.route(re.compile(r"/api/v1/devices/messages\?"), shares)
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        # The app is closed when the pharmacist writes: the share, sealed to the
        # current key, waits on the server.
        await nurse.goto("about:blank")
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Sceller avant la rotation")

        # A week and a day pass on the browser's key clock: it rotates when unlocked,
        # before reading what waits for it.
        await nurse.context.add_init_script(f"globalThis.relaisKeyClockOffsetMs = {8 * DAY_MS}")
        async with nurse.expect_response(publishing_kex) as answer:
            await nurse.goto(web_server.http_url + "/")
            await unlock(nurse)
        assert (await answer.value).ok
        current = PublishedKexKey.objects.filter(device_id=device)
        assert await sync_to_async(lambda: current.get().serial)() == 2
        # The share sealed to the old key arrives late: the old key still opens it.
        await open_room_with(nurse, "Sceller avant la rotation")
        assert serials_used == [1]
        await wait_vault_kex(nurse, [1, 2])
        # A new sender key of the pharmacist goes to the new key, and opens too.
        pharmacist.rooms[room].outbound = None  # as after its own weekly rotation
        await pharmacist.send_text(room, "Sceller après la rotation")
        await expect(bubble(nurse, "après la rotation")).to_be_visible()
        assert serials_used[-1] == 2
        # The browser's own sender key rotated with its key: the pharmacist reads it.
        await send(nurse, "Bien reçu")
        assert (await next_message(pharmacist)).text == "Bien reçu"

        # Two days after the rotation, the old private key is wiped from the vault.
        await nurse.context.add_init_script(f"globalThis.relaisKeyClockOffsetMs = {10 * DAY_MS}")
        await unlock_again(nurse)
        await wait_vault_kex(nurse, [2])
        assert await sync_to_async(lambda: current.get().serial)() == 2  # not due again
    finally:
        # A fetch the route still handles when the page closes is not this test's.
        await nurse.context.unroute_all(behavior="ignoreErrors")
        await pharmacist.close()
