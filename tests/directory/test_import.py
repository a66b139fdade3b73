"""The extract importer on PostgreSQL: streaming, idempotent, bad rows, deactivation."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from directory.extracts.columns import PERSONNE_ACTIVITE_COLUMNS, HeaderError
from directory.extracts.importer import (
    ImportRefusedError,
    import_mssante,
    import_personne_activite,
)
from directory.extracts.reader import CheckDigitPolicy
from directory.extracts.synthetic import synthetic_rpps
from directory.models import Activity, MailboxAddress, Practitioner, Source
from directory.normalise import name_keys
from tests.directory.conftest import mailbox_line, person_line, read_lines

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot() -> dict[str, Any]:
    people = {
        p.national_id: (p.first_name, p.last_name, p.is_active, p.updated_at, p.row_hash)
        for p in Practitioner.objects.all()
    }
    activities = set(Activity.objects.values_list("pk", "practitioner_id", "activity_hash"))
    mailboxes = set(MailboxAddress.objects.values_list("address", "national_id", "row_hash"))
    return {"people": people, "activities": activities, "mailboxes": mailboxes}


def test_first_import_loads_everyone_with_their_activities(sample):
    personne, _ = sample
    data_lines = len(read_lines(personne)) - 1
    report = import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    assert (report.lines, report.rows, report.bad_rows) == (data_lines, data_lines, 0)
    assert report.created == 60 == Practitioner.objects.filter(source=Source.ANNUAIRE).count()
    assert report.activities_added == Activity.objects.count() == data_lines
    someone = Practitioner.objects.get(national_id="8" + synthetic_rpps(0))
    assert (someone.name_key, someone.reversed_name_key) == name_keys(
        first_name=someone.first_name, last_name=someone.last_name
    )
    places = set(someone.activities.values_list("postcode", flat=True))
    assert someone.postcode in places  # the first line's place of practice


def test_reimporting_the_same_files_changes_nothing(sample):
    personne, mssante = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    import_mssante(mssante)
    before = snapshot()
    again = import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    mail_again = import_mssante(mssante)
    assert (again.created, again.updated, again.unchanged, again.deactivated) == (0, 0, 60, 0)
    assert (again.activities_added, again.activities_removed) == (0, 0)
    assert (mail_again.mailboxes_added, mail_again.mailboxes_changed) == (0, 0)
    assert mail_again.mailboxes_removed == 0
    assert snapshot() == before


def test_changed_rows_are_updated_and_missing_people_deactivated(sample, tmp_path):
    personne, _ = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    lines = read_lines(personne)
    first_id = lines[1].split("|")[2]
    gone_id = lines[-1].split("|")[2]
    changed = [lines[0], lines[1].replace(lines[1].split("|")[8], "Anne-Sophie", 1)]
    changed += [line for line in lines[2:] if line.split("|")[2] != gone_id]
    newcomer = "8" + synthetic_rpps(900_000)
    changed.append(
        person_line(
            **{
                "Type d'identifiant PP": "8",
                "Identifiant PP": newcomer[1:],
                "Identification nationale PP": newcomer,
                "Nom d'exercice": "NOUVELLE",
                "Prénom d'exercice": "Inès",
                "Code profession": "60",
                "Libellé profession": "Infirmier",
                "Code postal (coord. structure)": "69003",
                "Libellé commune (coord. structure)": "Lyon",
            }
        )
    )
    new_file = tmp_path / "next.txt"
    new_file.write_text("".join(changed), encoding="utf-8")

    report = import_personne_activite(new_file, policy=CheckDigitPolicy.REFUSE)

    assert (report.created, report.updated, report.deactivated) == (1, 1, 1)
    assert Practitioner.objects.get(national_id=first_id).first_name == "Anne-Sophie"
    assert not Practitioner.objects.get(national_id=gone_id).is_active
    assert Practitioner.objects.get(national_id=newcomer).name_key == "nouvelle ines"
    # a returning practitioner is reactivated
    back = import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    assert Practitioner.objects.get(national_id=gone_id).is_active
    assert back.deactivated == 1  # the newcomer is not in the old file


def test_bad_rows_are_reported_with_their_line_and_skipped(sample, tmp_path):
    personne, _ = sample
    lines = read_lines(personne)
    bad_luhn = person_line(
        **{
            "Type d'identifiant PP": "8",
            "Identifiant PP": "10000000001",
            "Identification nationale PP": "810000000001",
            "Nom d'exercice": "FICTIF",
            "Code profession": "10",
        }
    )
    broken = [
        *lines[:3],
        "too|few|fields|\n",  # line 4
        bad_luhn,  # line 5
        "X" + lines[3][1:],  # line 6: unknown identifier type
        b"\xff\xfe not utf-8 |\n".decode("latin-1"),  # line 7, written as latin-1 below
        *lines[4:],
    ]
    path = tmp_path / "broken.txt"
    with path.open("wb") as out:
        for index, line in enumerate(broken):
            out.write(line.encode("latin-1" if index == 6 else "utf-8"))
    heard: list[tuple[int, str]] = []

    report = import_personne_activite(
        path, policy=CheckDigitPolicy.REFUSE, on_bad_row=lambda n, r: heard.append((n, r))
    )

    assert [line for line, _ in heard] == [4, 5, 6, 7]
    assert "expected 56 fields, found 3" in heard[0][1]
    assert "wrong check digit (Luhn) in 810000000001" in heard[1][1]
    assert "unknown identifier type" in heard[2][1]
    assert heard[3][1] == "not valid UTF-8"
    assert report.bad_rows == 4
    assert not Practitioner.objects.filter(national_id="810000000001").exists()
    assert report.rows == len(lines) - 2  # all good rows but the one spoiled


def test_a_wrong_check_digit_is_only_a_warning_in_the_sandbox(tmp_path):
    path = tmp_path / "sandbox.txt"
    header = "|".join(PERSONNE_ACTIVITE_COLUMNS)
    row = person_line(
        **{
            "Type d'identifiant PP": "8",
            "Identifiant PP": "10000000001",
            "Identification nationale PP": "810000000001",
            "Nom d'exercice": "FICTIF",
            "Prénom d'exercice": "Test",
            "Code profession": "10",
        }
    )
    path.write_text(header + "|\n" + row, encoding="utf-8")
    warnings: list[tuple[int, str]] = []
    report = import_personne_activite(
        path, policy=CheckDigitPolicy.WARN, on_warning=lambda n, r: warnings.append((n, r))
    )
    assert warnings == [(2, "wrong check digit (Luhn) in 810000000001")]
    assert (report.created, report.bad_rows, report.warnings) == (1, 0, 1)
    assert Practitioner.objects.get(national_id="810000000001").check_digit_valid is False


def test_a_refused_row_does_not_deactivate_its_practitioner(sample, tmp_path):
    personne, _ = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    lines = read_lines(personne)
    victim = lines[1].split("|")
    victim[7] = ""  # no name: refused
    victim_id = victim[2]
    rows = [lines[0], "|".join(victim)] + [
        row for row in lines[2:] if row.split("|")[2] != victim_id
    ]
    path = tmp_path / "refused.txt"
    path.write_text("".join(rows), encoding="utf-8")
    report = import_personne_activite(path, policy=CheckDigitPolicy.REFUSE)
    assert report.bad_rows == 1
    assert report.deactivated == 0
    assert Practitioner.objects.get(national_id=victim_id).is_active


def test_a_file_without_the_needed_columns_imports_nothing(tmp_path):
    path = tmp_path / "wrong.txt"
    path.write_text("Nom|Prénom|\nDUPONT|Jean|\n", encoding="utf-8")
    with pytest.raises(HeaderError, match="Identification nationale PP"):
        import_personne_activite(path, policy=CheckDigitPolicy.REFUSE)
    assert Practitioner.objects.count() == 0


def test_headers_are_matched_without_regard_to_case(sample, tmp_path):
    personne, _ = sample
    lines = read_lines(personne)
    path = tmp_path / "upper.txt"
    path.write_text(lines[0].upper() + "".join(lines[1:]), encoding="utf-8")
    report = import_personne_activite(path, policy=CheckDigitPolicy.REFUSE)
    assert report.created == 60


def test_a_truncated_extract_is_refused_before_anything_changes(sample, tmp_path, monkeypatch):
    import directory.extracts.importer as importer

    monkeypatch.setattr(importer, "MASS_REMOVAL_MIN_ROWS", 10)
    personne, _ = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    before = snapshot()
    truncated = tmp_path / "truncated.txt"
    truncated.write_text("".join(read_lines(personne)[:5]), encoding="utf-8")
    with pytest.raises(ImportRefusedError, match="looks truncated"):
        import_personne_activite(truncated, policy=CheckDigitPolicy.REFUSE)
    assert snapshot() == before
    forced = import_personne_activite(
        truncated, policy=CheckDigitPolicy.REFUSE, allow_mass_removal=True
    )
    assert forced.deactivated > 30


def test_mssante_addresses_are_attached_and_kept_in_sync(sample, tmp_path):
    personne, mssante = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    report = import_mssante(mssante)
    personal = MailboxAddress.objects.filter(kind="PER")
    assert report.mailboxes_added == MailboxAddress.objects.count() > personal.count() > 10
    owner = personal[0]
    practitioner = Practitioner.objects.get(national_id=owner.national_id)
    assert owner.address in practitioner.mssante_addresses
    # the next extract drops that mailbox and adds a second one for someone else
    lines = read_lines(mssante)
    kept = [line for line in lines if line.split("|")[1] != owner.address]
    other = Practitioner.objects.exclude(national_id=owner.national_id)[0]
    extra = mailbox_line(
        **{
            "Type de BAL": "PER",
            "Adresse BAL": "Second.Adresse@Medecin.MSSante.fr",
            "Identification nationale PP": other.national_id,
        }
    )
    path = tmp_path / "mss.txt"
    path.write_text("".join(kept) + extra + extra, encoding="utf-8")  # duplicates happen
    second = import_mssante(path)
    assert (second.mailboxes_added, second.mailboxes_removed) == (1, 1)
    practitioner.refresh_from_db()
    other.refresh_from_db()
    assert owner.address not in practitioner.mssante_addresses
    assert "second.adresse@medecin.mssante.fr" in other.mssante_addresses
    assert other.mssante_addresses == sorted(other.mssante_addresses)


def test_the_import_uses_postgresql_copy():
    assert connection.vendor == "postgresql"  # the suite's database (see the Makefile)


def _spoil(line: str, how: str) -> bytes:
    fields = line.split("|")
    if how == "stray pipe":  # in the business name, after the identifier columns
        fields[PERSONNE_ACTIVITE_COLUMNS.index("Raison sociale site")] = "CABINET A|B"
        return "|".join(fields).encode("utf-8")
    # a Latin-1 byte in the name: the line is no longer UTF-8
    return "|".join(fields).encode("utf-8").replace(b"|", b"|\xe9", 1)


@pytest.mark.parametrize("how", ["stray pipe", "not utf-8"])
def test_a_practitioner_whose_row_is_refused_is_kept_as_they_were(sample, tmp_path, how):
    """A refused row leaves its practitioner exactly as the directory knew them: still
    active (their devices keep working, PSC login goes on), not updated from their other
    rows, their places of practice untouched."""
    personne, _ = sample
    import_personne_activite(personne, policy=CheckDigitPolicy.REFUSE)
    before = snapshot()
    lines = read_lines(personne)
    ids = [line.split("|")[2] for line in lines[1:]]
    victim = next(i for i in ids if ids.count(i) > 1)  # someone with several activities
    rows = [line for line in lines[1:] if line.split("|")[2] == victim]
    changed_other_row = rows[1].replace(rows[1].split("|")[8], "Renommée", 1)
    path = tmp_path / "refused.txt"
    with path.open("wb") as out:
        out.write(lines[0].encode("utf-8"))
        for line in lines[1:]:
            if line is rows[0]:
                out.write(_spoil(line, how))
            elif line is rows[1]:
                out.write(changed_other_row.encode("utf-8"))
            else:
                out.write(line.encode("utf-8"))

    report = import_personne_activite(path, policy=CheckDigitPolicy.REFUSE)

    assert (report.bad_rows, report.deactivated, report.kept_as_they_were) == (1, 0, 1)
    assert snapshot() == before
    assert Practitioner.objects.get(national_id=victim).is_active
