"""Streaming readers of the two extracts: one typed record per valid line.

A bad line never stops the reading: it is handed to ``on_bad_row`` with its line
number and a reason, and the reader moves on. Memory stays bounded whatever the size of
the file (one line at a time).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from functools import lru_cache
from typing import BinaryIO, NamedTuple

from directory.extracts.columns import (
    MSSANTE_COLUMNS,
    PERSONNE_ACTIVITE_COLUMNS,
    HeaderError,
    column_positions,
    split_line,
)
from directory.identifiers import IdentifierType, luhn_is_valid
from directory.normalise import search_key


class CheckDigitPolicy(StrEnum):
    """What a wrong RPPS/ADELI check digit does: a warning (sandbox) or a refusal."""

    WARN = "warn"
    REFUSE = "refuse"


BadRowHandler = Callable[[int, str], None]
WarningHandler = Callable[[int, str], None]


class PersonRow(NamedTuple):
    """One line of PS_LibreAcces_Personne_activite: a practitioner and one activity.

    A tuple in the staging table's column order: the importer copies it as it is.
    """

    line: int
    national_id: str
    check_digit_valid: bool
    civility: str
    first_name: str
    last_name: str
    name_key: str
    reversed_name_key: str
    profession_code: str
    profession_label: str
    specialty_code: str
    specialty_label: str
    mode_code: str
    mode_label: str
    sector_code: str
    sector_label: str
    structure_id: str
    structure_name: str
    siret: str
    finess: str
    street: str
    postcode: str
    town: str
    town_key: str
    department_code: str
    phone: str
    person_hash: str
    activity_hash: str


class MailboxRow(NamedTuple):
    """One line of Extraction_Correspondance_MSSante (staging column order)."""

    line: int
    address: str
    kind: str
    national_id: str
    organisation: str
    row_hash: str


def digest(*parts: str) -> str:
    """A short content digest used to notice changed rows (not a security function)."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _lines(stream: BinaryIO, *, on_bad_row: BadRowHandler) -> Iterator[tuple[int, str, int, bool]]:
    """``(line number, text, bytes read, valid)`` for each line. An undecodable line is a
    bad row; its text is then decoded with replacement characters, only so that the
    identifier columns (ASCII) can still be read from it."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            on_bad_row(number, "not valid UTF-8")
            yield number, raw.decode("utf-8", errors="replace"), len(raw), False
            continue
        yield number, text, len(raw), True


_NATIONAL_ID = re.compile(r"(?:8[0-9]{11}|0[0-9]{9})")


def readable_national_id(fields: list[str], position: int) -> str | None:
    """The national id of a refused row, when its column still holds a well-formed one:
    the row is refused, but its practitioner is then known and kept as they were."""
    if position >= len(fields):
        return None
    candidate = fields[position].strip()
    return candidate if _NATIONAL_ID.fullmatch(candidate) else None


def check_national_id(*, id_type: str, number: str, national_id: str) -> tuple[str | None, bool]:
    """``(error, check digit valid)`` for the three identifier columns of a row."""
    try:
        kind = IdentifierType(id_type)
    except ValueError:
        return f"unknown identifier type {id_type!r} (8 = RPPS, 0 = ADELI)", False
    length = 11 if kind is IdentifierType.RPPS else 9
    if len(number) != length or not (number.isascii() and number.isdigit()):
        return f"an {kind.name} number has {length} digits: {number!r}", False
    if national_id != kind.value + number:
        return f"national id {national_id!r} is not {kind.value}+{kind.name}", False
    return None, luhn_is_valid(number)


def _town(town_label: str, cedex_office: str) -> str:
    if town_label:
        return town_label
    # "69003 LYON CEDEX 03": the office name after the postcode.
    parts = cedex_office.split(maxsplit=1)
    return parts[1] if len(parts) == 2 and parts[0].isdigit() else cedex_office


# Names and towns repeat a lot in the directory: fold each spelling once.
_cached_key = lru_cache(maxsize=200_000)(search_key)


def _street(number: str, repeat: str, kind: str, name: str) -> str:
    return " ".join(part for part in (number, repeat, kind, name) if part)


def read_person_rows(
    stream: BinaryIO,
    *,
    policy: CheckDigitPolicy,
    on_bad_row: BadRowHandler,
    on_warning: WarningHandler,
    on_progress: Callable[[int], object] = lambda _bytes: None,
    on_rejected_id: Callable[[str], None] = lambda _national_id: None,
) -> Iterator[PersonRow]:
    """Valid rows of a PS_LibreAcces_Personne_activite file; HeaderError if unusable.

    ``on_rejected_id`` hears the national id of every refused row that still shows one
    (a stray ``|`` shifts only the columns after it; a non-UTF-8 byte spoils only its
    field), so that the import keeps that practitioner as they were instead of taking
    the refused row for someone who left the directory.
    Precondition: ``stream`` is opened in binary mode at the start of the file.
    This loop runs a million times per import: positions are looked up once, and
    values are only stripped where the files are known to pad them.
    """
    lines = _lines(stream, on_bad_row=on_bad_row)
    first = next(lines, None)
    if first is None or not first[3] or not first[1]:
        raise HeaderError("the file is empty or its header is not UTF-8")
    header = split_line(first[1])
    at = column_positions(header, PERSONNE_ACTIVITE_COLUMNS[:50])
    width = len(header)
    on_progress(first[2])

    def refuse(number: int, reason: str, fields: list[str]) -> None:
        on_bad_row(number, reason)
        national_id = readable_national_id(fields, i_national)
        if national_id is not None:
            on_rejected_id(national_id)

    (
        i_type, i_number, i_national, i_title, i_civility, i_last, i_first, i_profession,
        i_profession_label, i_specialty, i_specialty_label, i_mode, i_mode_label, i_siret,
        i_finess, i_structure, i_name, i_brand, i_street_number, i_street_repeat,
        i_street_kind, i_street_name, i_cedex, i_postcode, i_town, i_phone, i_department,
        i_sector, i_sector_label,
    ) = (
        at[column]
        for column in (
            "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
            "Code civilité d'exercice", "Code civilité", "Nom d'exercice",
            "Prénom d'exercice", "Code profession", "Libellé profession",
            "Code savoir-faire", "Libellé savoir-faire", "Code mode exercice",
            "Libellé mode exercice", "Numéro SIRET site", "Numéro FINESS site",
            "Identifiant technique de la structure", "Raison sociale site",
            "Enseigne commerciale site", "Numéro Voie (coord. structure)",
            "Indice répétition voie (coord. structure)",
            "Libellé type de voie (coord. structure)", "Libellé Voie (coord. structure)",
            "Bureau cedex (coord. structure)", "Code postal (coord. structure)",
            "Libellé commune (coord. structure)", "Téléphone (coord. structure)",
            "Code Département (structure)", "Code secteur d'activité",
            "Libellé secteur d'activité",
        )
    )  # fmt: skip
    refuse_bad_digits = policy is CheckDigitPolicy.REFUSE
    for number, text, size, valid in lines:
        on_progress(size)
        if not text.strip():
            continue
        fields = split_line(text)
        if not valid:  # reported by _lines already
            national_id = readable_national_id(fields, i_national)
            if national_id is not None:
                on_rejected_id(national_id)
            continue
        if len(fields) != width:
            refuse(number, f"expected {width} fields, found {len(fields)}", fields)
            continue
        national_id = fields[i_national].strip()
        error, check_ok = check_national_id(
            id_type=fields[i_type].strip(),
            number=fields[i_number].strip(),
            national_id=national_id,
        )
        if error:
            refuse(number, error, fields)
            continue
        if not check_ok:
            if refuse_bad_digits:
                refuse(number, f"wrong check digit (Luhn) in {national_id}", fields)
                continue
            on_warning(number, f"wrong check digit (Luhn) in {national_id}")
        last_name = fields[i_last].strip()
        profession_code = fields[i_profession].strip()
        if not last_name or not profession_code:
            refuse(number, "the name or the profession code is empty", fields)
            continue
        first_name = fields[i_first].strip()
        civility = fields[i_title] or fields[i_civility]
        postcode = fields[i_postcode].strip()
        town = _town(fields[i_town].strip(), fields[i_cedex].strip())
        street = _street(
            fields[i_street_number],
            fields[i_street_repeat],
            fields[i_street_kind],
            fields[i_street_name],
        )
        first_key = _cached_key(first_name)
        last_key = _cached_key(last_name)
        specialty_code = fields[i_specialty]
        mode_code = fields[i_mode]
        sector_code = fields[i_sector]
        structure_name = fields[i_name] or fields[i_brand]
        check = "1" if check_ok else "0"
        yield PersonRow(
            number,
            national_id,
            check_ok,
            civility,
            first_name,
            last_name,
            f"{last_key} {first_key}".strip(),
            f"{first_key} {last_key}".strip(),
            profession_code,
            fields[i_profession_label],
            specialty_code,
            fields[i_specialty_label],
            mode_code,
            fields[i_mode_label],
            sector_code,
            fields[i_sector_label],
            fields[i_structure],
            structure_name,
            fields[i_siret],
            fields[i_finess],
            street,
            postcode,
            town,
            _cached_key(town),
            fields[i_department],
            fields[i_phone],
            digest(
                civility, first_name, last_name, profession_code, fields[i_profession_label],
                specialty_code, fields[i_specialty_label], postcode, town, check,
            ),
            digest(
                profession_code, specialty_code, mode_code, fields[i_mode_label], sector_code,
                fields[i_sector_label], fields[i_structure], structure_name, fields[i_siret],
                fields[i_finess], street, postcode, town, fields[i_department],
                fields[i_phone],
            ),
        )  # fmt: skip


_MAILBOX_KINDS = {"PER", "ORG", "APP", "CAB"}


def read_mailbox_rows(
    stream: BinaryIO,
    *,
    on_bad_row: BadRowHandler,
    on_progress: Callable[[int], object] = lambda _bytes: None,
) -> Iterator[MailboxRow]:
    """Valid rows of an Extraction_Correspondance_MSSante file; HeaderError if unusable."""
    lines = _lines(stream, on_bad_row=on_bad_row)
    first = next(lines, None)
    if first is None or not first[3] or not first[1]:
        raise HeaderError("the file is empty or its header is not UTF-8")
    header = split_line(first[1])
    at = column_positions(header, MSSANTE_COLUMNS)
    width = len(header)
    on_progress(first[2])
    for number, text, size, valid in lines:
        on_progress(size)
        if not valid or not text.strip():
            continue
        fields = split_line(text)
        if len(fields) != width:
            on_bad_row(number, f"expected {width} fields, found {len(fields)}")
            continue
        address = fields[at["Adresse BAL"]].strip().lower()
        kind = fields[at["Type de BAL"]].strip().upper()
        if "@" not in address or len(address) > 256 or " " in address:
            on_bad_row(number, f"not a mailbox address: {address[:80]!r}")
            continue
        if kind not in _MAILBOX_KINDS:
            on_bad_row(number, f"unknown mailbox type {kind!r}")
            continue
        national_id = fields[at["Identification nationale PP"]].strip() if kind == "PER" else ""
        organisation = (
            fields[at["Raison Sociale structure BAL"]].strip()
            or fields[at["Enseigne commerciale structure BAL"]].strip()
        )
        yield MailboxRow(
            number, address, kind, national_id, organisation[:256],
            digest(kind, national_id, organisation),
        )  # fmt: skip
