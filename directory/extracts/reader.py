"""Streaming readers of the two extracts: one typed record per valid line.

A bad line never stops the reading: it is handed to ``on_bad_row`` with its line
number and a reason, and the reader moves on. Memory stays bounded whatever the size of
the file (one line at a time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from directory.extracts.columns import (
    MSSANTE_COLUMNS,
    PERSONNE_ACTIVITE_COLUMNS,
    HeaderError,
    column_positions,
    split_line,
)
from directory.identifiers import IdentifierType, luhn_is_valid
from directory.normalise import name_keys, search_key


class CheckDigitPolicy(StrEnum):
    """What a wrong RPPS/ADELI check digit does: a warning (sandbox) or a refusal."""

    WARN = "warn"
    REFUSE = "refuse"


BadRowHandler = Callable[[int, str], None]
WarningHandler = Callable[[int, str], None]


@dataclass(frozen=True, slots=True)
class PersonRow:
    """One line of PS_LibreAcces_Personne_activite: a practitioner and one activity."""

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


@dataclass(frozen=True, slots=True)
class MailboxRow:
    """One line of Extraction_Correspondance_MSSante."""

    line: int
    address: str
    kind: str
    national_id: str
    organisation: str
    row_hash: str


def digest(*parts: str) -> str:
    """A short content digest used to notice changed rows (not a security function)."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _lines(stream: BinaryIO, *, on_bad_row: BadRowHandler) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, bytes read)`` for each line; undecodable lines are bad rows."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            on_bad_row(number, "not valid UTF-8")
            yield number, "", len(raw)
            continue
        yield number, text, len(raw)


def check_national_id(*, id_type: str, number: str, national_id: str) -> tuple[str | None, bool]:
    """``(error, check digit valid)`` for the three identifier columns of a row."""
    try:
        kind = IdentifierType(id_type)
    except ValueError:
        return f"unknown identifier type {id_type!r} (8 = RPPS, 0 = ADELI)", False
    length = 11 if kind is IdentifierType.RPPS else 9
    if len(number) != length or not number.isdigit():
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

    ``on_rejected_id`` hears the well-formed national id of a refused row, so that the
    import does not take a refused row for a practitioner who left the directory.
    Precondition: ``stream`` is opened in binary mode at the start of the file.
    """
    lines = _lines(stream, on_bad_row=on_bad_row)
    first = next(lines, None)
    if first is None or not first[1]:
        raise HeaderError("the file is empty or its header is not UTF-8")
    header = split_line(first[1])
    at = column_positions(header, PERSONNE_ACTIVITE_COLUMNS[:50])
    width = len(header)
    on_progress(first[2])
    for number, text, size in lines:
        on_progress(size)
        if not text.strip():
            continue
        fields = split_line(text)
        if len(fields) != width:
            on_bad_row(number, f"expected {width} fields, found {len(fields)}")
            continue

        def get(column: str, fields: list[str] = fields) -> str:
            return fields[at[column]].strip()

        national_id = get("Identification nationale PP")
        error, check_ok = check_national_id(
            id_type=get("Type d'identifiant PP"),
            number=get("Identifiant PP"),
            national_id=national_id,
        )
        if error:
            on_bad_row(number, error)
            continue
        if not check_ok:
            if policy is CheckDigitPolicy.REFUSE:
                on_bad_row(number, f"wrong check digit (Luhn) in {national_id}")
                on_rejected_id(national_id)
                continue
            on_warning(number, f"wrong check digit (Luhn) in {national_id}")
        last_name = get("Nom d'exercice")
        profession_code = get("Code profession")
        if not last_name or not profession_code:
            on_bad_row(number, "the name or the profession code is empty")
            on_rejected_id(national_id)
            continue
        first_name = get("Prénom d'exercice")
        civility = get("Code civilité d'exercice") or get("Code civilité")
        postcode = get("Code postal (coord. structure)")
        town = _town(
            get("Libellé commune (coord. structure)"), get("Bureau cedex (coord. structure)")
        )
        street = " ".join(
            part
            for part in (
                get("Numéro Voie (coord. structure)"),
                get("Indice répétition voie (coord. structure)"),
                get("Libellé type de voie (coord. structure)"),
                get("Libellé Voie (coord. structure)"),
            )
            if part
        )
        name_key, reversed_name_key = name_keys(first_name=first_name, last_name=last_name)
        person = (
            civility,
            first_name,
            last_name,
            profession_code,
            get("Libellé profession"),
            get("Code savoir-faire"),
            get("Libellé savoir-faire"),
            postcode,
            town,
            "1" if check_ok else "0",
        )
        activity = (
            profession_code,
            get("Code savoir-faire"),
            get("Code mode exercice"),
            get("Libellé mode exercice"),
            get("Code secteur d'activité"),
            get("Libellé secteur d'activité"),
            get("Identifiant technique de la structure"),
            get("Raison sociale site") or get("Enseigne commerciale site"),
            get("Numéro SIRET site"),
            get("Numéro FINESS site"),
            street,
            postcode,
            town,
            get("Code Département (structure)"),
            get("Téléphone (coord. structure)"),
        )
        yield PersonRow(
            line=number,
            national_id=national_id,
            check_digit_valid=check_ok,
            civility=civility,
            first_name=first_name,
            last_name=last_name,
            name_key=name_key,
            reversed_name_key=reversed_name_key,
            profession_code=profession_code,
            profession_label=person[4],
            specialty_code=person[5],
            specialty_label=person[6],
            mode_code=activity[2],
            mode_label=activity[3],
            sector_code=activity[4],
            sector_label=activity[5],
            structure_id=activity[6],
            structure_name=activity[7],
            siret=activity[8],
            finess=activity[9],
            street=street,
            postcode=postcode,
            town=town,
            town_key=search_key(town),
            department_code=activity[13],
            phone=activity[14],
            person_hash=digest(*person),
            activity_hash=digest(*activity),
        )


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
    if first is None or not first[1]:
        raise HeaderError("the file is empty or its header is not UTF-8")
    header = split_line(first[1])
    at = column_positions(header, MSSANTE_COLUMNS)
    width = len(header)
    on_progress(first[2])
    for number, text, size in lines:
        on_progress(size)
        if not text.strip():
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
            line=number,
            address=address,
            kind=kind,
            national_id=national_id,
            organisation=organisation[:256],
            row_hash=digest(kind, national_id, organisation),
        )
