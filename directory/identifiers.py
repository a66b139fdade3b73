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
    if not digits.isdigit():
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
        if not national_id or not national_id.isdigit():
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
