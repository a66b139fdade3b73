"""The browser's implementation of the protocol (web/src/e2ee/) reproduces the published
vectors (tests/vectors/*.json, docs/protocol.md §10), in headless Chromium, as the
Python implementation does (tests/e2ee/test_vectors.py, tests/keylog/test_vectors.py).
The attachment and téléexpertise vectors belong to those modules' own tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
OTHERS = {"attachments", "teleexpertise"}
FILES = sorted(p.stem for p in VECTORS.glob("*.json") if p.stem not in OTHERS)
# Vectors that build on another file's (the room-state chain under the envelopes).
CONTEXT = {"envelope": ["room_state"], "hpke_share": ["room_state"], "history_keys": ["room_state"]}


def load(name: str) -> object:
    return json.loads((VECTORS / f"{name}.json").read_text())


async def test_every_vector_passes_in_the_browser(vectors_page):
    """One browser for every file (starting Chromium costs more than the vectors); a
    failure names each case that failed, with its file."""
    runners = set(await vectors_page.evaluate("() => globalThis.relaisVectors.files"))
    failed, passed = [], {}
    for name in FILES:
        context = {other: load(other) for other in CONTEXT.get(name, [])}
        results = await vectors_page.evaluate(
            "([name, data, context]) => globalThis.relaisVectors.run(name, data, context)",
            [name, load(name), context],
        )
        failed += [f"{name}: {r['name']}: {r.get('error')}" for r in results if not r["ok"]]
        passed[name] = sum(1 for r in results if r["ok"])
    assert failed == []
    assert runners == set(FILES)
    assert all(count >= 1 for count in passed.values()), passed
