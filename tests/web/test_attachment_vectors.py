"""The browser's attachment code (web/src/attachments/) reproduces the published vectors
(tests/vectors/attachments.json, docs/protocol.md §11.3) in headless Chromium, as the
Python SDK does (tests/attachments/test_vectors.py): every blob byte for byte from the
same keys and salts, every alteration refused, the padding rule, the descriptors'
canonical bytes and every malformed descriptor refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.web.attachment_pages import open_attachments_page

pytestmark = pytest.mark.e2e
VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "attachments.json").read_text()
)


async def test_every_attachment_vector_passes_in_the_browser(web_build, browser):
    context, page = await open_attachments_page(browser)
    results = await page.evaluate("(data) => globalThis.relaisAttachmentVectors.run(data)", VECTORS)
    await context.close()

    assert [f"{r['name']}: {r.get('error')}" for r in results if not r["ok"]] == []
    names = {r["name"] for r in results}
    expected = (
        len(VECTORS["streams"])
        + len(VECTORS["tampered"])
        + 1  # the padding table
        + len(VECTORS["padded_blobs"])
        + len(VECTORS["bad_padding"])
        + len(VECTORS["descriptors"])
        + len(VECTORS["bad_descriptors"])
    )
    assert len(names) == len(results) == expected
