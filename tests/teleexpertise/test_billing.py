"""Tariffs as data, the patient's keyed pseudonym, the encrypted ledger entries, the CSV
export."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from client.teleexpertise.billing import (
    CSV_COLUMNS,
    LedgerEntry,
    export_csv,
    open_entry,
    pseudonym,
    seal_entry,
)
from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.tariffs import (
    DEFAULT_TABLE,
    ActCode,
    TariffTable,
    Zone,
    zone_of_postcode,
)
from tests.teleexpertise.samples import account_keys, patient, unqualified

TABLE = TariffTable.load()


@pytest.mark.parametrize(
    ("code", "zone", "day", "cents"),
    [
        (ActCode.TE2, Zone.METROPOLE, date(2025, 12, 31), 2000),
        (ActCode.TE2, Zone.METROPOLE, date(2026, 1, 1), 2300),
        (ActCode.TE2, Zone.DROM, date(2026, 6, 1), 2760),
        (ActCode.RQD, Zone.METROPOLE, date(2026, 6, 1), 1000),
        (ActCode.RQD, Zone.DROM, date(2026, 6, 1), 1200),
    ],
)
def test_the_2026_tariffs(code, zone, day, cents):
    row = TABLE.lookup(code, zone, day)
    assert row.amount_cents == cents
    assert row.yearly_limit_per_patient == 4


def test_a_date_no_row_covers_is_refused():
    with pytest.raises(TeleexpertiseError) as refused:
        TABLE.lookup(ActCode.TE2, Zone.DROM, date(2025, 6, 1))
    assert refused.value.code == "no_tariff"
    assert "mettez à jour" in refused.value.message_fr


def test_the_next_convention_is_a_row(tmp_path: Path):
    text = DEFAULT_TABLE.read_text().replace(
        "valid_from = 2026-01-01\namount_cents = 2300",
        "valid_from = 2026-01-01\nvalid_until = 2027-12-31\namount_cents = 2300",
    )
    text += (
        '\n[[tariff]]\ncode = "TE2"\nzone = "metropole"\nvalid_from = 2028-01-01\n'
        'amount_cents = 2500\nyearly_limit_per_patient = 4\nsource = "next convention"\n'
    )
    changed = tmp_path / "tariffs.toml"
    changed.write_text(text)
    loaded = TariffTable.load(changed)
    assert loaded.lookup(ActCode.TE2, Zone.METROPOLE, date(2027, 6, 1)).amount_cents == 2300
    assert loaded.lookup(ActCode.TE2, Zone.METROPOLE, date(2028, 6, 1)).amount_cents == 2500
    overlapping = tmp_path / "overlap.toml"
    overlapping.write_text(text.replace("valid_from = 2028-01-01", "valid_from = 2027-06-01"))
    with pytest.raises(TeleexpertiseError, match="overlap"):
        TariffTable.load(overlapping)


def test_drom_postcodes():
    assert zone_of_postcode("97400") is Zone.DROM
    assert zone_of_postcode("97600") is Zone.DROM
    assert zone_of_postcode("97500") is Zone.METROPOLE  # Saint-Pierre-et-Miquelon: not a DROM
    assert zone_of_postcode("69003") is Zone.METROPOLE


def test_the_pseudonym_is_keyed_per_practitioner_and_year_and_stable_across_statuses():
    nurse, other_nurse = account_keys("nurse"), account_keys("someone else")
    qualified = patient()
    typed_by_hand = unqualified(birth_family_name="Pat-Trois", birth_given_names=("Dominique",))
    first = pseudonym(nurse, year=2026, patient=qualified)
    assert len(first) == 43
    assert pseudonym(nurse, year=2026, patient=typed_by_hand) == first
    assert pseudonym(nurse, year=2027, patient=qualified) != first
    assert pseudonym(other_nurse, year=2026, patient=qualified) != first
    assert pseudonym(nurse, year=2026, patient=patient(birth_date=date(1979, 3, 29))) != first


def entry(**changes: Any) -> LedgerEntry:
    values: dict[str, Any] = {
        "tariff": TABLE.lookup(ActCode.RQD, Zone.METROPOLE, date(2026, 3, 16)),
        "day": date(2026, 3, 16),
        "billable": True,
        "patient": patient(),
        "room": 41,
        "requerant": "810003456786",
        "requis": "810001987659",
    }
    values.update(changes)
    return LedgerEntry.for_act(**values)


def test_a_ledger_entry_opens_only_for_its_practitioner_room_and_act():
    keys = account_keys("nurse")
    sealed = seal_entry(keys, national_id="810003456786", entry=entry())
    assert b"PAT-TROIS" not in sealed
    opened = open_entry(keys, national_id="810003456786", room=41, code="RQD", sealed=sealed)
    assert (opened.amount_cents, opened.billable, opened.patient) == (1000, True, patient())
    for national_id, room, code, key in (
        ("810001987659", 41, "RQD", keys),  # another practitioner's entry
        ("810003456786", 42, "RQD", keys),  # moved to another room
        ("810003456786", 41, "TE2", keys),  # relabelled as another act
        ("810003456786", 41, "RQD", account_keys("other")),
    ):
        with pytest.raises(TeleexpertiseError) as refused:
            open_entry(key, national_id=national_id, room=room, code=code, sealed=sealed)
        assert refused.value.code == "bad_ledger_entry"
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(TeleexpertiseError):
        open_entry(keys, national_id="810003456786", room=41, code="RQD", sealed=altered)


def test_the_csv_export():
    entries = [
        entry(day=date(2026, 3, 16)),
        entry(day=date(2026, 2, 1), room=12, patient=unqualified()),
        entry(day=date(2026, 4, 2), room=50, billable=False),
        entry(day=date(2025, 12, 31), room=3),
    ]
    text = export_csv(entries, start=date(2026, 1, 1), end=date(2026, 12, 31))
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r[0], r[1], r[2], r[4], r[5], r[10], r[15]) for r in rows[1:]] == [
        ("2026-02-01", "RQD", "10.00", "oui", "", "", "12"),  # no matricule: not qualified
        ("2026-03-16", "RQD", "10.00", "oui", "", "279035121518989", "41"),
        ("2026-04-02", "RQD", "0.00", "non", "yearly_limit_reached", "279035121518989", "50"),
    ]
