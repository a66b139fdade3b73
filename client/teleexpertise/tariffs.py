"""The dated tariff table of téléexpertise acts: data (``tariffs.toml``), not code.

``TariffTable.load()`` reads the table shipped with the SDK (or another file: a
deployment may ship its own); ``lookup(code, zone, on)`` gives the row in force on a
date, or refuses a date no row covers. Rows are checked when the table is read: known
codes and zones, positive amounts and limits, no two rows of the same act and zone
overlapping in time.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from client.teleexpertise.errors import TeleexpertiseError

DEFAULT_TABLE = Path(__file__).resolve().parent / "tariffs.toml"
DROM_DEPARTMENTS = ("971", "972", "973", "974", "976")


class ActCode(StrEnum):
    RQD = "RQD"  # the requérant's act
    TE2 = "TE2"  # the requis' act


class Zone(StrEnum):
    METROPOLE = "metropole"
    DROM = "drom"


def zone_of_postcode(postcode: str) -> Zone:
    """DROM for a postcode of Guadeloupe, Martinique, Guyane, La Réunion or Mayotte."""
    return Zone.DROM if postcode.startswith(DROM_DEPARTMENTS) else Zone.METROPOLE


@dataclass(frozen=True, slots=True)
class Tariff:
    code: ActCode
    zone: Zone
    valid_from: date
    valid_until: date | None
    amount_cents: int
    yearly_limit_per_patient: int
    source: str

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)

    @property
    def amount_text(self) -> str:
        """``23.00``: euros with two decimals."""
        return f"{self.amount_cents // 100}.{self.amount_cents % 100:02d}"


def _table_error(detail: str) -> TeleexpertiseError:
    return TeleexpertiseError(
        "bad_tariff_table",
        f"The tariff table is invalid: {detail}.",
        f"La table des tarifs est invalide : {detail}.",
    )


def _row(raw: object, number: int) -> Tariff:
    if not isinstance(raw, dict):
        raise _table_error(f"row {number} is not a table")
    fields = {"code", "zone", "valid_from", "valid_until", "amount_cents"}
    fields |= {"yearly_limit_per_patient", "source"}
    if set(raw) - fields or not (fields - {"valid_until"}) <= set(raw):
        raise _table_error(f"row {number} has unknown or missing fields")
    try:
        code, zone = ActCode(raw["code"]), Zone(raw["zone"])
    except ValueError:
        raise _table_error(f"row {number}: unknown code or zone") from None
    start, end = raw["valid_from"], raw.get("valid_until")
    amount, limit = raw["amount_cents"], raw["yearly_limit_per_patient"]
    if not isinstance(start, date) or not (end is None or isinstance(end, date)):
        raise _table_error(f"row {number}: dates are TOML dates")
    if end is not None and end < start:
        raise _table_error(f"row {number} ends before it starts")
    if not (isinstance(amount, int) and amount > 0 and isinstance(limit, int) and limit > 0):
        raise _table_error(f"row {number}: amount and limit are positive integers")
    return Tariff(code, zone, start, end, amount, limit, str(raw["source"]))


@dataclass(frozen=True, slots=True)
class TariffTable:
    rows: tuple[Tariff, ...]

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLE) -> TariffTable:
        with path.open("rb") as stream:
            try:
                data = tomllib.load(stream)
            except tomllib.TOMLDecodeError as error:
                raise _table_error(str(error)) from None
        rows = tuple(_row(raw, n) for n, raw in enumerate(data.get("tariff", []), start=1))
        for first in rows:
            for second in rows:
                if first is second or (first.code, first.zone) != (second.code, second.zone):
                    continue
                if second.valid_from >= first.valid_from and first.covers(second.valid_from):
                    raise _table_error(
                        f"two rows of {first.code} {first.zone} overlap on "
                        f"{second.valid_from.isoformat()}"
                    )
        return cls(rows=rows)

    def lookup(self, code: ActCode, zone: Zone, on: date) -> Tariff:
        """The row in force on ``on``; ``no_tariff`` when none covers the date."""
        for row in self.rows:
            if row.code == code and row.zone == zone and row.covers(on):
                return row
        raise TeleexpertiseError(
            "no_tariff",
            f"No tariff for {code} ({zone}) on {on.isoformat()}: update the tariff table.",
            f"Pas de tarif pour {code} ({zone}) au {on.strftime('%d/%m/%Y')} : mettez à jour "
            "la table des tarifs.",
        )
