"""Photos and files in the browser (web/src/attachments/, web/src/ui/attachments.ts)
against a real server process, with the Python SDK on the other side.

The browser's screen parts run on a test page of the server's origin
(tests/web/attachment_pages.py), as the browser device of the nurse: the photo button
(picked with Playwright's ``set_input_files``), the preview, the upload and the progress
bar, and received attachments. The end-to-end encrypted message that carries the
descriptor is sent by the nurse's SDK client on the same device (same token), with the
message id the page chose: the conversation view's sending is not the subject here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from PIL import Image
from playwright.async_api import Page

from attachments.models import Attachment
from client.attachments.descriptor import descriptor_from_dict
from client.attachments.padding import padded_size
from client.attachments.stream import ciphertext_size
from client.session import RelaisClient
from tests.attachments.conftest import SERVER_LIMITS, AttachmentServer
from tests.attachments.photos import SECRETS, phone_jpeg, red_corner
from tests.attachments.test_images import assert_no_metadata, png_bomb
from tests.e2e.sdk import new_client, next_message, token_client
from tests.web.attachment_pages import open_attachments_page
from tests.web.conftest import PHONE, screenshot

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHARMACIST = "810003456786", "810001987659", "810002765435"


class Device:
    """One device of a practitioner: its SDK client and its token, which the browser
    page of that device uses for the REST API."""

    def __init__(self, client: RelaisClient, token: str) -> None:
        self.client = client
        self.token = token


@pytest.fixture
def media_server(
    server_env: dict[str, str], tmp_path: Path, web_build: None
) -> Iterator[AttachmentServer]:
    """A real server process with its own blob store (3 MiB files, 256 KiB parts)."""
    env = {**server_env, **SERVER_LIMITS, "RELAIS_ATTACHMENT_ROOT": str(tmp_path / "store")}
    server = AttachmentServer(env, tmp_path)
    server.start()
    yield server
    server.stop_all()


@pytest.fixture
async def devices(
    media_server,
    practitioners,
    device_token,
    tmp_path,
) -> AsyncIterator[Callable[[str, str], Awaitable[Device]]]:
    opened: list[RelaisClient] = []

    async def open_device(who: str, name: str) -> Device:
        practitioner = practitioners[who]
        device, token = await database_sync_to_async(device_token)(practitioner, name)
        client = await token_client(
            media_server.current.http_url,
            tmp_path,
            national_id=practitioner.national_id,
            name=f"{who}-{name}",
            device=device,
            token=token,
        )
        opened.append(client)
        return Device(client, token)

    yield open_device
    for client in opened:
        await client.close()


def _attachment_rows() -> list[str]:
    return list(Attachment.objects.values_list("state", flat=True))


async def attachment_rows() -> list[str]:
    rows: list[str] = await database_sync_to_async(_attachment_rows)()
    return rows


async def direct_room(nurse: RelaisClient, doctor: RelaisClient) -> int:
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    return room


async def page_of(browser: Any, server: Any, *, phone: bool = False) -> tuple[Any, Page]:
    context, page = await open_attachments_page(browser, server.current.http_url)
    if phone:
        await page.set_viewport_size(PHONE)
    return context, page


async def test_a_camera_photo_picked_in_the_browser_arrives_stripped_upright_with_its_hash(
    media_server,
    devices,
    browser,
    web_build,
    tmp_path,
):
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    context, page = await page_of(browser, media_server, phone=True)
    await page.evaluate(
        "([token, room]) => relaisAttachmentsUi.mountComposer(token, room)", [nurse.token, room]
    )
    original = phone_jpeg(3000, 2000, orientation=6, grain=True)  # GPS and more in it
    assert red_corner(Image.open(io.BytesIO(original))) == "top-left"  # as stored, sideways

    await page.get_by_label("Prendre ou choisir une photo").set_input_files(
        {"name": "IMG_2041.JPG", "mimeType": "image/jpeg", "buffer": original}
    )
    preview = page.locator("img[data-preview=photo]")
    await preview.wait_for()
    assert await page.get_by_text("position GPS et autres métadonnées retirées").is_visible()
    await screenshot(page, "photo-preview-phone")
    previewed = await page.evaluate(
        "() => relaisAttachmentsUi.imageSha256('img[data-preview=photo]')"
    )
    await page.get_by_label("Légende (facultative)").fill("Plaie talon gauche J+3")
    await page.get_by_role("button", name="Envoyer").click()
    await page.wait_for_function("() => relaisAttachmentsUi.sent.length === 1")
    sent = await page.evaluate("() => relaisAttachmentsUi.sent[0]")
    await context.close()

    # The conversation's part: the encrypted message with the page's message id.
    await nurse.client.send(room, sent["content"], message_id=sent["messageId"])
    message = await next_message(doctor.client)
    assert message.text == "Plaie talon gauche J+3"
    descriptor = message.attachment  # parsed and checked by the SDK, thumbnail included
    assert descriptor is not None
    assert descriptor == descriptor_from_dict(sent["content"]["attachment"])
    assert (descriptor.name, descriptor.mime) == ("IMG_2041.JPG", "image/jpeg")
    assert descriptor.ciphertext_size == ciphertext_size(padded_size(descriptor.size))

    photo = (
        await doctor.client.download_attachment(descriptor, tmp_path / "received.jpg")
    ).read_bytes()
    assert hashlib.sha256(photo).hexdigest() == previewed  # what the nurse saw, byte for byte
    image = Image.open(io.BytesIO(photo))
    assert red_corner(image) == "top-right"  # upright: EXIF orientation 6 applied
    assert image.size == (descriptor.width, descriptor.height) == (1365, 2048)
    assert_no_metadata(photo)  # no EXIF (so no GPS), XMP, IPTC, comment or ICC profile
    thumbnail = await doctor.client.fetch_thumbnail(descriptor)
    assert_no_metadata(thumbnail)
    assert max(Image.open(io.BytesIO(thumbnail)).size) == 320
    assert red_corner(Image.open(io.BytesIO(thumbnail))) == "top-right"

    # The server holds one blob, ciphertext only.
    stored = [p for p in (media_server.store / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [descriptor.blob]
    blob = stored[0].read_bytes()
    assert hashlib.sha256(blob).hexdigest() == descriptor.sha256
    assert not [secret for secret in SECRETS if secret in blob]
    assert b"Plaie talon" not in blob


async def test_a_photo_sent_by_the_sdk_shows_in_the_browser_and_opens_full_screen(
    media_server,
    devices,
    browser,
    web_build,
    tmp_path,
):
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    sent = await doctor.client.send_photo(
        room, phone_jpeg(1600, 1200, orientation=8), name="ulcere.jpg"
    )
    message = await next_message(nurse.client)
    assert message.attachment == sent.descriptor
    expected = hashlib.sha256(
        (
            await doctor.client.download_attachment(sent.descriptor, tmp_path / "sent.jpg")
        ).read_bytes()
    ).hexdigest()

    context, page = await page_of(browser, media_server)
    await page.evaluate(
        "([token, content]) => relaisAttachmentsUi.mountView(token, content)",
        [nurse.token, message.content],
    )
    opener = page.get_by_role("button", name="Ouvrir la photo ulcere.jpg en plein écran")
    thumbnail = opener.locator("img")
    await page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=await thumbnail.element_handle()
    )
    assert (await thumbnail.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")) == [
        sent.descriptor.thumbnail.width,
        sent.descriptor.thumbnail.height,
    ]
    await opener.click()
    full = page.locator("dialog.attachment-viewer img[data-full=photo]")
    await full.wait_for()
    await page.wait_for_function(
        "() => document.querySelector('img[data-full=photo]').naturalWidth > 0"
    )
    assert await full.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [
        sent.descriptor.width,
        sent.descriptor.height,
    ]
    shown = await page.evaluate("() => relaisAttachmentsUi.imageSha256('img[data-full=photo]')")
    assert shown == expected  # the bytes the browser decrypted are the SDK's photo
    await screenshot(page, "photo-full-screen-desktop")
    await page.keyboard.press("Escape")
    await full.wait_for(state="detached")
    await context.close()


async def test_a_tampered_blob_is_refused_in_the_browser(
    media_server,
    devices,
    browser,
    web_build,
):
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    report = bytes(range(256)) * 400  # a file (not an image), several chunks
    sent = await doctor.client.send_file(room, report, name="bilan.bin")
    message = await next_message(nurse.client)
    descriptor = message.content["attachment"]

    context, page = await page_of(browser, media_server)

    # The operator flips one bit of the blob it serves.
    flipped: dict[str, bytes] = {}

    async def tamper(route: Any) -> None:
        response = await route.fetch()
        body = bytearray(await response.body())
        body[30_000] ^= 1
        flipped["blob"] = bytes(body)
        await route.fulfill(response=response, body=bytes(body))

    await context.route(f"**/api/v1/attachments/{sent.descriptor.blob}", tamper)
    await page.evaluate(
        "([token, content]) => relaisAttachmentsUi.mountView(token, content)",
        [nurse.token, message.content],
    )
    await page.get_by_role("button", name="Télécharger bilan.bin").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "(hash_mismatch)" in await alert.inner_text()
    assert "empreinte" in await alert.inner_text()  # in French first

    # Even with a descriptor announcing the tampered blob's hash, no chunk authenticates.
    forged = {**descriptor, "sha256": hashlib.sha256(flipped["blob"]).hexdigest()}
    code = await page.evaluate(
        """async ([token, forged]) => {
             const m = relaisAttachments;
             try { await m.fetchAttachment(new m.AttachmentApi(token), m.checkDescriptor(forged)); }
             catch (error) { return [error.code, error.messageFr]; }
             return ["accepted", ""]; }""",
        [nurse.token, forged],
    )
    assert code[0] == "decrypt_failed"
    assert "altérée" in code[1]
    # Served as stored, the same file opens.
    await context.unroute(f"**/api/v1/attachments/{sent.descriptor.blob}")
    digest = await page.evaluate(
        """async ([token, descriptor]) => {
             const m = relaisAttachments;
             const data = await m.fetchAttachment(
               new m.AttachmentApi(token), m.checkDescriptor(descriptor));
             const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
             return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""); }""",
        [nurse.token, descriptor],
    )
    assert digest == hashlib.sha256(report).hexdigest()
    await context.close()


async def test_a_file_uploaded_by_the_browser_resumes_after_a_lost_part_with_progress_and_the_sdk_opens_it(  # noqa: E501
    media_server,
    devices,
    browser,
    web_build,
    tmp_path,
):
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    context, page = await page_of(browser, media_server)
    # The network drops the first attempt at part 2 (the server's parts are 256 KiB).
    dropped: list[str] = []

    async def drop_once(route: Any) -> None:
        if not dropped:
            dropped.append(route.request.url)
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await context.route("**/api/v1/attachments/uploads/*/parts/2", drop_once)
    result = await page.evaluate(
        """async ([token, room]) => {
             const m = relaisAttachments;
             const file = new Uint8Array(1_200_000);
             for (let i = 0; i < file.length; i++) file[i] = (i * 7) % 256;
             const messageId = crypto.randomUUID();
             const events = [];
             const descriptor = await m.sendDocument(
               new m.AttachmentApi(token, { retryDelaysMs: [100, 200] }),
               new Blob([file], { type: "application/octet-stream" }),
               { room, messageId },
               { name: "dossier.bin", onProgress: (done, total) => events.push([done, total]) });
             const back = [];
             const again = await m.fetchAttachment(
               new m.AttachmentApi(token), descriptor, (done, total) => back.push([done, total]));
             const same = again.every((b, i) => b === file[i]);
             return { descriptor, messageId, events, back, same };
           }""",
        [nurse.token, room],
    )
    await context.close()
    assert len(dropped) == 1  # the part was lost once, then sent again
    descriptor = result["descriptor"]
    total = descriptor["ciphertext_size"]
    for events in (result["events"], result["back"]):
        done = [d for d, _ in events]
        assert done == sorted(done)  # progress only moves forward
        assert events[-1] == [total, total]
        assert len(set(done)) > 1, events  # shown from the start, not once at the end
    parts = -(-total // (256 * 1024))
    assert len({d for d, _ in result["events"]}) > parts  # at least each part, and the start
    assert result["same"]

    await nurse.client.send(
        room, {"type": "attachment", "attachment": descriptor}, message_id=result["messageId"]
    )
    message = await next_message(doctor.client)
    assert message.attachment is not None
    received = (
        await doctor.client.download_attachment(message.attachment, tmp_path / "dossier.bin")
    ).read_bytes()
    assert received == bytes((i * 7) % 256 for i in range(1_200_000))


async def test_heic_bomb_and_too_large_files_are_refused_with_their_code_in_both_languages(
    media_server,
    devices,
    browser,
    web_build,
):
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    context, page = await page_of(browser, media_server)
    await page.evaluate(
        "([token, room]) => relaisAttachmentsUi.mountComposer(token, room)", [nurse.token, room]
    )
    picker = page.get_by_label("Prendre ou choisir une photo")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    await picker.set_input_files(
        {"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": heic}
    )
    alert = page.get_by_role("alert")
    await alert.wait_for()
    text = await alert.inner_text()
    assert "HEIC" in text
    assert "Le plus compatible" in text
    assert "(mime_unsupported)" in text

    await picker.set_input_files(
        {"name": "bomb.png", "mimeType": "image/png", "buffer": png_bomb(10_000, 8_000)}
    )
    await page.get_by_text("(image_too_many_pixels)").wait_for()

    # Over the server's per-file limit (3 MiB here): its code and its French message.
    await page.get_by_label("Joindre un fichier").set_input_files(
        {
            "name": "scanner.bin",
            "mimeType": "application/octet-stream",
            "buffer": os.urandom(4 * 1024 * 1024),
        }
    )
    await page.locator("[data-preview=file]").wait_for()
    await page.locator("button[data-attach=send]").click()
    await page.get_by_text("(attachment_too_large)").wait_for()
    assert not await attachment_rows()  # nothing stored, nothing left uploading

    # The HEIC refusal in English, for a user who chose English.
    english = await page.evaluate(
        """async () => {
             const m = relaisAttachments;
             try { await m.processPhoto(new Blob([new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112,
               104, 101, 105, 99])], { type: "image/heic" })); }
             catch (error) { return [error.code, error.message]; }
             return ["accepted"]; }"""
    )
    assert english[0] == "mime_unsupported"
    assert "cannot read HEIC/HEIF photos" in english[1]

    # The content decides a picked file's type (a PNG named .jpg is read as a PNG); a
    # type the caller declares must be the content's.
    outcomes = await page.evaluate(
        """async () => {
             const m = relaisAttachments;
             const canvas = new OffscreenCanvas(40, 30);
             canvas.getContext("2d").fillRect(0, 0, 10, 10);
             const png = await canvas.convertToBlob({ type: "image/png" });
             const named = new Blob([png], { type: "image/jpeg" });
             const cleaned = await m.processPhoto(named);
             try { await m.processPhoto(png, {}, "image/jpeg"); }
             catch (error) { return [cleaned.mime, cleaned.width, error.code, error.messageFr]; }
             return [cleaned.mime, cleaned.width, "accepted"]; }"""
    )
    assert outcomes[:3] == ["image/jpeg", 40, "mime_mismatch"]
    assert "ne correspond pas" in outcomes[3]
    await context.close()


async def test_in_the_app_a_camera_photo_reaches_the_sdk_stripped_upright_and_the_reverse(
    app_page, web_server, tmp_path
):
    """The conversation screen of the app itself: the nurse's browser and a pharmacist's
    Python SDK client in a direct room, photos both ways."""
    nurse_page = await app_page(NURSE, viewport=PHONE)
    pharmacist = await new_client(web_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Pouvez-vous m'envoyer la photo de la plaie ?")
        await nurse_page.locator("#room-list button.room").first.click()
        await nurse_page.locator("#messages li", has_text="la photo de la plaie").wait_for()

        await nurse_page.get_by_label("Prendre ou choisir une photo").set_input_files(
            {"name": "IMG_2042.JPG", "mimeType": "image/jpeg", "buffer": phone_jpeg(orientation=6)}
        )
        preview = nurse_page.locator("img[data-preview=photo]")
        await preview.wait_for()
        await nurse_page.wait_for_function(
            "(img) => img.naturalWidth > 0", arg=await preview.element_handle()
        )
        # (The app's Content-Security-Policy keeps pages from fetching blob: URLs, so the
        # bytes the preview shows are compared on the test page, in the first test.)
        assert await preview.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [
            900,
            1200,
        ]
        await screenshot(nurse_page, "conversation-photo-preview-phone")
        await nurse_page.locator("button[data-attach=send]").click()

        message = await next_message(pharmacist)
        descriptor = message.attachment
        assert descriptor is not None
        assert message.sender[0] == NURSE
        photo = (
            await pharmacist.download_attachment(descriptor, tmp_path / "from-browser.jpg")
        ).read_bytes()
        assert_no_metadata(photo)
        image = Image.open(io.BytesIO(photo))
        assert red_corner(image) == "top-right"  # upright
        assert image.size == (descriptor.width, descriptor.height) == (900, 1200)
        # The nurse's own message shows the photo's thumbnail.
        await nurse_page.locator(f'[data-attachment="{descriptor.blob}"] img').wait_for()

        sent = await pharmacist.send_photo(
            room, phone_jpeg(1600, 1200, orientation=8), name="ordonnance.jpg"
        )
        opener = nurse_page.get_by_role(
            "button", name="Ouvrir la photo ordonnance.jpg en plein écran"
        )
        await opener.click()
        full = nurse_page.locator("img[data-full=photo]")
        await full.wait_for()
        await nurse_page.wait_for_function(
            "(img) => img.naturalWidth > 0", arg=await full.element_handle()
        )
        assert await full.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [
            sent.descriptor.width,
            sent.descriptor.height,
        ]
        await screenshot(nurse_page, "conversation-photo-full-screen-phone")
    finally:
        await pharmacist.close()
