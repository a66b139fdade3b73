"""National identifiers of health professionals (RPPS, ADELI) and their check digit.

* RPPS: 11 digits; national id = ``8`` + RPPS (12 characters).
* ADELI: 9 digits; national id = ``0`` + ADELI (10 characters).

The last digit is a Luhn (mod 10) check digit on the whole number. This is verified on
real numbers from the Annuaire Santé open data; see docs/identity.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IdentifierType(StrEnum):
    RPPS = "8"
    ADELI = "0"


class InvalidIdentifierError(ValueError):
    """A national identifier with a bad shape or check digit."""


def luhn_is_valid(digits: str) -> bool:
    """Return True when ``digits`` passes the Luhn mod-10 check."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_LENGTHS = {IdentifierType.RPPS: 11, IdentifierType.ADELI: 9}


def national_id_for_number(text: str) -> str | None:
    """The national id a professional's number stands for, as people type it: an RPPS
    (11 digits: ``8`` + RPPS), an ADELI (9 digits: ``0`` + ADELI), or the national id
    itself (12 digits from 8, 10 from 0); None for anything else. ASCII digits only."""
    number = text.strip()
    if not (number.isascii() and number.isdigit()):
        return None
    if len(number) == _LENGTHS[IdentifierType.RPPS]:
        return IdentifierType.RPPS.value + number
    if len(number) == _LENGTHS[IdentifierType.ADELI]:
        return IdentifierType.ADELI.value + number
    for kind, length in _LENGTHS.items():
        if len(number) == length + 1 and number.startswith(kind.value):
            return number
    return None


@dataclass(frozen=True)
class NationalId:
    """A parsed national id: its type and the RPPS or ADELI number."""

    type: IdentifierType
    number: str

    @property
    def value(self) -> str:
        return f"{self.type.value}{self.number}"

    @classmethod
    def parse(cls, national_id: str, *, check_digit: bool = True) -> NationalId:
        """Parse ``8``+RPPS or ``0``+ADELI; raise InvalidIdentifierError when malformed."""
        if not national_id or not (national_id.isascii() and national_id.isdigit()):
            raise InvalidIdentifierError("a national id is made of digits only")
        try:
            id_type = IdentifierType(national_id[0])
        except ValueError as error:
            raise InvalidIdentifierError(
                "a national id starts with 8 (RPPS) or 0 (ADELI)"
            ) from error
        number = national_id[1:]
        if len(number) != _LENGTHS[id_type]:
            raise InvalidIdentifierError(
                f"an {id_type.name} number has {_LENGTHS[id_type]} digits, not {len(number)}"
            )
        if check_digit and not luhn_is_valid(number):
            raise InvalidIdentifierError(f"the {id_type.name} check digit (Luhn) is wrong")
        return cls(type=id_type, number=number)
