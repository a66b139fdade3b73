"""The published billing vectors (tests/vectors/teleexpertise.json) reproduce, and open."""

from __future__ import annotations

import json

from client.teleexpertise.billing import open_entry
from e2ee.encoding import unb64u
from tests.teleexpertise.make_vectors import OUTPUT, key, vectors


def test_the_published_vectors_reproduce():
    assert json.loads(OUTPUT.read_text(encoding="utf-8")) == json.loads(
        json.dumps(vectors(), ensure_ascii=False)
    )


def test_the_pseudonym_cases_say_what_they_should():
    cases = vectors()["pseudonym"]["cases"]
    assert cases[0]["pseudonym"] == cases[1]["pseudonym"]  # typed by hand, same patient
    assert cases[0]["pseudonym"] != cases[2]["pseudonym"]  # another year


def test_the_sealed_entry_opens():
    entry = vectors()["ledger_entry"]
    opened = open_entry(
        key, national_id="810001987659", room=41, code="TE2", sealed=unb64u(entry["sealed"])
    )
    assert (opened.amount_cents, opened.zone.value) == (2760, "drom")
