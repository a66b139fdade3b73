"""The browser's attachment code (web/src/attachments/) reproduces the published vectors
(tests/vectors/attachments.json, docs/protocol.md §11.3) in headless Chromium, as the
Python SDK does (tests/attachments/test_vectors.py): every blob byte for byte from the
same keys and salts, every alteration refused, the padding rule, the descriptors'
canonical bytes (and their compact form, as the SDK encodes it) and every malformed
descriptor refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.attachments.descriptor import compact, descriptor_from_json
from tests.web.attachment_pages import open_attachments_page

pytestmark = pytest.mark.e2e
VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "attachments.json").read_text()
)


async def test_every_attachment_vector_passes_in_the_browser(web_build, browser):
    context, page = await open_attachments_page(browser)
    # The compact form téléexpertise events carry (protocol §12.2), as the SDK encodes it.
    compact_forms = {
        name: compact(descriptor_from_json(case["canonical_json"])).to_json().decode()
        for name, case in VECTORS["descriptors"].items()
    }
    results = await page.evaluate(
        "([data, compact]) => globalThis.relaisAttachmentVectors.run(data, compact)",
        [VECTORS, compact_forms],
    )
    await context.close()

    assert [f"{r['name']}: {r.get('error')}" for r in results if not r["ok"]] == []
    names = {r["name"] for r in results}
    expected = (
        len(VECTORS["streams"])
        + len(VECTORS["tampered"])
        + 1  # the padding table
        + len(VECTORS["padded_blobs"])
        + len(VECTORS["bad_padding"])
        + 2 * len(VECTORS["descriptors"])  # each in full, then compact
        + len(VECTORS["bad_descriptors"])
    )
    assert len(names) == len(results) == expected
