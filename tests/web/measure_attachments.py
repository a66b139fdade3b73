"""Measurements of photos and files in headless Chromium, against a real server process
(docs/web.md, "Photos and files"). Not part of `make test` (no timed tests there); run:

    pytest tests/web/measure_attachments.py -s -p no:cacheprovider

It prints the photo pipeline's time for a 12 MP phone photo (median of 5) and the
throughput of encrypt+upload and download+decrypt for a 20 MB file."""

from __future__ import annotations

import base64
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attachments.conftest import AttachmentServer
from tests.attachments.photos import phone_jpeg
from tests.web.attachment_pages import open_attachments_page
from tests.web.test_photos import devices, direct_room  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e
MB = 1_000_000


@pytest.fixture
def media_server(
    server_env: dict[str, str], tmp_path: Path, web_build: None
) -> Iterator[AttachmentServer]:
    """The server with its default limits (100 MiB files, 4 MiB parts)."""
    env = {
        **server_env,
        "RELAIS_SECURE_SSL_REDIRECT": "0",
        "RELAIS_ATTACHMENT_ROOT": str(tmp_path / "store"),
    }
    server = AttachmentServer(env, tmp_path)
    server.start()
    yield server
    server.stop_all()


async def test_measure_photo_pipeline_and_file_throughput(media_server, devices, browser):  # noqa: F811
    nurse = await devices("nurse", "phone")
    doctor = await devices("doctor", "desktop")
    room = await direct_room(nurse.client, doctor.client)
    context, page = await open_attachments_page(browser, media_server.current.http_url)
    photo = phone_jpeg(4000, 3000, orientation=6, grain=True)  # 12 MP, as a phone writes it
    times = await page.evaluate(
        """async (b64) => {
             const m = relaisAttachments;
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const file = new Blob([bytes], { type: "image/jpeg" });
             const times = [];
             for (let i = 0; i < 5; i++) {
               const start = performance.now();
               await m.processPhoto(file);
               times.push(performance.now() - start);
             }
             return times; }""",
        base64.b64encode(photo).decode(),
    )
    rates = await page.evaluate(
        """async ([token, room, size]) => {
             const m = relaisAttachments;
             const file = new Uint8Array(size);
             for (let at = 0; at < size; at += 65536)
               crypto.getRandomValues(file.subarray(at, Math.min(at + 65536, size)));
             const api = new m.AttachmentApi(token);
             let start = performance.now();
             const encrypted = await m.encryptFile(file);
             const encrypt = performance.now() - start;
             const blob = await api.uploadBlob(
               encrypted.blob, encrypted.sha256, { room, messageId: crypto.randomUUID() });
             const up = performance.now() - start;
             const descriptor = m.buildDescriptor({ blob, key: encrypted.key,
               sha256: encrypted.sha256, size, mime: "application/octet-stream" });
             start = performance.now();
             const back = await m.fetchAttachment(api, descriptor);
             const down = performance.now() - start;
             return [up, encrypt, down, back.length === size]; }""",
        [nurse.token, room, 20 * MB],
    )
    await context.close()
    up, encrypt, down, same = rates
    assert same
    print(
        f"\nphoto pipeline, 12 MP JPEG ({len(photo) / MB:.1f} MB): median "
        f"{statistics.median(times):.0f} ms of {[round(t) for t in times]}"
        f"\n20 MB file: encrypt+upload {up:.0f} ms ({20 / (up / 1000):.1f} MB/s; "
        f"encryption alone {encrypt:.0f} ms), "
        f"download+decrypt {down:.0f} ms ({20 / (down / 1000):.1f} MB/s)"
    )
