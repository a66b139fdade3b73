"""Photos and files measured in headless Chromium against the embedded server
(docs/web.md, "Photos and files", "Measured"): the photo pipeline's time for a 12 MP
phone photo (median of 5), and the throughput of encrypt+upload and download+decrypt
for a 20 MB file. ``python -m bench.web_attachments`` (after ``make web``, which also
builds the attachments test page's bundle)."""

from __future__ import annotations

import asyncio
import base64
import statistics
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from bench.web import NURSE, PASSPHRASE, PHARMACIST, embedded_server
from client.session import RelaisClient
from client.store import KeyStore
from tests.attachments.photos import phone_jpeg
from tests.web.attachment_pages import open_attachments_page
from tests.web.build import CHROMIUM, TEST_BUNDLES

MB = 1_000_000

PHOTO = """async (b64) => {
  const m = relaisAttachments;
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new Blob([bytes], { type: "image/jpeg" });
  const times = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    await m.processPhoto(file);
    times.push(performance.now() - start);
  }
  return times; }"""

FILE = """async ([token, room, size]) => {
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
  return [up, encrypt, down, back.length === size]; }"""


async def measure(directory: Path) -> None:
    server = embedded_server(directory, {"RELAIS_ATTACHMENT_ROOT": str(directory / "store")})
    try:
        nurse = RelaisClient(
            server=server.http_url, store=KeyStore.open(directory / "n", PASSPHRASE, n=2**10)
        )
        pharmacist = RelaisClient(
            server=server.http_url, store=KeyStore.open(directory / "p", PASSPHRASE, n=2**10)
        )
        await nurse.register_dev(NURSE, device_name="bench")
        await pharmacist.register_dev(PHARMACIST, device_name="bench")
        room = await nurse.create_room(kind="direct", members=[PHARMACIST])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            context, page = await open_attachments_page(browser, server.http_url)
            photo = phone_jpeg(4000, 3000, orientation=6, grain=True)  # 12 MP, as a phone writes it
            times = await page.evaluate(PHOTO, base64.b64encode(photo).decode())
            up, encrypt, down, same = await page.evaluate(FILE, [nurse.api.token, room, 20 * MB])
            await context.close()
            await browser.close()
        await nurse.close()
        await pharmacist.close()
    finally:
        server.stop()
    if not same:
        raise SystemExit("the file downloaded is not the file uploaded")
    print(
        f"photo pipeline, 12 MP JPEG ({len(photo) / MB:.1f} MB): median "
        f"{statistics.median(times):.0f} ms of {[round(t) for t in times]}"
        f"\n20 MB file: encrypt+upload {up:.0f} ms ({20 / (up / 1000):.1f} MB/s; "
        f"encryption alone {encrypt:.0f} ms), "
        f"download+decrypt {down:.0f} ms ({20 / (down / 1000):.1f} MB/s)"
    )


def main() -> None:
    if not (TEST_BUNDLES / "attachments.js").exists():
        raise SystemExit("build the web client first: make web")
    with tempfile.TemporaryDirectory() as temporary:
        asyncio.run(measure(Path(temporary)))


if __name__ == "__main__":
    main()
